"""`asrkit lm build`: interpolated modified Kneser-Ney ARPA models, checked against a table computed by hand and loaded by KenLM."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from asrkit.decode.lm_build import FALLBACK, build_arpa, discounts
from asrkit.errors import InputError
from conftest import run_cli


def _read_arpa(text: str) -> dict[tuple[str, ...], tuple[float, float | None]]:
    """n-gram → (log10 prob, log10 backoff or None)."""
    out, order = {}, 0
    for line in text.splitlines():
        if line.startswith("\\") and line.endswith("-grams:"):
            order = int(line[1:].split("-")[0])
        elif order and line.strip() and not line.startswith("\\"):
            parts = line.split("\t")
            words = tuple(parts[1].split())
            assert len(words) == order
            out[words] = (float(parts[0]), float(parts[2]) if len(parts) > 2 else None)
    return out


# Corpus "a b" / "b b", order 2. By hand (every order falls back to D = 0.5, 1.0, 1.5: its counts of counts have zeros):
# unigram continuation counts a 1 (after <s>), b 3 (after a, <s>, b), </s> 1 (after b): total 5;
# gamma() = (0.5·2 + 1.5·1) / 5 = 0.5 spread over the vocabulary {a, b, </s>, <unk>}: 0.125 each
#   p(a) = 0.5/5 + 0.125 = 0.225, p(b) = 1.5/5 + 0.125 = 0.425, p(</s>) = 0.225, p(<unk>) = 0.125
# bigram raw counts: <s> a 1, <s> b 1, a b 1, b </s> 2, b b 1
#   context <s>: total 2, gamma = 0.5·2/2 = 0.5: p(a|<s>) = 0.5/2 + 0.5·0.225 = 0.3625, p(b|<s>) = 0.25 + 0.5·0.425 = 0.4625
#   context a:   total 1, gamma = 0.5: p(b|a) = 0.5 + 0.5·0.425 = 0.7125
#   context b:   total 3, gamma = (0.5·1 + 1.0·1)/3 = 0.5: p(</s>|b) = 1/3 + 0.5·0.225, p(b|b) = 0.5/3 + 0.5·0.425
HAND = {
    ("a",): (0.225, 0.5),
    ("b",): (0.425, 0.5),
    ("</s>",): (0.225, None),
    ("<unk>",): (0.125, None),
    ("<s>", "a"): (0.3625, None),
    ("<s>", "b"): (0.4625, None),
    ("a", "b"): (0.7125, None),
    ("b", "</s>"): (1 / 3 + 0.1125, None),
    ("b", "b"): (0.5 / 3 + 0.2125, None),
}


def test_probabilities_and_backoffs_equal_the_hand_computed_table() -> None:
    arpa, summary = build_arpa(["a b", "b b"], order=2)
    got = _read_arpa(arpa)
    assert set(got) == set(HAND) | {("<s>",)}
    for g, (p, bo) in HAND.items():
        assert 10 ** got[g][0] == pytest.approx(p, rel=1e-6), g
        if bo is not None:
            assert 10 ** got[g][1] == pytest.approx(bo, rel=1e-6), g
    assert got[("<s>",)][0] == -99 and 10 ** got[("<s>",)][1] == pytest.approx(0.5)
    assert summary["discounts"] == [list(FALLBACK), list(FALLBACK)]
    # every context's distribution sums to one: seen words + backoff mass to the unseen ones
    p1 = {g[0]: 10 ** v[0] for g, v in got.items() if len(g) == 1 and g != ("<s>",)}
    assert sum(p1.values()) == pytest.approx(1.0)
    for h in ("<s>", "a", "b"):
        seen = {g[1]: 10 ** v[0] for g, v in got.items() if len(g) == 2 and g[0] == h}
        bo = 10 ** got[(h,)][1]
        assert sum(seen.values()) + bo * sum(p for w, p in p1.items() if w not in seen) == pytest.approx(1.0)


def test_discounts_follow_chen_and_goodman_and_fall_back_on_tiny_data() -> None:
    counts = [1] * 10 + [2] * 5 + [3] * 3 + [4] * 2 + [7]
    y = 10 / (10 + 2 * 5)
    assert discounts(counts) == pytest.approx((1 - 2 * y * 5 / 10, 2 - 3 * y * 3 / 5, 3 - 4 * y * 2 / 3))
    assert discounts([1, 1, 2]) == FALLBACK


def test_kenlm_loads_the_file_and_scores_sentences_as_the_table_says(tmp_path: Path) -> None:
    kenlm = pytest.importorskip("kenlm", reason="the kenlm package (a project dependency) is not installed")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a b\nb b\n")
    out = tmp_path / "lm.arpa"
    proc = run_cli("lm", "build", str(corpus), "-o", str(out), "--order", "2")
    assert "order 2, 2 sentences, vocabulary 4" in proc.stdout
    model = kenlm.Model(str(out))
    assert model.order == 2
    assert model.score("a b", bos=True, eos=True) == pytest.approx(
        math.log10(0.3625 * 0.7125 * (1 / 3 + 0.1125)), abs=1e-5
    )
    # an unseen bigram backs off: p(a|b) = gamma(b) · p(a)
    assert model.score("b a", bos=False, eos=False) == pytest.approx(math.log10(0.425 * 0.5 * 0.225), abs=1e-5)
    assert model.score("zzz", bos=False, eos=False) == pytest.approx(math.log10(0.125), abs=1e-5)


def test_a_trigram_model_of_real_text_loads_in_kenlm_and_prefers_seen_word_orders(tmp_path: Path) -> None:
    kenlm = pytest.importorskip("kenlm", reason="the kenlm package (a project dependency) is not installed")
    import random

    words = "zero one two three four five six seven eight nine".split()
    rng = random.Random(0)
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 6))) for _ in range(300)]
    arpa, summary = build_arpa(lines, order=3)
    assert summary["discounts"][2] != list(FALLBACK)  # enough data for real discounts at the top order
    path = tmp_path / "digits.arpa"
    path.write_text(arpa)
    model = kenlm.Model(str(path))
    seen = lines[0]
    assert model.score(seen) > model.score(" ".join(reversed(seen.split())))


def test_bad_corpora_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="holds no words"):
        build_arpa(["", "  "], 3)
    with pytest.raises(InputError, match="reserved word '<s>'"):
        build_arpa(["a <s> b"], 3)
    missing = run_cli("lm", "build", str(tmp_path / "none.txt"), "-o", str(tmp_path / "x.arpa"), check=False)
    assert missing.returncode == 2 and "not found" in missing.stderr


def test_an_order_the_corpus_cannot_fill_is_capped_with_a_note(tmp_path: Path) -> None:
    text, summary = build_arpa(["a b", "b"], 7)  # the longest sentence is <s> a b </s>: four words
    assert summary["order"] == 4 and summary["order_asked"] == 7
    grams = _read_arpa(text)
    assert max(len(g) for g in grams) == 4 and "ngram 5" not in text
    assert all(f"ngram {n}=0" not in text for n in range(1, 5))
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b\nb\n")
    res = run_cli("lm", "build", str(corpus), "-o", str(tmp_path / "x.arpa"), "--order", "7")
    assert "fills n-grams up to order 4 only" in res.stderr
    import kenlm

    assert kenlm.Model(str(tmp_path / "x.arpa")).order == 4


def test_lm_build_normalises_the_corpus_unless_told_to_keep_it(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("Hello, World.\nthe WORLD’S end\n")
    run_cli("lm", "build", str(corpus), "-o", str(tmp_path / "n.arpa"))
    words = {g[0] for g in _read_arpa((tmp_path / "n.arpa").read_text()) if len(g) == 1}
    assert words == {"hello", "world", "the", "world's", "end", "<s>", "</s>", "<unk>"}
    run_cli("lm", "build", str(corpus), "-o", str(tmp_path / "k.arpa"), "--keep-text")
    assert {"Hello,", "World.", "WORLD’S"} <= {
        g[0] for g in _read_arpa((tmp_path / "k.arpa").read_text()) if len(g) == 1
    }
