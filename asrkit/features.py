"""Log-mel features (torchaudio), CMVN, SpecAugment and VTLP, behind asrkit's own small functions."""

from __future__ import annotations

import math
from dataclasses import asdict

import torch
import torchaudio

from asrkit.config import FeatureConfig, SpecAugmentConfig

LOG_FLOOR = 1e-6


class LogMel(torch.nn.Module):
    """Waveform (..., samples) → log-mel features (..., frames, n_mels)."""

    def __init__(
        self,
        sample_rate: int,
        n_mels: int = 80,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        f_min: float = 0.0,
        f_max: float | None = None,
        cepstra: int = 0,
    ):
        super().__init__()
        self.sample_rate = sample_rate
        self.win_length = int(round(sample_rate * win_ms / 1000))
        self.hop_length = int(round(sample_rate * hop_ms / 1000))
        n_fft = 1 << math.ceil(math.log2(self.win_length))
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=n_fft,
            win_length=self.win_length,
            hop_length=self.hop_length,
            n_mels=n_mels,
            f_min=f_min,
            f_max=f_max,
            power=2.0,
        )
        self.register_buffer("lifter", cepstral_smoother(n_mels, cepstra) if 0 < cepstra < n_mels else None)

    def smooth(self, logmel: torch.Tensor) -> torch.Tensor:
        """Keep the spectral envelope (the first `cepstra` DCT coefficients) and drop the pitch harmonics above it."""
        return logmel if self.lifter is None else logmel @ self.lifter

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Log-mels of any non-empty input: one shorter than half an FFT window is zero-padded to one frame's worth."""
        short = self.mel.n_fft // 2 + 1 - wav.shape[-1]
        if short > 0:  # the STFT's reflect padding needs more samples than half a window (a clip of a few ms)
            wav = torch.nn.functional.pad(wav, (0, short))
        return self.smooth(torch.log(self.mel(wav) + LOG_FLOOR).transpose(-1, -2))


def cepstral_smoother(n_mels: int, cepstra: int) -> torch.Tensor:
    """(n_mels, n_mels) projection onto the first `cepstra` orthonormal DCT-II bases: log-mel → MFCC → log-mel."""
    dct = torchaudio.functional.create_dct(cepstra, n_mels, norm="ortho")  # (n_mels, cepstra)
    return dct @ dct.T


def feature_settings(cfg: FeatureConfig, sample_rate: int) -> dict:
    """Everything needed to recompute features at decode time (stored in checkpoints)."""
    d = asdict(cfg)
    d.pop("specaugment", None)
    d.pop("vtlp", None)  # training-time augmentations: neither the features on disk nor decoding depend on them
    d.pop("channel", None)
    if not d.get("cepstra"):
        d.pop(
            "cepstra", None
        )  # no smoothing: the settings (and the feature caches keyed on them) are those from before it
    d["sample_rate"] = sample_rate
    return d


def make_extractor(settings: dict) -> LogMel:
    s = settings
    return LogMel(
        s["sample_rate"],
        s["n_mels"],
        s["win_ms"],
        s["hop_ms"],
        s.get("f_min", 0.0),
        s.get("f_max"),
        s.get("cepstra", 0),
    )


STD_FLOOR = (
    0.1  # in log-energy units: a band with no signal (above a narrow-band source's Nyquist) is not blown up into noise
)


def utterance_cmvn(feats: torch.Tensor) -> torch.Tensor:
    """Per-utterance mean and variance normalisation over time (removes channel and speaker offsets)."""
    mean = feats.mean(dim=0, keepdim=True)
    std = feats.std(dim=0, keepdim=True, unbiased=False)
    return (feats - mean) / std.clamp_min(STD_FLOOR)


