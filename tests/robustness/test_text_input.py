"""Hostile transcripts: characters outside the vocabulary (data.oov), empty texts, CTC-infeasible lengths, Unicode forms."""

from __future__ import annotations

import io
import math
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asrkit.cli import main
from asrkit.data.manifest import Utterance, read_manifest
from asrkit.errors import InputError
from asrkit.text import CharTokenizer, filter_transcripts, normalize_text

SR = 16000


def _utts(split: str, texts: dict[str, str | None]) -> list[Utterance]:
    return [
        Utterance(f"{split}-{k}", None, 1.0, SR, normalize_text(t) if t is not None else None) for k, t in texts.items()
    ]


# ---- Unicode normalisation ---------------------------------------------------------------------------------------

SAME = [
    ("café", "cafe\u0301"),  # composed and decomposed é
    ("123 abc", "１２３ ＡＢＣ"),  # full-width digits and letters
    ("don't", "don\u2019t"),  # typographic apostrophe (LibriSpeech-style alphabets have only ')
    ("don't", "don\u2018t"),  # left single quote used as one: once split the word ("don t")
    ("don't", "don\u02bct"),  # modifier letter apostrophe: once kept as a character outside any alphabet
    ("don't", "don`t"),
    ("don't", "DON\u00b4T"),  # acute accent as apostrophe: NFKC alone makes it a space and a combining mark
    ("istanbul", "\u0130stanbul"),  # İ: str.lower() leaves i + a combining dot
    ("cooperate", "co\u00adoperate"),  # soft hyphen: invisible, once a word break
    ("हिन्दी", "हिन्दी"),  # vowel signs and virama: once cut out of the word ("ह न द")
    ("hello world", '"Hello,"\u00a0 world\u2014'),
]


@pytest.mark.parametrize(("expected", "raw"), SAME)
def test_unicode_forms_normalise_to_one_text(expected: str, raw: str) -> None:
    assert normalize_text(raw) == expected
    assert normalize_text(expected) == expected  # idempotent
    assert normalize_text(raw) == unicodedata.normalize("NFC", normalize_text(raw))


def test_prepare_decode_lexicon_and_hotwords_share_one_normalisation() -> None:
    """The lexicon (decode --lexicon) and the prepared transcripts agree on a word however it is typed."""
    from asrkit.decode.ctc import lexicon_from_words

    tok = CharTokenizer(sorted(set("dont'cafe ")) + ["é"])
    lex = lexicon_from_words(["DON\u2019T", "Cafe\u0301"], tok)
    prepared = {normalize_text("don't"), normalize_text("café")}
    assert {"".join(tok.symbols[i] for i in w) for w in lex.words} == prepared
    for w in ("DON\u2019T", "don\u02bct", "Cafe\u0301", "CAFÉ"):
        assert normalize_text(w) in prepared
        tok.encode(normalize_text(w))  # every normalised form is in the vocabulary built from the prepared texts


# ---- characters outside the vocabulary --------------------------------------------------------------------------


def _manifests() -> dict[str, list[Utterance]]:
    return {
        "train": _utts("train", {"a": "one two", "b": "caf\u00e9 one", "c": "stra\u00dfe", "d": "\u4e2d one"}),
        "dev": _utts("dev", {"a": "two", "b": "na\u00efve"}),
        "test": _utts("test", {"a": "na\u00efve \u4e2d"}),
    }


def test_oov_error_names_split_utterance_and_character() -> None:
    with pytest.raises(InputError) as e:
        filter_transcripts(_manifests(), "abcdefghijklmnopqrstuvwxyz'", "error", log=io.StringIO())
    msg = str(e.value)
    assert "train-b" in msg and "'é'" in msg and "data.oov" in msg and "\n" not in msg


def test_oov_drop_drops_the_utterances_and_counts_them() -> None:
    log = io.StringIO()
    out = filter_transcripts(_manifests(), "abcdefghijklmnopqrstuvwxyz'", "drop", log=log)
    assert [u.id for u in out["train"]] == ["train-a"]
    assert [u.id for u in out["dev"]] == ["dev-a"]
    assert [u.text for u in out["test"]] == ["naïve 中"]  # references are scored as they are
    lines = log.getvalue().splitlines()
    assert "prepare: train: dropped 3 of 4 utterances with characters outside the vocabulary" in lines[0]
    assert "'é' ×1" in lines[0] and "'ß' ×1" in lines[0] and "'中' ×1" in lines[0]
    assert lines[1].startswith("prepare: dev: dropped 1 of 2")


def test_oov_map_transliterates_and_drops_only_the_unmappable() -> None:
    log = io.StringIO()
    out = filter_transcripts(_manifests(), "abcdefghijklmnopqrstuvwxyz'", "map", log=log)
    assert [u.text for u in out["train"]] == ["one two", "cafe one", "strasse"]
    assert [u.text for u in out["dev"]] == ["two", "naive"]
    text = log.getvalue()
    assert "prepare: train: mapped 2 characters" in text and "'é→e' ×1" in text and "'ß→ss' ×1" in text
    assert (
        "prepare: train: dropped 1 of 4 utterances with characters outside the vocabulary and no mapping ('中' ×1"
        in text
    )
    assert "prepare: dev: mapped 1 characters" in text


def test_without_an_alphabet_the_train_texts_are_the_vocabulary() -> None:
    m = _manifests()
    out = filter_transcripts(m, None, "drop", log=io.StringIO())
    assert len(out["train"]) == 4  # the train texts define the vocabulary: nothing is outside it
    assert [u.id for u in out["dev"]] == ["dev-a"]  # 'ï' and 'v' are in no train text
    assert (
        filter_transcripts(_manifests(), None, "error", log=io.StringIO())["dev"][1].id == "dev-b"
    )  # training names it


