"""AN4's digit strings as extra training voices: Sphinx cepstra back to audio (asrkit.data.vocoder), the reader
that keeps the digit-only utterances, and the fold check that keeps a held-out speaker out of them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asrkit.assets import fsdd_root
from asrkit.audio import load_audio
from asrkit.config import recipe_from_dict
from asrkit.data import tts, vocoder
from asrkit.data.corpora import digits
from asrkit.data.manifest import read_manifest
from asrkit.data.prepare import prepare
from asrkit.data.sphinx import read_mfc, write_mfc
from asrkit.errors import InputError

from conftest import shared

WORD = fsdd_root() / "recordings" / "3_jackson_11.flac"


def _word() -> np.ndarray:
    return load_audio(WORD, vocoder.SAMPLE_RATE).numpy()


def _corr(a: np.ndarray, b: np.ndarray, k: int) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n, k], b[:n, k])[0, 1])


def test_sphinx_cepstra_are_the_dct_of_the_log_filterbank():
    """Sphinx counts its first filter half: a copy 6 dB louder moves c0 by ln 4 · 39.5/40, and each higher
    cepstrum by the half-counted filter's share, -ln 4 · cos(πi/80)/80."""
    x = _word() + np.random.default_rng(0).normal(0, 1e-4, len(_word())).astype(np.float32)  # no all-zero frames
    a, b = vocoder.sphinx_cepstra(x), vocoder.sphinx_cepstra(2 * x)
    assert a.shape == (1 + (len(x) - vocoder.WIN) // vocoder.HOP, 13)
    assert np.allclose(b[:, 0] - a[:, 0], np.log(4.0) * (39.5 / 40), atol=1e-4)
    i = np.arange(1, 13)
    assert np.allclose(b[:, 1:] - a[:, 1:], -np.log(4.0) * np.cos(np.pi * i / 80) / 80, atol=1e-4)


def test_vocoded_cepstra_give_the_cepstra_back():
    """Real speech → cepstra → audio → cepstra: the envelope's trajectory survives (the pitch is made up)."""
    c = vocoder.sphinx_cepstra(_word())
    y = vocoder.vocode(c, np.random.default_rng(0), f0=110.0)
    assert y.dtype == np.float32 and np.isclose(np.abs(y).max(), 0.5)
    assert len(y) == (len(c) - 1) * vocoder.HOP + vocoder.WIN
    back = vocoder.sphinx_cepstra(y)
    assert abs(len(back) - len(c)) <= 1
    assert min(_corr(c, back, k) for k in (0, 1, 2, 3)) > 0.85
    # against a control: another word's envelope matches far worse
    other = vocoder.sphinx_cepstra(
        load_audio(fsdd_root() / "recordings" / "6_george_11.flac", vocoder.SAMPLE_RATE).numpy()
    )
    assert _corr(c, back, 1) > _corr(other, back, 1) + 0.3


def test_vocoder_pitch_follows_f0():
    """The voiced stretch of the output has its harmonics where `f0` puts them."""
    c = vocoder.sphinx_cepstra(_word())
    for f0 in (100.0, 200.0):
        y = vocoder.vocode(c, np.random.default_rng(1), f0=f0)
        voiced = np.flatnonzero(vocoder._voiced(c.astype(np.float64)))
        seg = y[voiced[0] * vocoder.HOP : (voiced[-1] + 1) * vocoder.HOP]
        ac = np.correlate(seg, seg, "full")[len(seg) - 1 :]
        lo, hi = vocoder.SAMPLE_RATE // 400, vocoder.SAMPLE_RATE // 60
        period = lo + int(np.argmax(ac[lo:hi]))
        assert abs(vocoder.SAMPLE_RATE / period - f0) < 0.15 * f0


def test_real_an4_cepstra_vocode_to_speech_with_their_envelope():
    root = shared("an4") / "an4"
    mfc = root / "feat" / "an4_clstk" / "fash" / "cen7-fash-b.mfc"
    c = read_mfc(mfc)
    y = vocoder.vocode(c, np.random.default_rng(0), f0=200.0)
    assert np.isfinite(y).all() and abs(len(y) / vocoder.SAMPLE_RATE - len(c) / 100) < 0.05
    back = vocoder.sphinx_cepstra(y)
    assert min(_corr(c, back, k) for k in (0, 1, 2)) > 0.85


def _an4_fixture(root, lines: dict[str, str], missing: tuple[str, ...] = ()) -> None:
    """A small AN4 layout: the transcription, and cepstra made from FSDD words for every listed utterance."""
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "an4_train.transcription").write_text("".join(f"<s> {t} </s> ({u})\n" for u, t in lines.items()))
    c = vocoder.sphinx_cepstra(_word())
    for uid in lines:
        if uid in missing:
            continue
        folder = root / "feat" / "an4_clstk" / uid.split("-")[1]
        folder.mkdir(parents=True, exist_ok=True)
        write_mfc(folder / f"{uid}.mfc", np.concatenate([c] * len(lines[uid].split())))


