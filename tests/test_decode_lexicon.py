"""Lexicon-constrained CTC prefix beam search: brute force, a hand-made misspelling, file reading."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from asrkit.decode import (
    Lexicon,
    greedy_decode,
    lexicon_from_words,
    prefix_beam_search,
    prefix_beam_search_batch,
)
from asrkit.decode.lexicon import load_lexicon, read_lexicon_words
from asrkit.errors import InputError
from asrkit.text import CharTokenizer

from ctc_helpers import collapse, log_softmax

NEG_INF = float("-inf")
BLANK, A, B, SPACE = 0, 1, 2, 3  # the brute-force vocabulary: blank, 'a', 'b', space


def valid_output(labels: tuple[int, ...], words: set[tuple[int, ...]], space: int) -> bool:
    """Written independently of Lexicon: every word in `words`, no leading/double space, and the
    trailing partial word empty or complete (a trailing space is allowed)."""
    if labels and labels[0] == space:
        return False
    chunks = [tuple(g) for _, g in itertools.groupby(labels, key=lambda k: k == space)]
    for chunk in chunks:
        if chunk[0] == space:
            if len(chunk) > 1:  # two adjacent spaces
                return False
        elif chunk not in words:
            return False
    return True


def brute_force_valid(lp: np.ndarray, words: set[tuple[int, ...]], space: int) -> dict[tuple[int, ...], float]:
    """Total probability of every valid complete output, summing all V**T paths (float64)."""
    p = np.exp(lp.astype(np.float64))
    T, V = p.shape
    totals: dict[tuple[int, ...], float] = defaultdict(float)
    for path in itertools.product(range(V), repeat=T):
        labels = collapse(path)
        if valid_output(labels, words, space):
            totals[labels] += float(np.prod(p[np.arange(T), list(path)]))
    return dict(totals)


def frames(spec: list[dict[int, float]], V: int) -> np.ndarray:
    """Log-probs from per-frame {token: prob}; the rest of each frame's mass is spread evenly."""
    rows = []
    for d in spec:
        rest = (1.0 - sum(d.values())) / (V - len(d))
        rows.append([d.get(k, rest) for k in range(V)])
    return np.log(np.array(rows)).astype(np.float32)


def peaky(rng: np.random.Generator, T: int, V: int) -> np.ndarray:
    """CTC-like posteriors: mostly blank, with confident tokens now and then."""
    logits = rng.normal(size=(T, V)) * 2.0
    logits[:, 0] += 3.0
    logits[np.arange(T), rng.integers(0, V, size=T)] += 6.0
    return log_softmax(logits)


# ---------------------------------------------------------------- the Lexicon class


def test_lexicon_words_and_prefixes():
    lex = Lexicon([(A,), (A, B), (), [B, B, A]], space=SPACE)
    assert lex.words == {(A,), (A, B), (B, B, A)}  # the empty word is ignored
    assert lex.prefixes == {(), (A,), (A, B), (B,), (B, B), (B, B, A)}
    assert len(lex) == 3
    assert lex.is_valid((A, SPACE, B, B)) and not lex.is_complete((A, SPACE, B, B))
    assert lex.is_complete((A, SPACE, B, B, A)) and lex.is_complete((A, B, SPACE)) and lex.is_complete(())
    assert not lex.is_valid((SPACE, A))  # leading space
    assert not lex.is_valid((A, SPACE, SPACE, A))  # double space
    assert not lex.is_valid((B, SPACE))  # "b" is only a prefix, not a word
    assert not lex.is_valid((A, A))
    with pytest.raises(InputError):
        Lexicon([(A, SPACE, B)], space=SPACE)


# ---------------------------------------------------------------- search vs brute force


LEXICONS = [
    {(A,), (A, B)},
    {(B,), (A, A, B)},
    {(A, B), (B, A)},
]


@pytest.mark.parametrize("words", LEXICONS, ids=["a+ab", "b+aab", "ab+ba"])
@pytest.mark.parametrize("T,seed", [(1, 0), (2, 1), (3, 2), (4, 3), (5, 4), (5, 5)])
@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_lexicon_search_equals_brute_force(words, T, seed, scale):
    rng = np.random.default_rng(1000 + seed)
    lp = log_softmax(rng.normal(size=(T, 4)) * scale)
    lex = Lexicon(words, space=SPACE)
    totals = brute_force_valid(lp, words, SPACE)
    best = max(totals, key=totals.get)
    hyps = prefix_beam_search(lp, beam_size=500, token_min_logp=NEG_INF, lexicon=lex)
    assert tuple(hyps[0].tokens) == best
    assert hyps[0].score == pytest.approx(math.log(totals[best]), abs=1e-6)
    # with an unbounded beam, exactly the valid complete outputs come back, with exact scores
    assert {tuple(h.tokens) for h in hyps} == set(totals)
    for h in hyps:
        assert h.score == pytest.approx(math.log(totals[tuple(h.tokens)]), abs=1e-6)
    scores = [h.score for h in hyps]
    assert scores == sorted(scores, reverse=True)


