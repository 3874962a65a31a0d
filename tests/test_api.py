"""The Python API (asrkit.load → Recognizer): its doctests, and agreement with the CLI on the same model."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import asrkit
import asrkit.api
from asrkit.assets import fsdd_root
from asrkit.errors import InputError
from conftest import run_cli


@pytest.fixture(scope="module")
def rec(tiny_digits_model: Path) -> asrkit.api.Recognizer:
    return asrkit.load(tiny_digits_model, device="cpu")


@pytest.fixture(scope="module")
def joined(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, Path]:
    """Three digits of the held-out speaker joined with short pauses, as samples and as a FLAC file (8 kHz)."""
    parts = []
    for d in (3, 1, 4):
        wav, sr = sf.read(fsdd_root() / "recordings" / f"{d}_george_1.flac", dtype="float32")
        assert sr == 8000
        parts += [wav, np.zeros(1200, np.float32)]
    wav = np.concatenate(parts)
    path = tmp_path_factory.mktemp("api") / "three.flac"
    sf.write(path, wav, 8000)
    return sf.read(path, dtype="float32")[0], path  # the samples as the file holds them (FLAC is 16-bit)


def test_doctests_run(rec, joined, tiny_digits_model: Path) -> None:
    wav, _ = joined
    globs = {"asrkit": asrkit, "checkpoint": tiny_digits_model, "wav": wav, "rec": rec}
    result = doctest.testmod(asrkit.api, extraglobs=globs, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted >= 10 and result.failed == 0, result


def test_path_and_samples_give_the_same_transcript(rec, joined) -> None:
    wav, path = joined
    a, b = rec.transcribe(path), rec.transcribe(wav, sample_rate=8000)
    assert a.text and a == b
    assert [(w.label, w.start, w.end) for w in a.words] == [(w.label, w.start, w.end) for w in b.words]
    assert a.text == " ".join(w.label for w in a.words)
    starts = [w.start for w in a.words]
    assert starts == sorted(starts) and a.words[-1].end <= len(wav) / 8000 + rec.frame_shift


def _same_threads() -> dict[str, str]:
    """Environment for a CLI subprocess that computes with this process's torch thread count (the count can change
    the float rounding of a matrix product)."""
    n = str(torch.get_num_threads())
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}


def test_api_equals_the_cli(rec, joined, tiny_digits_model: Path, tmp_path: Path) -> None:
    _, path = joined
    out = tmp_path / "hyp.jsonl"
    run_cli("decode", "--model", str(tiny_digits_model), "--json", "--output", str(out), str(path), env=_same_threads())
    cli = json.loads(out.read_text())
    hyp = rec.transcribe(path)
    assert cli["text"] == hyp.text and cli["score"] == pytest.approx(hyp.score, abs=1e-4)
    assert [w["label"] for w in cli["words"]] == [w.label for w in hyp.words]
    assert [w["start"] for w in cli["words"]] == [round(w.start, 3) for w in hyp.words]


TOL = 1e-4  # per log-prob, times (1 + |lp|): batch 2 and batch 1 run other GEMM kernels (measured: under 1e-6)


def test_a_batch_equals_one_by_one_and_nbest(rec, joined) -> None:
    wav, _ = joined
    short = wav[: len(wav) // 2]  # cut mid-digit: near-ties between hypotheses are likely
    feats = [rec.features(w, sample_rate=8000) for w in (wav, short)]
    together = rec.log_probs_features(feats)
    alone = [rec.log_probs_features([f])[0] for f in feats]
    for a, b in zip(together, alone):
        assert a.shape == b.shape and bool(((a - b).abs() <= TOL * (1 + b.abs())).all())
    batch = rec.transcribe([wav, short], sample_rate=8000)
    for lp, best, w in zip(alone, batch, (wav, short)):
        nb = rec.transcribe(w, sample_rate=8000, beam=10, nbest=10)  # decoded one by one
        # a hypothesis score moves by at most TOL·(frames + |score|) under the tolerance above
        eps = TOL * (len(lp) + abs(nb[0].score))
        if len(nb) < 2 or nb[0].score - nb[1].score > 2 * eps:
            assert best.text == nb[0].text
        # a near-tie may go either way: the batch's pick must score as well as the best under the one-by-one log-probs
        score = next((h.score for h in nb if h.tokens == best.tokens), None)
        assert score is not None and score >= nb[0].score - 2 * eps and abs(best.score - score) <= eps
    nb = rec.transcribe(wav, sample_rate=8000, beam=10, nbest=5)
    assert 1 < len(nb) <= 5 and nb[0].text == rec.transcribe(wav, sample_rate=8000).text
    assert [h.score for h in nb] == sorted((h.score for h in nb), reverse=True)


def test_resampled_input_and_stereo(rec, joined) -> None:
    import torchaudio.functional as AF

    wav, _ = joined
    up = AF.resample(torch.from_numpy(wav), 8000, 16000).numpy()
    stereo = np.stack([wav, wav], axis=1)
    base = rec.transcribe(wav, sample_rate=8000)
    assert rec.transcribe(stereo, sample_rate=8000) == base
    # resampled back to the model's 8 kHz: the same as resampling it by hand (not the original: 8k→16k→8k loses the
    # top of the band, and whether that moves a word depends on how the tiny model trained on this CPU)
    back = AF.resample(torch.from_numpy(up), 16000, 8000).numpy()
    assert rec.transcribe(up, sample_rate=16000) == rec.transcribe(back, sample_rate=8000)


def test_align_gives_word_times_and_says_when_it_cannot(rec, joined) -> None:
    wav, _ = joined
    hyp = rec.transcribe(wav, sample_rate=8000)
    a = rec.align(wav, hyp.text, sample_rate=8000)
    assert a.feasible and [w.label for w in a.words] == hyp.text.split()
    assert len(a.tokens) == len(hyp.text)
    too_long = rec.align(wav[:2000], "one two three four five six", sample_rate=8000)
    assert not too_long.feasible and too_long.words == []
    with pytest.raises(InputError, match="not in the model's vocabulary"):
        rec.align(wav, "x-ray", sample_rate=8000)


def test_bad_calls_are_one_line_errors(rec, joined) -> None:
    wav, path = joined
    with pytest.raises(InputError, match="sample_rate"):
        rec.transcribe(wav)
    with pytest.raises(InputError, match="a file says its own rate"):
        rec.transcribe(path, sample_rate=8000)
    with pytest.raises(InputError, match="NaN"):
        rec.transcribe(np.full(800, np.nan, np.float32), sample_rate=8000)
    with pytest.raises(InputError, match="no samples"):
        rec.transcribe(np.zeros(0, np.float32), sample_rate=8000)
    with pytest.raises(InputError, match="classifier model"):
        rec.classify(wav, sample_rate=8000)
    with pytest.raises(InputError, match="beam must be at least 1"):
        rec.transcribe(wav, sample_rate=8000, beam=0)


def test_classify_with_a_classifier_checkpoint(tiny_digits_model: Path, joined, tmp_path: Path) -> None:
    """A classifier built from the tiny model's settings: the API's ranking is the model's own softmax."""
    from asrkit.models import build_model
    from asrkit.models.acoustic import AcousticModel

    state = torch.load(tiny_digits_model, weights_only=True)
    labels = ["zero", "one", "two"]
    cfg = {**state["model_config"], "head": "classifier", "pool": "mean", "n_tokens": len(labels)}
    torch.manual_seed(0)
    state = {
        **state,
        "model_config": cfg,
        "tokenizer": {"kind": "labels", "symbols": labels},
        "model": build_model(cfg).state_dict(),
    }
    rec = asrkit.api.Recognizer(AcousticModel(state, "cpu"))
    wav, _ = joined
    c = rec.classify(wav, sample_rate=8000, top=3)
    lp = rec.model.classify([rec.features(wav, sample_rate=8000)])[0]
    assert c.label == labels[int(lp.argmax())] and c.probability == pytest.approx(float(lp.max().exp()))
    assert sorted(p for _, p in c.top) == pytest.approx(sorted(lp.exp().tolist()), abs=1e-6) and sum(
        p for _, p in c.top
    ) == pytest.approx(1.0, abs=1e-5)
    assert [x.label for x in rec.classify([wav, wav[:4000]], sample_rate=8000)][0] == c.label
    with pytest.raises(InputError, match="transcribe\\(\\) decodes CTC models"):
        rec.transcribe(wav, sample_rate=8000)


