"""asrkit.text: normalisation and the character tokenizer."""

from __future__ import annotations

import pytest

from asrkit.errors import InputError
from asrkit.text import BLANK, CharTokenizer, FrameTokenizer, LabelSet, PhonemeTokenizer, normalize_text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hello World", "hello world"),
        ("Hello, World! How's it going?", "hello world how's it going"),
        ("  one\t two\n\nthree   ", "one two three"),
        ("ＨＥＬＬＯ　ｗｏｒｌｄ", "hello world"),  # full-width letters and the ideographic space (NFKC)
        ("ﬁve", "five"),  # the 'fi' ligature
        ("don't", "don't"),
        ("don’t", "don't"),  # typographic apostrophe
        ("twenty-one; 21.", "twenty one 21"),
        ("snake_case", "snake case"),
        ("Ça Va", "ça va"),
        ("...", ""),
        ("", ""),
    ],
)
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


def test_normalize_is_idempotent():
    s = normalize_text("ＡＢＣ, it's   Über-cool!")
    assert s == "abc it's über cool"
    assert normalize_text(s) == s


def test_build_sorted_vocab_with_blank_first():
    tok = CharTokenizer.build(["one two", "zero"])
    assert tok.symbols == [BLANK, " ", "e", "n", "o", "r", "t", "w", "z"]
    assert tok.blank == 0 and tok.symbols[0] == BLANK
    assert len(tok) == 9
    assert tok.index["e"] == 2


def test_encode_decode_round_trip():
    texts = ["one two three", "nine eight", "zero"]
    tok = CharTokenizer.build(texts)
    for t in texts:
        ids = tok.encode(t)
        assert len(ids) == len(t)
        assert 0 not in ids
        assert tok.decode(ids) == t
    assert tok.encode("on") == [tok.index["o"], tok.index["n"]]


def test_decode_drops_blanks_but_keeps_repeats():
    tok = CharTokenizer(["a", "b", " "])
    a, b, sp = tok.index["a"], tok.index["b"], tok.index[" "]
    assert tok.decode([0, a, 0, 0, b, sp, 0, a, a]) == "ab aa"
    assert tok.decode([0, 0, 0]) == ""


def test_unknown_character_names_utterance_and_character():
    tok = CharTokenizer.build(["abc"])
    with pytest.raises(InputError) as e:
        tok.encode("abx", utt_id="utt_7")
    assert "'x'" in str(e.value)
    assert "'utt_7'" in str(e.value)
    with pytest.raises(InputError, match="'q'"):
        tok.encode("q")


def test_blank_in_symbols_is_not_duplicated():
    tok = CharTokenizer([BLANK, "a", "b"])
    assert tok.symbols == [BLANK, "a", "b"]


def test_duplicate_symbols_rejected():
    with pytest.raises(InputError, match="duplicate"):
        CharTokenizer(["a", "b", "a"])


def test_labels():
    tok = CharTokenizer([" ", "a"])
    assert [tok.label(i) for i in range(len(tok))] == ["∅", "␣", "a"]


def test_save_load_round_trip_with_space(tmp_path):
    tok = CharTokenizer.build(["one two", "three's"])
    p = tmp_path / "vocab.txt"
    tok.save(p)
    lines = p.read_text(encoding="utf-8").splitlines()
    assert lines[0] == BLANK
    assert "<space>" in lines and " " not in lines
    back = CharTokenizer.load(p)
    assert back.symbols == tok.symbols
    assert back.index[" "] == tok.index[" "]
    assert back.decode(back.encode("one two")) == "one two"


def test_load_missing_vocab(tmp_path):
    with pytest.raises(InputError, match="not found"):
        CharTokenizer.load(tmp_path / "none.txt")


def test_dict_round_trip():
    tok = CharTokenizer.build(["hello world"])
    d = tok.to_dict()
    assert d["kind"] == "char"
    assert d["symbols"] == tok.symbols
    back = CharTokenizer.from_dict(d)
    assert back.symbols == tok.symbols
    assert back.encode("hello world") == tok.encode("hello world")


def test_label_set_from_labels_or_transcripts():
    from asrkit.data.manifest import Utterance
    from asrkit.text import LabelSet, tokenizer_from_dict

    utts = [
        Utterance("a", text="yes"),
        Utterance("b", text="no"),
        Utterance("c", text="ignored", label="up"),
        Utterance("d", text="no"),
    ]
    ls = LabelSet.build(utts)
    assert ls.symbols == ["no", "up", "yes"] and len(ls) == 3 and ls.blank is None
    assert [ls.target(u) for u in utts] == [[2], [0], [1], [0]]
    assert ls.decode([1]) == "up"
    assert tokenizer_from_dict(ls.to_dict()).symbols == ls.symbols
    assert isinstance(tokenizer_from_dict(CharTokenizer(["a"]).to_dict()), CharTokenizer)
    with pytest.raises(InputError, match="'z'.*'down'"):
        ls.target(Utterance("z", label="down"))
    with pytest.raises(InputError, match="two classes"):
        LabelSet(["only"])


def test_tokenizer_space_is_the_separator_id_or_none():
    tok = CharTokenizer(list("ab c"))
    assert tok.space == tok.index[" "] and tok.symbols[tok.space] == " "
    assert CharTokenizer(list("abc")).space is None
    assert PhonemeTokenizer(["AA", "B"]).space is None
    assert FrameTokenizer(list("xy ")).space is None
    assert LabelSet(["yes", "no"]).space is None