LINES = {
    "cen1-fabc-b": "ONE TWO THREE",
    "cen2-fabc-b": "ENTER SIX TWO",  # not only digits
    "cen3-mdef-b": "FIVE OH NINE",  # "oh": the recipe writes zero
    "cen4-mdef-b": "NINE EIGHT",
    "cen5-mxyz-b": "SEVEN",  # no features on disk
}


def test_an4_reader_keeps_the_digit_strings_it_can_read(tmp_path):
    _an4_fixture(tmp_path / "an4", LINES, missing=("cen5-mxyz-b",))
    got = digits.an4_utterances(tmp_path / "an4")
    assert [(u.uid, u.speaker, u.text) for u in got] == [
        ("cen1-fabc-b", "an4-fabc", "one two three"),
        ("cen4-mdef-b", "an4-mdef", "nine eight"),
    ]
    assert all(u.path.suffix == ".mfc" and u.path.is_file() for u in got)


def _recipe(tmp_path, **digits_cfg):
    data = {
        "out_dir": str(tmp_path / "data"),
        "connected": {"per_split": {"train": 4, "dev": 2, "test": 2}},
        "digits": {"sources": ["fsdd", "an4"], **digits_cfg},
    }
    return recipe_from_dict({"name": "an4_voices", "data": data, "features": {"n_mels": 40, "f_max": 4000}})


def test_an4_root_from_the_recipe_then_asrkit_data(tmp_path, monkeypatch):
    _an4_fixture(tmp_path / "env" / "an4", LINES)
    monkeypatch.delenv("ASRKIT_DATA", raising=False)
    assert digits.an4_root(_recipe(tmp_path)) is None
    monkeypatch.setenv("ASRKIT_DATA", str(tmp_path / "env"))
    assert digits.an4_root(_recipe(tmp_path)) == tmp_path / "env" / "an4"
    with pytest.raises(InputError, match="holds no AN4 corpus"):
        digits.an4_root(_recipe(tmp_path, an4_root=str(tmp_path / "nothing")))


def test_without_an4_the_recipe_says_so_in_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("ASRKIT_DATA", raising=False)
    notes = []
    monkeypatch.setattr(tts, "note", notes.append)
    assert digits.gather_an4(_recipe(tmp_path), {"test": []}) == []
    assert len(notes) == 1 and "AN4" in notes[0] and "\n" not in notes[0]


def test_an4_strings_train_in_several_voices_and_nowhere_else(tmp_path, monkeypatch):
    monkeypatch.delenv("ASRKIT_DATA", raising=False)
    _an4_fixture(tmp_path / "an4", LINES)
    recipe = _recipe(tmp_path, an4_root=str(tmp_path / "an4"), an4_copies=3)
    prepare(recipe, quiet=True)
    train = [u for u in read_manifest(tmp_path / "data" / "train.jsonl") if u.extra.get("source") == "an4"]
    assert sorted(u.id for u in train) == sorted(
        f"{uid}_v{k}" for uid in ("cen1-fabc-b", "cen4-mdef-b", "cen5-mxyz-b") for k in range(3)
    )
    assert {u.text for u in train} == {"one two three", "nine eight", "seven"} and all(
        u.extra["kind"] == "connected" for u in train
    )
    # three copies, three different voices: the audio differs
    a, b = [load_audio(u.audio, 16000) for u in sorted(train, key=lambda u: u.id) if u.id.startswith("cen1")][:2]
    assert not torch.equal(a[: min(len(a), len(b))], b[: min(len(a), len(b))])
    for split in ("dev", "test", "test_isolated"):
        assert not any(u.speaker.startswith("an4-") for u in read_manifest(tmp_path / "data" / f"{split}.jsonl"))


def test_a_held_out_speaker_among_an4s_is_refused(tmp_path):
    _an4_fixture(tmp_path / "an4", LINES)
    recipe = _recipe(tmp_path, an4_root=str(tmp_path / "an4"))
    recipe.data.test_speakers = ["an4-fabc"]
    held = [digits.Recording(WORD, 3, "an4-fabc", 0)]
    with pytest.raises(InputError, match=r"an4-fabc.*AN4"):
        digits.gather_an4(recipe, {"test": held})
    assert len(digits.gather_an4(recipe, {"test": [digits.Recording(WORD, 3, "jackson", 0)]})) == 3
