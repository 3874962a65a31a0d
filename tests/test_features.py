"""asrkit.features: log-mel, CMVN (per utterance and global) and SpecAugment."""

from __future__ import annotations

import math

import pytest
import torch

from asrkit.config import FeatureConfig, SpecAugmentConfig
from asrkit.features import (
    CMVNStats,
    LogMel,
    feature_settings,
    make_extractor,
    normalize,
    spec_augment_batch,
    utterance_cmvn,
)

SR = 16000


def _tone(freq: float, seconds: float = 1.0, sr: int = SR) -> torch.Tensor:
    t = torch.arange(int(seconds * sr), dtype=torch.float64) / sr
    return (0.5 * torch.sin(2 * math.pi * freq * t)).float()


def _expected_band(freq: float, lm: LogMel, n_mels: int) -> int:
    """The mel band whose triangular filter weighs the tone's FFT bin most."""
    import torchaudio.functional as AF

    n_fft = lm.mel.n_fft
    fb = AF.melscale_fbanks(n_fft // 2 + 1, 0.0, SR / 2, n_mels, SR)  # (n_freqs, n_mels)
    fft_bin = round(freq * n_fft / SR)
    return int(fb[fft_bin].argmax())


def test_logmel_shape_one_second():
    lm = LogMel(SR, n_mels=80, win_ms=25, hop_ms=10)
    assert lm.hop_length == 160 and lm.win_length == 400
    wav = torch.randn(SR) * 0.1
    f = lm(wav)
    assert f.shape == (1 + SR // 160, 80)
    assert f.dtype == torch.float32
    assert torch.isfinite(f).all()


def test_logmel_batched_and_other_settings():
    lm = LogMel(8000, n_mels=40, win_ms=32, hop_ms=16)
    assert lm.hop_length == 128
    f = lm(torch.randn(3, 4000) * 0.1)
    assert f.shape == (3, 1 + 4000 // 128, 40)


def test_silence_is_floored_not_minus_inf():
    f = LogMel(SR, n_mels=40)(torch.zeros(SR // 2))
    assert torch.allclose(f, torch.full_like(f, math.log(1e-6)))


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0, 6000.0])
def test_tone_peaks_in_its_mel_band(freq):
    n_mels = 40
    lm = LogMel(SR, n_mels=n_mels)
    f = lm(_tone(freq))
    band = int(f[5:-5].mean(0).argmax())
    assert abs(band - _expected_band(freq, lm, n_mels)) <= 1


def test_higher_tone_has_higher_peak_band():
    lm = LogMel(SR, n_mels=80)
    low = int(lm(_tone(500.0)).mean(0).argmax())
    high = int(lm(_tone(2500.0)).mean(0).argmax())
    assert high > low + 10


def test_feature_settings_and_make_extractor():
    cfg = FeatureConfig(n_mels=64, win_ms=20, hop_ms=10)
    s = feature_settings(cfg, 8000)
    assert "specaugment" not in s
    assert s == {
        "type": "logmel",
        "n_mels": 64,
        "win_ms": 20.0,
        "hop_ms": 10.0,
        "f_min": 0.0,
        "f_max": None,
        "cmvn": "utterance",
        "sample_rate": 8000,
    }
    ex = make_extractor(s)
    assert ex(torch.randn(8000)).shape == (1 + 8000 // 80, 64)


def test_utterance_cmvn_zero_mean_unit_std():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 13, generator=g) * torch.linspace(0.5, 5, 13) + torch.linspace(-10, 10, 13)
    y = utterance_cmvn(x)
    assert y.shape == x.shape
    assert torch.allclose(y.mean(0), torch.zeros(13), atol=1e-5)
    assert torch.allclose(y.std(0, unbiased=False), torch.ones(13), atol=1e-4)


def _chunks():
    g = torch.Generator().manual_seed(1)
    return [torch.randn(n, 6, generator=g) * 3 + 7 for n in (50, 13, 101)]


def test_cmvn_stats_match_torch():
    chunks = _chunks()
    stats = CMVNStats(6)
    for c in chunks:
        stats.add(c)
    d = stats.to_dict()
    allf = torch.cat(chunks).double()
    assert d["frames"] == 164
    assert torch.allclose(d["mean"].double(), allf.mean(0), atol=1e-5)
    assert torch.allclose(d["std"].double(), allf.std(0, unbiased=False), atol=1e-5)


def test_normalize_modes():
    chunks = _chunks()
    stats = CMVNStats(6)
    for c in chunks:
        stats.add(c)
    d = stats.to_dict()
    x = chunks[1]
    g = normalize(x, "global", d)
    assert torch.allclose(g, (x - d["mean"]) / d["std"])
    assert not torch.allclose(g, utterance_cmvn(x), atol=1e-2)
    allnorm = normalize(torch.cat(chunks), "global", d)
    assert torch.allclose(allnorm.mean(0), torch.zeros(6), atol=1e-4)
    assert torch.allclose(normalize(x, "utterance"), utterance_cmvn(x))
    assert torch.equal(normalize(x, "none"), x)
    with pytest.raises(ValueError, match="statistics"):
        normalize(x, "global", None)


def _feats():
    g = torch.Generator().manual_seed(2)
    return torch.randn(300, 80, generator=g)


def test_spec_augment_changes_cells_and_keeps_shape():
    x = _feats()[None]
    cfg = SpecAugmentConfig(freq_masks=2, freq_width=10, time_masks=2, time_width=0.1)
    changed = 0
    for seed in range(5):
        y = spec_augment_batch(x, cfg, torch.Generator().manual_seed(seed))
        assert y.shape == x.shape
        diff = y != x
        changed += int(diff.sum())
        # whatever changed was set to the fill value: 0, the mean of normalised features
        if diff.any():
            assert torch.equal(y[diff], torch.zeros_like(y[diff]))
    assert changed > 0
    assert torch.equal(x[0], _feats())  # the input is not modified in place


def test_spec_augment_reproducible_with_same_seed():
    x = _feats()[None]
    cfg = SpecAugmentConfig(freq_masks=2, freq_width=20, time_masks=2, time_width=0.2)
    a = spec_augment_batch(x, cfg, torch.Generator().manual_seed(123))
    b = spec_augment_batch(x, cfg, torch.Generator().manual_seed(123))
    assert torch.equal(a, b)
    outs = {spec_augment_batch(x, cfg, torch.Generator().manual_seed(s)).sum().item() for s in range(6)}
    assert len(outs) > 1  # different seeds give different masks


def test_spec_augment_leaves_global_rng_unchanged():
    x = _feats()[None]
    cfg = SpecAugmentConfig()
    torch.manual_seed(99)
    state = torch.random.get_rng_state()
    expected_next = torch.rand(4)
    torch.random.set_rng_state(state)
    spec_augment_batch(x, cfg, torch.Generator().manual_seed(5))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(torch.rand(4), expected_next)


def test_spec_augment_zero_masks_is_identity():
    x = _feats()[None]
    y = spec_augment_batch(x, SpecAugmentConfig(freq_masks=0, time_masks=0), torch.Generator().manual_seed(0))
    assert torch.equal(x, y)


def test_prior_cmvn_leans_on_the_global_statistics_for_short_input_and_on_its_own_for_long():
    from asrkit.features import OnlineCMVN, prior_cmvn

    g = torch.Generator().manual_seed(2)
    stats = {"mean": torch.full((6,), 2.0), "std": torch.full((6,), 3.0)}
    short = torch.randn(5, 6, generator=g) + 10.0  # far from the global mean: its own mean must not be removed whole
    long = torch.randn(20000, 6, generator=g) * 2.0 + 10.0
    glob = normalize(short, "global", stats)
    assert torch.allclose(prior_cmvn(short, stats, prior_frames=100_000), glob, atol=1e-3)
    assert torch.allclose(prior_cmvn(short, stats, prior_frames=0), utterance_cmvn(short), atol=1e-5)
    y = prior_cmvn(long, stats)  # 100 prior frames against 20,000 of its own: close to per-utterance CMVN
    assert torch.allclose(y, utterance_cmvn(long), rtol=0.1, atol=0.05) and not torch.allclose(
        y, normalize(long, "global", stats), atol=1.0
    )
    assert float(prior_cmvn(short, stats).mean()) > 0.5  # a short input keeps most of its offset from the training set
    # the same statistics as the causal online CMVN reaches at the last frame
    assert torch.allclose(prior_cmvn(short, stats)[-1], OnlineCMVN(stats).push(short)[-1], atol=1e-5)
    assert torch.allclose(normalize(short, "prior", stats), prior_cmvn(short, stats))
    with pytest.raises(ValueError, match="prior CMVN needs statistics"):
        normalize(short, "prior", None)


def test_prior_level_cmvn_ignores_the_recordings_gain_and_keeps_its_spectral_shape():
    from asrkit.features import prior_cmvn

    g = torch.Generator().manual_seed(3)
    stats = {"mean": torch.linspace(-2.0, 2.0, 8), "std": torch.full((8,), 2.0)}
    word = torch.randn(30, 8, generator=g) + torch.tensor([3.0, 0, 0, 0, 0, 0, 0, -3.0])  # a tilted spectrum
    quiet = word - 4.0  # the same word 17 dB quieter: every log-mel band moves by the same amount
    y = normalize(word, "prior_level", stats)
    assert torch.allclose(normalize(quiet, "prior_level", stats), y, atol=1e-5)
    assert not torch.allclose(normalize(quiet, "prior", stats), normalize(word, "prior", stats), atol=0.5)
    assert float(y[:, 0].mean() - y[:, -1].mean()) > 1.0  # the tilt a short word has of its own stays
    assert torch.allclose(prior_cmvn(word, stats, level=True), y)
    # global_level: the limit of an endless prior, the recording's loudness its only statistic
    g = normalize(word, "global_level", stats)
    assert torch.allclose(normalize(quiet, "global_level", stats), g, atol=1e-5)
    assert torch.allclose(prior_cmvn(word, stats, prior_frames=10**9, level=True), g, atol=1e-4)
    assert not torch.allclose(normalize(quiet, "global", stats), g, atol=0.5)  # plain global CMVN hears the gain
    with pytest.raises(ValueError, match="prior_level CMVN needs statistics"):
        normalize(word, "prior_level", None)


def test_prior_speech_cmvn_normalises_a_word_alike_alone_and_between_long_pauses():
    from asrkit.features import speech_frames

    g = torch.Generator().manual_seed(4)
    stats = {"mean": torch.linspace(-2.0, 2.0, 8), "std": torch.full((8,), 2.0)}
    word = torch.randn(40, 8, generator=g) + torch.tensor([3.0, 2, 1, 0, 0, -1, -2, -3.0])
    pause = torch.randn(150, 8, generator=g) * 0.3 - 14.0  # 1.5 s of faint noise, 60 dB below the word
    padded = torch.cat([pause, word, pause])
    assert speech_frames(padded).tolist() == [False] * 150 + [True] * 40 + [False] * 150
    alone = normalize(word, "prior_speech", stats)
    assert torch.allclose(normalize(padded, "prior_speech", stats)[150:190], alone, atol=1e-5)
    # prior_level counts the pauses as part of the recording: its word frames move by nats
    assert not torch.allclose(
        normalize(padded, "prior_level", stats)[150:190], normalize(word, "prior_level", stats), atol=1.0
    )
    assert torch.allclose(alone, normalize(word - 4.0, "prior_speech", stats), atol=1e-5)  # gain-invariant too
    with pytest.raises(ValueError, match="prior_speech CMVN needs statistics"):
        normalize(word, "prior_speech", None)


def test_prepare_takes_prior_speech_statistics_over_the_training_speech(tmp_path, fsdd_slice):
    import torch

    from asrkit.config import recipe_from_dict
    from asrkit.data.featstore import FeatureStore
    from asrkit.data.prepare import prepare
    from asrkit.features import CMVNStats, speech_frames
    from conftest import digits_recipe_dict

    stats = {}
    for mode in ("prior_level", "prior_speech"):
        base = digits_recipe_dict()
        base["data"].update(
            root=str(fsdd_slice),
            out_dir=str(tmp_path / mode),
            connected={"per_split": {"train": 20, "dev": 4, "test": 4}},
        )
        base["features"]["cmvn"] = mode
        prepare(recipe_from_dict(base), quiet=True)
        stats[mode] = torch.load(tmp_path / mode / "cmvn.pt")
    feats = FeatureStore(tmp_path / "prior_speech" / "feats" / "train")
    want, every = CMVNStats(40), CMVNStats(40)
    for f in feats.values():
        want.add(f.float()[speech_frames(f.float())])
        every.add(f.float())
    # the cache holds float16: a frame right at the threshold may fall the other way when recomputed from it
    assert abs(stats["prior_speech"]["frames"] - want.n) <= 0.01 * want.n and want.n < 0.95 * every.n
    assert every.n == stats["prior_level"]["frames"]
    assert torch.allclose(stats["prior_speech"]["mean"], want.to_dict()["mean"], atol=0.05)
    assert (
        float(stats["prior_speech"]["mean"].mean()) > float(stats["prior_level"]["mean"].mean()) + 0.5
    )  # pauses excluded


def test_spec_augment_time_masks_follow_the_longest_utterance_not_the_padding():
    x = torch.ones(64, 400, 4)  # 64 utterances of 100 frames padded to 400
    cfg = SpecAugmentConfig(freq_masks=0, time_masks=1, time_width=0.2)

    def widest(y: torch.Tensor) -> int:
        return int((y[:, :, 0] == 0).sum(1).max())

    assert widest(spec_augment_batch(x, cfg, torch.Generator().manual_seed(1), frames=100)) <= 20
    assert widest(spec_augment_batch(x, cfg, torch.Generator().manual_seed(1))) > 20  # padded width: up to 80


def test_speech_frames_keep_a_quiet_consonant_40_db_down_and_drop_a_pause_below_that():
    """At 30 dB a quiet voice's consonants fell out of prior_speech's statistics; the threshold is 40 dB."""
    from asrkit.features import SPEECH_DB, speech_frames

    nats = math.log(10.0) / 10.0  # one dB of power in natural-log units
    energy = [0.0] * 20 + [-35.0 * nats] * 5 + [-45.0 * nats] * 5  # vowels, a consonant 35 dB down, a pause 45 dB down
    feats = torch.tensor(energy, dtype=torch.float64)[:, None].expand(-1, 8)
    assert SPEECH_DB == 40.0
    assert speech_frames(feats).tolist() == [True] * 25 + [False] * 5
    assert speech_frames(feats, 30.0).tolist() == [True] * 20 + [False] * 10
