"""Chunked decoding of long recordings: stitching arithmetic, cut placement, words against the parts, peak memory."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from asrkit.decode.chunked import chunked_log_probs, cut_energy, plan_windows
from asrkit.features import sliding_cmvn, utterance_cmvn
from conftest import TINY_SPEAKER, asrkit_cmd

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


class ConvModel:
    """Stands in for AcousticModel: output frame j is an integer-weighted sum of input frames [j·s - r, j·s + s + r), zero-padded.

    Integer features and weights make every sum exact, so stitched and whole outputs compare with ==.
    """

    def __init__(self, subsample: int, radius: int, n_feats: int = 3):
        self.config = {"subsample": subsample}
        self.feature_settings = {"hop_ms": 10.0}
        self.s, self.r = subsample, radius
        self.calls: list[list[int]] = []
        g = torch.Generator().manual_seed(subsample * 100 + radius)
        self.w = torch.randint(-3, 4, (n_feats, subsample + 2 * radius), generator=g)

    def log_probs(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        self.calls.append([f.shape[0] for f in feats])
        out = []
        for f in feats:
            x = torch.nn.functional.pad(f.long().T, (self.r, self.r + (-f.shape[0]) % self.s))
            out.append((x.unfold(1, self.w.shape[1], self.s) * self.w[:, None]).sum(-1).T.double())
        return out


def _ints(frames: int, seed: int) -> torch.Tensor:
    return torch.randint(-5, 6, (frames, 3), generator=torch.Generator().manual_seed(seed)).double()


CHUNK, OVERLAP = 1.0, 0.1  # 100 and 10 frames at 10 ms


@pytest.mark.parametrize("subsample", [1, 2, 3, 4])
@pytest.mark.parametrize("search_s", [0.0, 0.3])
def test_stitched_output_equals_the_whole_input(subsample: int, search_s: float) -> None:
    lengths = [1, 7, 37, 38, 49, 50, 51, 99, 100, 101, 102, 178, 179, 180, 181, 299, 300, 301, 1000, 1237]
    for n, (chunk, overlap) in [(n, co) for n in lengths for co in [(CHUNK, OVERLAP), (0.5, 0.2), (0.37, 0.05)]]:
        m = ConvModel(subsample, radius=int(round(overlap * 100)))
        feats = _ints(n, n)
        whole = m.log_probs([feats])[0]
        m.calls.clear()
        got = chunked_log_probs(m, feats, chunk_s=chunk, overlap_s=overlap, batch=3, search_s=search_s)
        assert got.shape == whole.shape, (n, chunk, overlap)
        assert torch.equal(got, whole), (n, chunk, overlap)
        assert all(len(c) <= 3 for c in m.calls)
        assert all(t <= round(chunk * 100) for c in m.calls for t in c)


def test_context_shorter_than_the_receptive_field_shows_at_the_cuts() -> None:
    # the same comparison catches a window that does not see far enough past its kept frames
    m = ConvModel(3, radius=20)
    feats = _ints(1000, 0)
    whole = m.log_probs([feats])[0]
    got = chunked_log_probs(m, feats, chunk_s=CHUNK, overlap_s=OVERLAP, batch=4, search_s=0)
    assert got.shape == whole.shape
    assert not torch.equal(got, whole)


def test_short_input_goes_through_in_one_piece() -> None:
    m = ConvModel(2, radius=1)
    feats = _ints(100, 1)
    got = chunked_log_probs(m, feats, chunk_s=CHUNK, overlap_s=OVERLAP)
    assert m.calls == [[100]] and torch.equal(got, m.log_probs([feats])[0])
    with pytest.raises(ValueError, match="no core"):
        chunked_log_probs(m, _ints(101, 1), chunk_s=CHUNK, overlap_s=0.5)


@pytest.mark.parametrize("subsample", [1, 3, 4])
def test_windows_fit_the_chunk_and_keep_each_frame_once_farthest_from_an_edge(subsample: int) -> None:
    n, chunk, overlap = 2345, 200, 30
    energy = torch.rand(-(-n // subsample), generator=torch.Generator().manual_seed(subsample))
    for e, search in [(None, 0), (energy, 40)]:
        wins = plan_windows(n, subsample, chunk, overlap, e, search)
        assert wins[0].keep_start == 0 and wins[-1].keep_end == -(-n // subsample) and wins[-1].end == n
        for a, b in zip(wins, wins[1:]):
            assert a.keep_end == b.keep_start
        for w in wins:
            assert w.start % subsample == 0 and w.end - w.start <= chunk and w.keep_start < w.keep_end
            lo_ctx = w.keep_start - w.start // subsample
            hi_ctx = -(-w.end // subsample) - w.keep_end
            # context on each side of the kept frames, except at the ends of the recording
            assert w.start == 0 or lo_ctx * subsample >= overlap
            assert w.end == n or hi_ctx * subsample >= overlap
        for a, b in zip(wins, wins[1:]):
            # a kept frame next to a cut is at least as far from its own window's edges as from the neighbour's
            f = a.keep_end - 1
            assert (a.end // subsample) - 1 - f >= f - b.start // subsample
            assert b.keep_start - b.start // subsample >= (a.end // subsample) - 1 - b.keep_start


def test_cuts_land_in_the_quiet_stretches() -> None:
    hop_frames_per_s = 100
    n = 60 * hop_frames_per_s
    feats = torch.full((n, 4), 1.0)
    pauses = [(p, p + 30) for p in range(230, n, 250)]  # 0.3 s pauses every 2.5 s, speech-level elsewhere
    for a, b in pauses:
        feats[a:b] = -2.0
    noise = torch.rand(n, 4, generator=torch.Generator().manual_seed(0)) * 0.5
    m = ConvModel(3, radius=0, n_feats=4)
    energy = cut_energy(feats + noise, 3, max(1, round(0.25 * hop_frames_per_s / 3)))
    wins = plan_windows(n, 3, 1000, 200, energy, round(4.0 * hop_frames_per_s / 3))
    assert len(wins) > 5
    for w in wins[:-1]:
        cut = w.keep_end * 3
        assert any(a <= cut < b for a, b in pauses), (cut, w)
    # and the stitched output is still the whole input's
    x = (feats + noise).round()
    assert torch.equal(chunked_log_probs(m, x, chunk_s=10, overlap_s=2), m.log_probs([x])[0])


def test_sliding_cmvn_matches_windowed_statistics() -> None:
    x = torch.randn(700, 5, generator=torch.Generator().manual_seed(0)) * 3 + torch.linspace(-4, 4, 700)[:, None]
    assert torch.allclose(sliding_cmvn(x, 700), utterance_cmvn(x), atol=1e-6)
    y = sliding_cmvn(x, 101)
    for t in (0, 10, 50, 51, 300, 648, 649, 699):
        lo = min(max(t - 50, 0), 700 - 101)
        w = x[lo : lo + 101]
        ref = (x[t] - w.mean(0)) / w.std(0, unbiased=False)
        assert torch.allclose(y[t], ref, atol=1e-5), t


# ---- a real (tiny) model -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tiny_digits_model: Path) -> Path:
    """The shared tiny BiLSTM digits model (tests/conftest.py)."""
    return tiny_digits_model


def _join(recordings: list[Path], sr: int, gap_s: float, seed: int) -> list[np.ndarray]:
    """Each recording with half a gap of faint noise on either side: the pieces that, joined, make the long file."""
    from asrkit.audio import load_audio

    g = np.random.default_rng(seed)
    half = int(gap_s * sr / 2)
    return [
        np.concatenate([g.normal(0, 1e-4, half), load_audio(r, sr).numpy(), g.normal(0, 1e-4, half)]).astype(np.float32)
        for r in recordings
    ]


def test_long_recording_chunked_gives_the_words_of_the_whole(tiny_model: Path, tmp_path: Path) -> None:
    """Chunking's own guarantee: windows cut in pauses give the words the same features give in one pass.

    Not that parts decoded alone give the same words: that depends on context (utterance CMVN, the recurrent state)
    and on how the tiny model happened to train on this CPU, so it is no machine-independent fact."""
    from asrkit.assets import fsdd_root
    from asrkit.decode.beam import prefix_beam_search
    from asrkit.decode.chunked import decode_long, long_features
    from asrkit.decode.ctc import lexicon_from_words
    from asrkit.models.acoustic import AcousticModel

    torch.set_num_threads(1)
    m = AcousticModel.load(tiny_model, "cpu")
    lex = lexicon_from_words(WORDS, m.tokenizer)
    rng = random.Random(0)
    # the model's training recordings: this checks that chunking changes nothing, not how well a tiny model generalises
    recs = [fsdd_root() / "recordings" / f"{d}_{TINY_SPEAKER}_{i}.flac" for d in range(10) for i in range(5)]
    chosen = [rng.choice(recs) for _ in range(80)]
    audio = tmp_path / "long.flac"
    sf.write(audio, np.concatenate(_join(chosen, m.sample_rate, 0.4, seed=0)), m.sample_rate, subtype="PCM_16")
    assert sf.info(audio).frames > 6 * 10 * m.sample_rate

    def words(lp: torch.Tensor) -> list[str]:
        return m.tokenizer.decode(prefix_beam_search(lp.numpy(), 10, m.tokenizer.blank, lexicon=lex)[0].tokens).split()

    feats = long_features(m, audio)
    whole = words(m.log_probs([feats])[0])
    truth = [WORDS[int(r.name[0])] for r in chosen]
    assert len(whole) > 0.8 * len(truth)  # a real transcript to compare, not an empty one
    # 10 s windows as in use, and 3 s windows whose ~70 cuts come every second, so some must move out of words
    assert decode_long(m, audio, chunk_s=10, overlap_s=2, lexicon=lex).text.split() == whole
    assert words(chunked_log_probs(m, feats, chunk_s=3, overlap_s=1)) == whole


# runs one command and reports its peak resident size (this wrapper's only child, so nothing else counts)
CHILD = """
import json, resource, subprocess, sys, time
t = time.time()
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"rc": p.returncode, "out": p.stdout, "err": p.stderr[-2000:], "seconds": round(time.time() - t, 1), "peak_mb": round(peak)}))
"""


LIMIT_BYTES = 1.5e9


@pytest.mark.parametrize("recipe_name", ["digits", pytest.param("librispeech", marks=pytest.mark.slow)])
def test_ten_minutes_decode_under_the_memory_limit(recipe_name: str, tiny_model: Path, tmp_path: Path) -> None:
    """A recipe's model size and features, weights untrained (memory does not depend on them), on 10 minutes of 8 kHz audio.

    The LibriSpeech model (conv front-end, 4x512 BiLSTM) is the one chunking is for: run on the whole file at
    once it peaks at 1.50-1.59 GB (over the limit), chunked at ~1.05 GB; the digits model stays under 1 GB either way.
    """
    from asrkit.assets import fsdd_root
    from asrkit.config import recipe_from_dict
    from asrkit.features import CMVN_WITH_STATS, feature_settings
    from asrkit.models import build_model
    from asrkit.models.checkpoint import load_checkpoint, save_checkpoint

    recipe = recipe_from_dict(yaml.safe_load((ROOT / "recipes" / f"{recipe_name}.yaml").read_text()))
    state = load_checkpoint(tiny_model)
    cfg = {
        **recipe.to_dict()["model"],
        "n_feats": recipe.features.n_mels,
        "n_tokens": state["model_config"]["n_tokens"],
    }
    torch.manual_seed(0)
    features = feature_settings(recipe.features, recipe.data.sample_rate)
    state.update(model_config=cfg, model=build_model(cfg).state_dict(), features=features)
    if features["cmvn"] in CMVN_WITH_STATS:  # statistics the tiny model never had: identity ones will do
        n = recipe.features.n_mels
        state["cmvn"] = {"mean": torch.zeros(n), "std": torch.ones(n), "frames": 1}
    ckpt = tmp_path / f"{recipe_name}_size.pt"
    save_checkpoint(ckpt, state)

    recs = sorted((fsdd_root() / "recordings").glob(f"*_{TINY_SPEAKER}_*.flac"))[:100]
    one = np.concatenate(_join(recs, 8000, 0.4, seed=1))
    audio = tmp_path / "ten_minutes.flac"
    # 8 kHz like FSDD, so decoding also resamples it to the model's 16 kHz
    sf.write(audio, np.tile(one, int(np.ceil(600 * 8000 / len(one))))[: 600 * 8000], 8000, subtype="PCM_16")

    # the real command, as a user runs it: asrkit decode chunks the file because it is long
    cmd = [*asrkit_cmd(), "decode", "--model", str(ckpt), "--json", "--quiet", str(audio)]
    proc = subprocess.run([sys.executable, "-c", CHILD, *cmd], capture_output=True, text=True, timeout=600)
    report = json.loads(proc.stdout.splitlines()[-1])
    assert report["rc"] == 0, report["err"]
    print(recipe_name, {k: v for k, v in report.items() if k not in ("out", "err")})
    (line,) = report["out"].splitlines()
    rec = json.loads(line)
    assert rec["id"] == "ten_minutes" and all(0 <= t * rec["frame_shift"] <= 600 for t in rec["timesteps"])
    assert report["peak_mb"] * 2**20 < LIMIT_BYTES