def test_brute_force_oracle_rejects_invalid_outputs():
    # guards the test's own validity check (it must not accept everything)
    words = {(A,), (A, B)}
    assert valid_output((A, SPACE, A, B, SPACE), words, SPACE)
    assert valid_output((), words, SPACE)
    for bad in [(B,), (SPACE, A), (A, SPACE, SPACE, A), (A, B, B), (A, SPACE, B)]:
        assert not valid_output(bad, words, SPACE)


# ---------------------------------------------------------------- a misspelling fixed


DIGITS = "zero one two three four five six seven eight nine".split()


@pytest.fixture
def digit_tok() -> CharTokenizer:
    return CharTokenizer.build([" ".join(DIGITS)])


def test_misspelling_becomes_the_lexicon_word(digit_tok):
    tok = digit_tok
    V = len(tok)
    ix = tok.index
    # "e i g e t": the 4th letter is 'e' (0.5) over 'h' (0.35); greedy and the free search say "eiget"
    spec = [
        {ix["e"]: 0.9},
        {0: 0.9},
        {ix["i"]: 0.9},
        {ix["g"]: 0.9},
        {ix["e"]: 0.5, ix["h"]: 0.35},
        {ix["t"]: 0.9},
        {0: 0.9},
    ]
    lp = frames(spec, V)
    assert tok.decode(greedy_decode(lp).tokens) == "eiget"
    assert tok.decode(prefix_beam_search(lp, beam_size=10)[0].tokens) == "eiget"
    lex = lexicon_from_words(DIGITS, tok)
    for beam in (1, 2, 10):
        best = prefix_beam_search(lp, beam_size=beam, lexicon=lex)[0]
        assert tok.decode(best.tokens) == "eight"
    assert tok.decode(prefix_beam_search_batch(lp[None], beam_size=10, lexicon=lex)[0][0].tokens) == "eight"


def test_two_words_with_a_misspelt_first_word(digit_tok):
    tok = digit_tok
    ix = tok.index
    # "fuor two" (u before o) → "four two"
    letters = [("f", None), ("u", "o"), ("o", "u"), ("r", None), (" ", None), ("t", None), ("w", None), ("o", None)]
    spec = []
    for best, second in letters:
        spec.append({ix[best]: 0.55, ix[second]: 0.4} if second else {ix[best]: 0.9})
        spec.append({0: 0.9})
    lp = frames(spec, len(tok))
    assert tok.decode(prefix_beam_search(lp, beam_size=10)[0].tokens) == "fuor two"
    hyp = prefix_beam_search(lp, beam_size=10, lexicon=lexicon_from_words(DIGITS, tok))[0]
    assert tok.decode(hyp.tokens) == "four two"
    assert len(hyp.timesteps) == len(hyp.tokens)


def test_beam1_with_lexicon_is_beam2():
    rng = np.random.default_rng(9)
    lex = Lexicon({(A,), (A, B)}, space=SPACE)
    for _ in range(10):
        lp = peaky(rng, 12, 4)
        b2 = prefix_beam_search(lp, beam_size=2, lexicon=lex)
        got = prefix_beam_search(lp, beam_size=1, lexicon=lex)
        assert [(h.tokens, h.score, h.timesteps) for h in got] == [(h.tokens, h.score, h.timesteps) for h in b2]


def test_results_are_complete_lexicon_outputs_on_random_inputs():
    rng = np.random.default_rng(21)
    words = {(A,), (A, B), (B, B, A)}
    lex = Lexicon(words, space=SPACE)
    for _ in range(30):
        lp = peaky(rng, 20, 4)
        hyps = prefix_beam_search(lp, beam_size=8, lexicon=lex)
        assert hyps
        for h in hyps:
            assert valid_output(tuple(h.tokens), words, SPACE), h.tokens
            assert len(h.timesteps) == len(h.tokens)


def test_unfinished_last_word_is_dropped_rather_than_returned():
    # lexicon {"abc"}; the frames say "ab" so confidently that a beam of 2 holds only "a" and "ab",
    # neither complete: the answer drops the unfinished word instead of returning a non-word
    V = 5
    lex = Lexicon({(1, 2, 3)}, space=4)
    lp = frames([{1: 0.97}, {2: 0.97}], V)
    hyps = prefix_beam_search(lp, beam_size=2, lexicon=lex)
    assert [h.tokens for h in hyps] == [[]]
    assert hyps[0].timesteps == []


