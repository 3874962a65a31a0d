"""Long recordings: run the acoustic model on overlapping windows and stitch their centres into one posteriorgram.

A window of `chunk_s` seconds holds a core plus `overlap_s` seconds of context on each side; of each window's
output only the core is kept, and neighbouring windows share 2·overlap_s seconds with the cut in the middle,
so every output frame comes from the window where it lies farthest from an edge. Each cut is moved to the
quietest point (mean log-mel value, smoothed over 0.25 s) of the `search_s` seconds before its nominal place,
so chunk edges fall in pauses, where a bidirectional model loses least by not seeing past the window.

>>> hyp = decode_long(AcousticModel.load("exp/digits/best.pt"), "ten_minutes.flac")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from asrkit.audio import load_audio
from asrkit.config import DecodeOptions
from asrkit.decode.beam import prefix_beam_search
from asrkit.decode.ctc import Hypothesis, Lexicon
from asrkit.decode.vtln import vtln_log_probs
from asrkit.features import sliding_cmvn
from asrkit.models.acoustic import AcousticModel

__all__ = [
    "Window",
    "batch_log_probs",
    "chunked_log_probs",
    "cut_energy",
    "decode_long",
    "long_features",
    "plan_windows",
]

SMOOTH_S = 0.25  # energy is averaged over this long a stretch before the quietest point is chosen


@dataclass(frozen=True)
class Window:
    """One model call on input frames [start, end); its output frames [keep_start, keep_end) (whole-input numbering) are kept."""

    start: int
    end: int
    keep_start: int
    keep_end: int


def _subsample(model: AcousticModel) -> int:
    """Input frames per output frame of `model`."""
    return int(getattr(model, "subsample", None) or model.config.get("subsample", 1) or 1)


def cut_energy(feats: torch.Tensor, subsample: int, smooth: int) -> torch.Tensor:
    """Per output frame: the mean log-mel value of its input frames, moving-averaged over `smooth` output frames."""
    e = feats.float().mean(dim=1)
    pad = (-e.shape[0]) % subsample
    if pad:
        e = torch.cat([e, e[-1:].expand(pad)])
    e = e.view(-1, subsample).mean(dim=1)
    if smooth > 1:
        # a single quiet frame inside a word (a stop closure) is not a pause: average over a stretch
        x = torch.nn.functional.pad(e[None, None], (smooth // 2, smooth - 1 - smooth // 2), mode="replicate")
        e = torch.nn.functional.avg_pool1d(x, smooth, stride=1)[0, 0]
    return e


def plan_windows(
    n_frames: int, subsample: int, chunk: int, overlap: int, energy: torch.Tensor | None = None, search: int = 0
) -> list[Window]:
    """Windows of at most `chunk` input frames with `overlap` frames of context per side; cuts at the lowest `energy`.

    `energy` (one value per output frame) and `search` (output frames before the nominal cut) place each cut;
    without them the cuts are at the nominal positions. Window starts are multiples of `subsample`.
    """
    s = subsample
    total = -(-n_frames // s)
    if n_frames <= chunk:
        return [Window(0, n_frames, 0, total)]
    c, o = chunk // s, -(-overlap // s)
    if c - 2 * o < 1:
        raise ValueError(f"a chunk of {chunk} frames leaves no core after {overlap} frames of context on each side")
    windows: list[Window] = []
    cut = 0
    while True:
        lo = max(0, cut - o)
        if total - lo <= c:
            windows.append(Window(lo * s, n_frames, cut, total))
            return windows
        nominal = lo + c - o  # the window keeps `o` frames of right context after its cut
        nxt = nominal
        if energy is not None and search > 0:
            # never shorter than half a core, so the windows always advance by a good stretch
            first = max(cut + max(1, (nominal - cut) // 2), nominal - search)
            seg = energy[first : nominal + 1]
            # the quietest frame; of equals, the latest (the fewest windows)
            nxt = first + len(seg) - 1 - int(torch.argmin(seg.flip(0)))
        windows.append(Window(lo * s, (nxt + o) * s, cut, nxt))
        cut = nxt


def chunked_log_probs(
    model: AcousticModel,
    feats: torch.Tensor,
    chunk_s: float = 20.0,
    overlap_s: float = 2.0,
    batch: int = 8,
    *,
    search_s: float = 4.0,
) -> torch.Tensor:
    """(frames, n_mels) normalised features → (frames', V) log-probs, run as overlapping windows and stitched.

    `search_s` = 0 cuts at the nominal positions; otherwise each cut goes to the quietest point in the
    `search_s` seconds before it. Inputs no longer than `chunk_s` go through the model in one piece.
    """
    if getattr(model, "task", "ctc") == "classifier":
        raise ValueError("chunked decoding needs per-frame outputs; a classifier gives one label per input")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    hop_s = model.feature_settings["hop_ms"] / 1000
    s = _subsample(model)
    chunk, overlap = int(round(chunk_s / hop_s)), int(round(overlap_s / hop_s))
    energy = cut_energy(feats, s, max(1, round(SMOOTH_S / hop_s / s))) if search_s > 0 else None
    windows = plan_windows(feats.shape[0], s, chunk, overlap, energy, int(round(search_s / hop_s / s)))
    if len(windows) == 1:
        return model.log_probs([feats])[0]
    parts: list[torch.Tensor] = []
    for i in range(0, len(windows), batch):
        group = windows[i : i + batch]
        outs = model.log_probs([feats[w.start : w.end] for w in group])
        for w, lp in zip(group, outs):
            first = w.start // s
            parts.append(lp[w.keep_start - first : w.keep_end - first])
    return torch.cat(parts)


def batch_log_probs(
    model: AcousticModel,
    feats: Sequence[torch.Tensor],
    chunk_seconds: float = DecodeOptions.chunk_seconds,
    vtln: bool = False,
) -> list[torch.Tensor]:
    """Per-input log-probabilities of normalised features, as one batch; an input longer than `chunk_seconds` runs in
    overlapping windows. `vtln`: each input read under its most probable frequency warp (`asrkit.decode.vtln`)."""
    if vtln:
        return vtln_log_probs(lambda f: batch_log_probs(model, f, chunk_seconds), feats, model.feature_settings)[0]
    hop = model.feature_settings["hop_ms"] / 1000
    if any(f.shape[0] * hop > chunk_seconds for f in feats):
        # a long recording: overlapping windows through the model, their centres stitched (bounded memory)
        return [chunked_log_probs(model, f, chunk_seconds, min(2.0, chunk_seconds / 8)) for f in feats]
    return model.log_probs(list(feats))


def long_features(model: AcousticModel, audio: str | Path, cmvn_window_s: float | None = None) -> torch.Tensor:
    """Normalised features of a whole audio file, the waveform freed once they exist.

    By default exactly `model.features`: an utterance-CMVN model normalises over the whole file. `cmvn_window_s`
    switches such a model to a centred sliding window of that many seconds (`sliding_cmvn`).
    """
    # one pass, no streaming: resampling and the STFT of 10 minutes take ~0.35 GB at their peak, growing ~33 MB
    # per minute of audio (a 20-minute file decodes in 1.2 GB; 1.5 GB is reached near 30 minutes)
    wav = load_audio(audio, model.sample_rate)
    if cmvn_window_s is None or model.feature_settings["cmvn"] != "utterance" or model.extractor is None:
        return model.features(wav)
    with torch.inference_mode():
        raw = model.extractor(wav)
        del wav
        # sliding statistics follow speakers and levels that change within a recording (fewer disagreements with
        # the parts on a four-speaker file) but blow a long silence up to speech-like variance: opt-in only
        return sliding_cmvn(raw, max(1, int(round(cmvn_window_s * 1000 / model.feature_settings["hop_ms"]))))


def decode_long(
    model: AcousticModel,
    audio: str | Path,
    beam: int = DecodeOptions.beam,
    chunk_s: float = 20.0,
    overlap_s: float = 2.0,
    batch: int = 8,
    lexicon: Lexicon | None = None,
    cmvn_window_s: float | None = None,
) -> Hypothesis:
    """Best Hypothesis (text set, timesteps in output frames) for a long audio file, chunked through the model."""
    lp = chunked_log_probs(model, long_features(model, audio, cmvn_window_s), chunk_s, overlap_s, batch)
    hyp = prefix_beam_search(lp.numpy(), beam, model.tokenizer.blank, lexicon=lexicon)[0]
    hyp.text = model.tokenizer.decode(hyp.tokens).strip()
    return hyp