def test_vtln_decodes_through_the_api_and_the_cli(rec, joined, tiny_digits_model: Path, tmp_path: Path) -> None:
    from asrkit.decode.ctc import greedy_decode
    from asrkit.decode.vtln import VTLN_FACTORS, vtln_log_probs

    wav, path = joined
    feats = [rec.features(wav, sample_rate=8000)]
    lps, chosen = vtln_log_probs(rec.model.log_probs, feats, rec.model.feature_settings)
    assert chosen[0] in VTLN_FACTORS
    hyp = rec.transcribe(wav, sample_rate=8000, beam=1, vtln=True)
    assert hyp.text == rec.tokenizer.decode(greedy_decode(lps[0]).tokens)
    out = tmp_path / "hyp.txt"
    run_cli(
        "decode",
        "--model",
        str(tiny_digits_model),
        "--beam",
        "1",
        "--vtln",
        "--output",
        str(out),
        str(path),
        env=_same_threads(),
    )
    assert out.read_text().split("\t", 1)[1].strip() == hyp.text
    bad = run_cli("decode", "--model", str(tiny_digits_model), "--stream", "--vtln", str(path), check=False)
    assert bad.returncode != 0 and "--vtln" in bad.stderr and "Traceback" not in bad.stderr


def test_decode_reads_with_another_normalisation_through_the_api_the_cli_and_the_recipe(
    rec, joined, tiny_digits_model: Path, tmp_path: Path
) -> None:
    """`--cmvn` / `DecodeOptions.cmvn` / a trained recipe's `decode.cmvn` replace the model's own normalisation."""
    from asrkit.config import DecodeOptions
    from asrkit.decode.ctc import greedy_decode
    from asrkit.models.acoustic import AcousticModel
    from asrkit.models.checkpoint import load_checkpoint

    wav, path = joined
    assert rec.model.cmvn == "utterance"  # trained with it, and its recipe names nothing else to decode with
    raw = rec.model.extractor(torch.from_numpy(wav).float())
    assert torch.equal(rec.features(wav, sample_rate=8000, cmvn="none"), raw)
    assert not torch.allclose(rec.features(wav, sample_rate=8000), raw, atol=0.1)
    want = rec.tokenizer.decode(greedy_decode(rec.model.log_probs([raw])[0]).tokens)
    assert rec.transcribe(wav, sample_rate=8000, beam=1, options=DecodeOptions(cmvn="none")).text == want
    out = tmp_path / "none.txt"
    run_cli("decode", "--model", str(tiny_digits_model), "--beam", "1", "--cmvn", "none", "-o", str(out), str(path))
    assert out.read_text().split("\t", 1)[1].strip() == want
    # a trained recipe's decode.cmvn is how the model reads by default, in every command
    state = load_checkpoint(tiny_digits_model, "cpu")
    state["recipe"] = {**state["recipe"], "decode": {**state["recipe"]["decode"], "cmvn": "none"}}
    assert AcousticModel(state, "cpu").cmvn == "none"
    assert torch.equal(asrkit.api.Recognizer(AcousticModel(state, "cpu")).features(wav, sample_rate=8000), raw)
    for args, words in (
        (["--cmvn", "prior_speech"], "needs the training set's statistics"),  # trained without them
        (["--cmvn", "loud"], "--cmvn must be one of"),
        (["--stream", "--cmvn", "none"], "--cmvn"),
    ):
        bad = run_cli("decode", "--model", str(tiny_digits_model), *args, str(path), check=False)
        assert bad.returncode != 0 and words in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    with pytest.raises(InputError, match="statistics"):
        rec.transcribe(wav, sample_rate=8000, options=DecodeOptions(cmvn="prior_level"))


def test_small_api_edges(rec, joined, tmp_path: Path) -> None:
    wav, path = joined
    with pytest.raises(InputError, match="is a folder: give one audio file"):
        rec.transcribe(tmp_path)
    hyp = rec.transcribe(wav, sample_rate=8000)
    # word times are whole microseconds (frame × shift without float dust such as 0.9299999999999999)
    assert hyp.words and all(round(t, 6) == t and len(repr(t)) <= 9 for w in hyp.words for t in (w.start, w.end))