def test_empty_transcripts_are_dropped_with_a_count() -> None:
    log = io.StringIO()
    m = {"train": _utts("train", {"a": "one", "b": "", "c": "?!", "d": None}), "dev": _utts("dev", {"a": "one"})}
    out = filter_transcripts(m, None, "error", log=log)
    assert [u.id for u in out["train"]] == ["train-a"]
    assert "prepare: train: dropped 3 of 4 utterances with an empty transcript" in log.getvalue()


def test_unknown_policy_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    recipe = _kaldi(tmp_path, TEXTS, "ignore")
    capsys.readouterr()
    rc = main(["prepare", "--quiet", str(recipe)])
    err = capsys.readouterr().err
    assert rc == 2 and "data.oov must be error, drop or map" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # refused before anything is written


def _kaldi(
    tmp: Path, texts: dict[str, dict[str, str]], oov: str | None, alphabet: str | None = "abcdefghijklmnopqrstuvwxyz'"
) -> Path:
    wav = tmp / "a.wav"
    sf.write(wav, (0.3 * np.sin(np.arange(8000) / 5)).astype(np.float32), SR)
    for split, utts in texts.items():
        d = tmp / "kaldi" / split
        d.mkdir(parents=True)
        (d / "wav.scp").write_text("".join(f"{u} {wav}\n" for u in utts), encoding="utf-8")
        (d / "text").write_text("".join(f"{u} {t}\n" for u, t in utts.items()), encoding="utf-8")
    data = f"corpus: kaldi, root: {tmp / 'kaldi'}, out_dir: {tmp / 'out'}, splits: {{train: [train], dev: [dev]}}"
    data += f', alphabet: "{alphabet}"' if alphabet else ""
    data += f", oov: {oov}" if oov else ""
    recipe = tmp / "r.yaml"
    recipe.write_text(f"name: k\ndata: {{{data}}}\nfeatures: {{n_mels: 40}}\n", encoding="utf-8")
    return recipe


TEXTS = {"train": {"t1": "ONE TWO", "t2": "Caf\u00e9 one", "t3": "\u4e2d"}, "dev": {"d1": "one"}}


def test_prepare_cli_oov_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    recipe = _kaldi(tmp_path, TEXTS, None)
    capsys.readouterr()
    rc = main(["prepare", "--quiet", str(recipe)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("asrkit: error: train utterance 't2': character 'é'")


def test_prepare_cli_oov_map_writes_mapped_manifests_and_vocab(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    recipe = _kaldi(tmp_path, TEXTS, "map")
    capsys.readouterr()
    rc = main(["prepare", "--quiet", str(recipe)])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "mapped 1 characters" in err and "dropped 1 of 3" in err
    assert {u.id: u.text for u in read_manifest(tmp_path / "out" / "train.jsonl")} == {
        "t1": "one two",
        "t2": "cafe one",
    }
    vocab = CharTokenizer.load(tmp_path / "out" / "vocab.txt")
    assert "é" not in vocab.symbols and "'" in vocab.symbols


# ---- transcripts longer than the CTC frames allow ---------------------------------------------------------------


def test_infeasible_ctc_targets_are_filtered_with_a_count_and_the_loss_stays_finite() -> None:
    """A transcript needing more CTC frames than its audio gives (repeats need a blank between) is dropped and
    counted by the trainer's filter; the utterances kept all have a finite loss."""
    from asrkit.data.loader import FeatureDataset
    from asrkit.models import build_model
    from asrkit.train.trainer import filter_utterances

    tok = CharTokenizer(sorted(set("abc ")))
    cfg = {
        "name": "bigru",
        "frontend": "stack",
        "subsample": 3,
        "hidden": 16,
        "layers": 1,
        "n_feats": 8,
        "n_tokens": len(tok),
    }
    model = build_model(cfg)
    frames = {"fits": 30, "exact": 15, "repeats": 15, "too_long": 15}  # 10 / 5 / 5 / 5 output frames
    texts = {"fits": "abc", "exact": "abcab", "repeats": "aabb", "too_long": "abcabc"}  # "aabb" needs 4 + 2 blanks
    utts = [Utterance(k, None, frames[k] / 100, SR, texts[k]) for k in frames]
    feats = {k: torch.randn(frames[k], 8) for k in frames}
    ds = FeatureDataset(utts, feats, tok, "none", None)
    ds, counts = filter_utterances(ds, model, max_frames=10_000)
    assert counts == {"too_long": 0, "too_many_labels": 2}
    assert sorted(u.id for u in ds.utts) == ["exact", "fits"]
    for i in range(len(ds)):
        x, y, _ = ds[i]
        lp, out_len = model(x[None], torch.tensor([x.shape[0]]))
        loss = torch.nn.functional.ctc_loss(
            lp.transpose(0, 1), torch.tensor([y]), out_len, torch.tensor([len(y)]), blank=0
        )
        assert math.isfinite(loss.item())
    # the dropped ones are exactly those whose loss would be infinite
    x = feats["too_long"]
    y = tok.encode(texts["too_long"])
    with torch.no_grad():
        lp, out_len = model(x[None], torch.tensor([x.shape[0]]))
    assert not math.isfinite(
        torch.nn.functional.ctc_loss(
            lp.transpose(0, 1), torch.tensor([y]), out_len, torch.tensor([len(y)]), blank=0
        ).item()
    )