def test_unfinished_last_word_keeps_the_finished_ones():
    # "abc ab": the first word is complete, the second unfinished; the answer is "abc"
    V = 5
    lex = Lexicon({(1, 2, 3)}, space=4)
    lp = frames([{1: 0.97}, {2: 0.97}, {3: 0.97}, {4: 0.97}, {1: 0.97}, {2: 0.97}], V)
    hyps = prefix_beam_search(lp, beam_size=2, lexicon=lex)
    assert hyps[0].tokens == [1, 2, 3]
    assert hyps[0].timesteps == [0, 1, 2]


# ---------------------------------------------------------------- lexicon=None is today's search


@pytest.mark.parametrize("seed", range(5))
def test_no_lexicon_is_unchanged(seed):
    rng = np.random.default_rng(300 + seed)
    for T, V in [(25, 28), (8, 4), (1, 3)]:
        lp = peaky(rng, T, V)
        for beam in (1, 3, 10):
            ref = prefix_beam_search(lp, beam_size=beam)
            got = prefix_beam_search(lp, beam_size=beam, lexicon=None)
            assert [(h.tokens, h.score, h.timesteps) for h in got] == [(h.tokens, h.score, h.timesteps) for h in ref]
            r = prefix_beam_search(lp, beam_size=beam)[0]
            g = prefix_beam_search(lp, beam_size=beam, lexicon=None)[0]
            assert (g.tokens, g.score, g.timesteps) == (r.tokens, r.score, r.timesteps)


# ---------------------------------------------------------------- building lexicons


def test_lexicon_from_words_skips_unknown_characters():
    tok = CharTokenizer(list("abc "))
    lex = lexicon_from_words(["ab", "abd", "Cab", "", "a b", "ab"], tok)
    ix = tok.index
    assert lex.space == ix[" "]
    assert lex.words == {(ix["a"], ix["b"]), (ix["c"], ix["a"], ix["b"]), (ix["a"],), (ix["b"],)}


def test_lexicon_from_words_errors_when_empty():
    tok = CharTokenizer(list("abc "))
    with pytest.raises(InputError, match="no usable words"):
        lexicon_from_words(["xyz", "abd"], tok)
    with pytest.raises(InputError):
        lexicon_from_words([], tok)


def test_read_word_list(tmp_path: Path):
    p = tmp_path / "words.txt"
    p.write_text("four\ntwo three\n\n  eight  \n", encoding="utf-8")
    assert read_lexicon_words(p) == ["four", "two", "three", "eight"]


@pytest.mark.parametrize("name", ["train.jsonl", "manifest.txt"])  # told apart by suffix or content
def test_read_manifest(tmp_path: Path, name: str):
    p = tmp_path / name
    p.write_text(
        '{"id": "u1", "audio": "x.wav", "text": "four two"}\n'
        '{"id": "u2", "audio": "y.wav", "text": "eight"}\n'
        '{"id": "u3", "audio": "z.wav"}\n',
        encoding="utf-8",
    )
    assert read_lexicon_words(p) == ["four", "two", "eight"]


def test_load_lexicon_and_its_errors(tmp_path: Path, digit_tok):
    m = tmp_path / "train.jsonl"
    m.write_text('{"id": "u1", "audio": "x.wav", "text": "four two"}\n', encoding="utf-8")
    lex = load_lexicon(m, digit_tok)
    assert {digit_tok.decode(w) for w in lex.words} == {"four", "two"}
    with pytest.raises(InputError, match="nowhere.txt"):
        load_lexicon(tmp_path / "nowhere.txt", digit_tok)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(InputError, match="no words"):
        load_lexicon(empty, digit_tok)
    alien = tmp_path / "alien.txt"
    alien.write_text("xyzzy\n", encoding="utf-8")
    with pytest.raises(InputError, match="alien.txt"):
        load_lexicon(alien, digit_tok)


def test_cli_missing_lexicon_is_a_one_line_error(tmp_path: Path, capsys, monkeypatch):
    from asrkit.cli import main

    monkeypatch.chdir(tmp_path)
    rc = main(["decode", "--model", "missing.pt", "--lexicon", "nolex.txt", "x.wav"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and "nolex.txt" in err[0]  # read before the model, so it is the lexicon named


def test_a_lexicon_file_is_read_as_prepare_reads_text(digit_tok, tmp_path: Path) -> None:
    raw, clean = tmp_path / "raw.txt", tmp_path / "clean.txt"
    raw.write_text("One, TWO.\nthree!\n")
    clean.write_text("one two three\n")
    a, b = load_lexicon(raw, digit_tok), load_lexicon(clean, digit_tok)
    assert a.words == b.words and {digit_tok.decode(list(w)) for w in a.words} == {"one", "two", "three"}