def sliding_cmvn(feats: torch.Tensor, window: int) -> torch.Tensor:
    """Mean and variance normalisation over a centred `window` of frames (Kaldi apply-cmvn-sliding, --center).

    Near the ends the window shifts to stay inside the input, so every frame gets `window` frames of
    statistics; an input no longer than `window` is normalised exactly as `utterance_cmvn` does.
    """
    t = feats.shape[0]
    if t <= window:
        return utterance_cmvn(feats)
    f = feats.double()
    zero = f.new_zeros(1, f.shape[1])
    s1 = torch.cat([zero, f.cumsum(0)])
    s2 = torch.cat([zero, (f * f).cumsum(0)])
    lo = (torch.arange(t) - window // 2).clamp(0, t - window)
    hi = lo + window
    mean = (s1[hi] - s1[lo]) / window
    std = ((s2[hi] - s2[lo]) / window - mean * mean).clamp_min(0.0).sqrt()
    return ((f - mean) / std.clamp_min(STD_FLOOR)).to(feats.dtype)


ONLINE_PRIOR_FRAMES = 100  # the global statistics count as this many frames of the recording (1 s at a 10 ms hop)


class OnlineCMVN:
    """Causal mean/variance normalisation: each frame by the statistics of the frames up to it (Kaldi's online CMVN).

    The training set's global statistics start it as if they were `prior_frames` frames of the recording, so the
    first frames are normalised sensibly; the recording's own frames then take over. Being causal, it gives the same
    result whether the frames come all at once or chunk by chunk (`push` keeps the running sums).
    """

    def __init__(self, stats: dict, prior_frames: int = ONLINE_PRIOR_FRAMES):
        mean, std = stats["mean"].double(), stats["std"].double()
        self.n = float(prior_frames)
        self.s1 = mean * prior_frames
        self.s2 = (std * std + mean * mean) * prior_frames

    def push(self, feats: torch.Tensor) -> torch.Tensor:
        """(frames, dims) → the same frames normalised; the running statistics move on past them."""
        if feats.shape[0] == 0:
            return feats
        f = feats.double()
        n = self.n + torch.arange(1, f.shape[0] + 1, dtype=torch.float64)[:, None]
        s1 = self.s1 + f.cumsum(0)
        s2 = self.s2 + (f * f).cumsum(0)
        mean = s1 / n
        std = (s2 / n - mean * mean).clamp_min(0.0).sqrt()
        self.n, self.s1, self.s2 = float(n[-1, 0]), s1[-1], s2[-1]
        return ((f - mean) / std.clamp_min(STD_FLOOR)).to(feats.dtype)


def at_loudness_of(feats: torch.Tensor, stats: dict) -> dict:
    """The training statistics moved by one offset to the recording's loudness (its mean over frames and bands)."""
    shift = feats.double().mean() - stats["mean"].double().mean()
    return {**stats, "mean": stats["mean"].double() + shift}


# 'prior_speech': frames within this many dB of the recording's loud frames count as speech; at 30 dB a quiet voice's
# consonants fell below it (yweweler's connected digits 10.5 -> 16.1 % WER), at 40 dB none did
SPEECH_DB = 40.0
SPEECH_REFERENCE = 0.9  # the quantile of frame energy that stands for "loud"


def speech_frames(feats: torch.Tensor, db: float = SPEECH_DB) -> torch.Tensor:
    """Boolean mask of the frames within `db` dB of the recording's loud frames (log-mel energy averaged over bands)."""
    energy = feats.double().mean(-1)
    return energy >= torch.quantile(energy, SPEECH_REFERENCE) - db * math.log(10.0) / 10.0


def prior_cmvn(
    feats: torch.Tensor,
    stats: dict,
    prior_frames: int = ONLINE_PRIOR_FRAMES,
    level: bool = False,
    speech_only: bool = False,
) -> torch.Tensor:
    """Per-utterance CMVN whose statistics start from the training set's, as if they were `prior_frames` frames of
    the recording (the MAP estimate): a long recording is normalised by its own statistics, a short one leans on the
    global ones, so an isolated word keeps the spectral average that tells it from other words. These are the
    statistics `OnlineCMVN` reaches at the last frame, applied to every frame.

    `level`: the prior is first moved to the recording's own loudness (its mean over frames and bands), so that a
    quiet recording is normalised like a loud one: only the spectral shape leans on the training set, never the
    gain, which a short word cannot be trusted to estimate per band but can as one number.

    `speech_only`: the recording's statistics (and its loudness) are those of its speech frames (`speech_frames`), so
    that pauses do not count: the same word is normalised alike alone and inside a sequence with pauses of any
    length (`prepare` then takes the training set's statistics over speech frames too)."""
    f = feats.double()
    own = f[speech_frames(f)] if speech_only and f.shape[0] else f
    prior = OnlineCMVN(at_loudness_of(own, stats) if level else stats, prior_frames)
    n = prior.n + own.shape[0]
    mean = (prior.s1.to(f.device) + own.sum(0)) / n
    std = ((prior.s2.to(f.device) + (own * own).sum(0)) / n - mean * mean).clamp_min(0.0).sqrt()
    return ((f - mean) / std.clamp_min(STD_FLOOR)).to(feats.dtype)


class CMVNStats:
    """Global mean/variance accumulated over a training set."""

    def __init__(self, dim: int):
        self.n = 0
        self.sum = torch.zeros(dim, dtype=torch.float64)
        self.sumsq = torch.zeros(dim, dtype=torch.float64)

    def add(self, feats: torch.Tensor) -> None:
        f = feats.double()
        self.n += f.shape[0]
        self.sum += f.sum(0)
        self.sumsq += (f * f).sum(0)

    def sums(self) -> dict:
        """The running sums as plain numbers (JSON), for `merge`."""
        return {"n": self.n, "sum": self.sum.tolist(), "sumsq": self.sumsq.tolist()}

    def merge(self, sums: dict) -> None:
        """Add statistics gathered elsewhere (`sums()` of another accumulator)."""
        self.n += int(sums["n"])
        self.sum += torch.tensor(sums["sum"], dtype=torch.float64)
        self.sumsq += torch.tensor(sums["sumsq"], dtype=torch.float64)

    def to_dict(self) -> dict:
        mean = self.sum / max(self.n, 1)
        var = (self.sumsq / max(self.n, 1) - mean * mean).clamp_min(0.0)
        return {"mean": mean.float(), "std": var.sqrt().clamp_min(STD_FLOOR).float(), "frames": self.n}


CMVN_WITH_STATS = (
    "global",
    "global_level",
    "online",
    "prior",
    "prior_level",
    "prior_speech",
)  # the modes that need the training set's statistics (cmvn.pt)
CMVN_PER_RECORDING = (
    "utterance",
    "prior",
    "prior_level",
    "prior_speech",
    "global_level",
)  # the modes that need the whole recording first


def normalize(feats: torch.Tensor, mode: str, stats: dict | None = None) -> torch.Tensor:
    """Apply the configured CMVN mode ('none', 'utterance', 'global', 'online': causal, started from the global stats;
    'prior': per utterance, started from the global stats; 'prior_level': the same with the stats moved to the
    utterance's loudness; 'prior_speech': 'prior_level' with the utterance's statistics taken over its speech frames;
    'global_level': the global stats moved to the utterance's loudness, nothing else of it)."""
    if mode == "utterance":
        return utterance_cmvn(feats)
    if mode in CMVN_WITH_STATS and stats is None:
        raise ValueError(f"{mode} CMVN needs statistics (cmvn.pt from prepare)")
    if mode in ("prior", "prior_level", "prior_speech"):
        return prior_cmvn(feats, stats, level=mode != "prior", speech_only=mode == "prior_speech")
    if mode == "online":
        return OnlineCMVN(stats).push(feats)
    if mode == "global":
        return (feats - stats["mean"].to(feats)) / stats["std"].to(feats)
    if mode == "global_level":
        s = at_loudness_of(feats, stats)
        return ((feats.double() - s["mean"]) / s["std"].double()).to(feats.dtype)
    return feats


def spec_augment_batch(
    feats: torch.Tensor, cfg: SpecAugmentConfig, generator: torch.Generator | None = None, frames: int | None = None
) -> torch.Tensor:
    """SpecAugment on a padded (B, frames, n_mels) batch, masks drawn independently per utterance (torchaudio iid).
    The time masks' width is `time_width` of `frames`, the batch's longest utterance (default: the padded width),
    so that padding the batch does not widen them.

    Masked cells are set to 0, the mean of CMVN-normalised features. One draw per batch keeps the augmentation
    off the training loop's critical path (per-utterance masking cost 40% of a CPU epoch).
    """
    x = feats.transpose(1, 2).unsqueeze(1)  # (B, 1, F, T) as torchaudio expects
    max_t = max(1, int(cfg.time_width * (frames or x.shape[-1])))
    if generator is not None:
        state = torch.random.get_rng_state()
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    try:
        for _ in range(cfg.freq_masks):
            x = torchaudio.functional.mask_along_axis_iid(x, cfg.freq_width, 0.0, axis=2)
        for _ in range(cfg.time_masks):
            x = torchaudio.functional.mask_along_axis_iid(x, max_t, 0.0, axis=3)
    finally:
        if generator is not None:
            torch.random.set_rng_state(state)
    return x.squeeze(1).transpose(1, 2)


def _hz_to_mel(f: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + f / 700.0)  # the HTK mel scale, torchaudio's MelSpectrogram default


def _mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


class VTLP:
    """Vocal-tract-length perturbation on log-mel features (Jaitly & Hinton 2013): each utterance's frequency axis
    warped by a random factor α in [low, high], f → α·f below a boundary and a straight line to the top band above
    it, so that no band falls off the end. Done on the cached mel bands by linear interpolation between them,
    a batch at a time, so every epoch hears new vocal tracts at the cost of one small matrix product."""

    def __init__(
        self, low: float, high: float, n_mels: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None
    ):
        self.low, self.high = low, high
        top = float(f_max or sample_rate / 2)
        edges = torch.linspace(
            float(_hz_to_mel(torch.tensor(float(f_min)))),
            float(_hz_to_mel(torch.tensor(top))),
            n_mels + 2,
            dtype=torch.float64,
        )
        self.centres_mel = edges[1:-1]
        self.centres_hz = _mel_to_hz(self.centres_mel)
        self.f_min, self.f_max = float(f_min), top

    def matrices(self, alphas: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, n_mels) interpolation matrices: row i mixes the two input bands nearest to band i's source."""
        a = alphas.double()[:, None]
        g = self.centres_hz[None, :]
        knee = 0.8 * self.f_max * torch.clamp(a, max=1.0) / a  # source frequency where the straight top piece starts
        low_part = g / a
        high_part = knee + (g - a * knee) * (self.f_max - knee) / (self.f_max - a * knee)
        src = torch.where(g <= a * knee, low_part, high_part).clamp(self.f_min, self.f_max)
        m = self.centres_mel
        pos = ((_hz_to_mel(src) - m[0]) / (m[1] - m[0])).clamp(0, len(m) - 1)
        lo = pos.floor().long().clamp(max=len(m) - 2) if len(m) > 1 else pos.floor().long()
        frac = pos - lo
        w = torch.zeros(len(alphas), len(m), len(m), dtype=torch.float64)
        w.scatter_add_(2, lo[..., None], (1 - frac)[..., None])
        if len(m) > 1:
            w.scatter_add_(2, (lo + 1)[..., None], frac[..., None])
        return w.float()

    def __call__(self, feats: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A padded (B, frames, n_mels) batch, each utterance warped by its own α."""
        alphas = self.low + (self.high - self.low) * torch.rand(
            feats.shape[0], generator=generator, dtype=torch.float64
        )
        return torch.bmm(feats, self.matrices(alphas).transpose(1, 2).to(feats.dtype))


class ChannelResponse:
    """A random smooth frequency response per utterance, added to its log-mel bands: another microphone, another
    room's colouring, another loudness. Short words are where CMVN cannot take the channel out (it needs frames to
    estimate it), so the model learns not to hear it. The curve is a sum of the first `bases` DCT bases with
    Gaussian weights, scaled so that each band's offset has standard deviation `std`."""

    def __init__(self, std: float, n_mels: int, bases: int = 6):
        self.std = std
        self.basis = torchaudio.functional.create_dct(bases, n_mels, norm="ortho").T * math.sqrt(
            n_mels / bases
        )  # (bases, n_mels)

    def __call__(self, feats: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A padded (B, frames, n_mels) batch, each utterance with its own response."""
        w = torch.randn(feats.shape[0], self.basis.shape[0], generator=generator) * self.std
        return feats + (w @ self.basis).to(feats.dtype)[:, None, :]
