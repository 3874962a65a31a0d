"""The NumPy reference decoders: the handout's toy example (HW3P1 section 6.3), an enumeration of alignments that
replays the lecture's pruning, brute force over all outputs, and agreement with production decoding.

Figure 19 (the beam after t=1 of the first local-autograder example) is an image whose values the handout's text
does not carry, so it has no test here.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from asrkit.decode import greedy_decode, prefix_beam_search
from asrkit.reference import BeamSearchDecoder, GreedySearchDecoder
from asrkit.reference.decoding import PrefixBeamSearchDecoder

from ctc_helpers import collapse, log_softmax

SYMBOLS = ["a", "b", "c", "d"]


def y_probs(lp: np.ndarray) -> np.ndarray:
    """(T, V) log-probs with blank 0 -> the reference's (V, T, 1) probabilities."""
    return np.exp(lp.astype(np.float64)).T[:, :, None]


def text(ids) -> str:
    return "".join(SYMBOLS[k - 1] for k in ids)


# Table 6 (section 6.3): rows are -, A, B; columns are the three decoding steps
TABLE_6 = np.array([[0.49, 0.38, 0.02], [0.03, 0.44, 0.40], [0.47, 0.18, 0.58]])


def exact_totals(p: np.ndarray, symbols: str) -> dict[str, float]:
    """Every output's probability, summed over all the alignments that collapse to it."""
    V, T = p.shape
    totals: dict[str, float] = {}
    for path in itertools.product(range(V), repeat=T):
        s = "".join(symbols[k - 1] for k in collapse(path))
        totals[s] = totals.get(s, 0.0) + float(np.prod(p[list(path), range(T)]))
    return totals


def lecture_by_alignments(p: np.ndarray, symbols: str, width: int) -> dict[str, float]:
    """The lecture's beam search replayed over alignments rather than path sets.

    An alignment prefix sits in a state (its collapsed output, whether it ends in a blank). At frame t a state's score
    sums the prefixes reaching it whose earlier states all survived pruning; a state survives frame t < T-1 when its
    score reaches the width-th best of that frame (ties all survive). The last frame is not pruned; its states are
    merged by output.
    """
    V, T = p.shape
    kept: list[set] = []
    for t in range(T):
        scores: dict[tuple, float] = {}
        for prefix in itertools.product(range(V), repeat=t + 1):
            states = [(collapse(prefix[: s + 1]), prefix[s] == 0) for s in range(t + 1)]
            if all(states[s] in kept[s] for s in range(t)):
                scores[states[-1]] = scores.get(states[-1], 0.0) + float(np.prod(p[list(prefix), range(t + 1)]))
        ranked = sorted(scores.values(), reverse=True)
        cutoff = ranked[min(width, len(ranked)) - 1]
        kept.append({st for st, v in scores.items() if v >= cutoff and v > 0})
    merged: dict[str, float] = {}
    for (out, _), v in scores.items():
        key = "".join(symbols[k - 1] for k in out)
        merged[key] = merged.get(key, 0.0) + v
    return merged


def test_section_6_3_toy_example_best_path_is_A():
    # section 6.3: beam width 3 over Table 6; "the sequence 'A'" is the handout's stated best output
    best, scores = BeamSearchDecoder(["A", "B"], 3).decode(TABLE_6[:, :, None])
    assert best == "A"
    assert scores == pytest.approx(lecture_by_alignments(TABLE_6, "AB", 3), rel=1e-12)
    assert scores["A"] == max(scores.values())


def test_section_6_3_probability_of_A_at_the_second_step():
    # section 6.3's formula for "A" after two steps: P(A)P(-|A) + P(A)P(A|A) + P(-)P(A|-), with Table 6's values
    p = TABLE_6
    expected = p[1, 0] * p[0, 1] + p[1, 0] * p[1, 1] + p[0, 0] * p[1, 1]
    _, scores = BeamSearchDecoder(["A", "B"], 3).decode(p[:, :2, None])
    assert scores["A"] == pytest.approx(expected, rel=1e-12)


def test_section_6_3_toy_example_is_where_the_searches_part_ways():
    # on the handout's own example the lecture's search returns "A", while the exact best output is "BA", which the
    # merged-prefix search finds at the same width: after two steps the lecture prunes "B", whose blank-ending and
    # symbol-ending halves each rank below the top three though their sum ranks first, and loses the "B" -> "BA" paths
    totals = exact_totals(TABLE_6, "AB")
    exact_best = max(totals, key=totals.get)
    lecture, _ = BeamSearchDecoder(["A", "B"], 3).decode(TABLE_6[:, :, None])
    prefix, prefix_scores = PrefixBeamSearchDecoder(["A", "B"], 3).decode(TABLE_6[:, :, None])
    assert lecture != exact_best == prefix
    assert prefix_scores[prefix] == pytest.approx(totals[prefix], rel=1e-12)
    for cls in (BeamSearchDecoder, PrefixBeamSearchDecoder):
        # a beam wide enough to keep every path gives every output's exact total
        best, wide = cls(["A", "B"], 50).decode(TABLE_6[:, :, None])
        assert best == exact_best and wide == pytest.approx(totals, rel=1e-12)


def softmax_frames(rng: np.random.Generator, V: int, T: int, scale: float = 1.5) -> np.ndarray:
    x = rng.normal(size=(V, T)) * scale
    return np.exp(x) / np.exp(x).sum(axis=0)


@pytest.mark.parametrize("width", [1, 2, 3, 5])
@pytest.mark.parametrize("normalised", [False, True])
def test_lecture_beam_equals_alignment_replay(width, normalised):
    for seed in range(3):
        rng = np.random.default_rng(seed)
        p = softmax_frames(rng, 4, 6) if normalised else rng.uniform(0.05, 1.0, size=(4, 6))
        best, scores = BeamSearchDecoder(list("abc"), width).decode(p[:, :, None])
        assert scores == pytest.approx(lecture_by_alignments(p, "abc", width), rel=1e-12)
        assert scores[best] == max(scores.values())


def test_ties_at_the_cutoff_all_survive():
    # uniform frames: after the first frame "", "a" and "b" tie, so width 1 keeps all three and two frames reach
    # every output that fits in them
    p = np.full((3, 2), 1 / 3)
    _, scores = BeamSearchDecoder(["a", "b"], 1).decode(p[:, :, None])
    assert set(scores) == {"", "a", "b", "ab", "ba"}
    assert scores == pytest.approx(lecture_by_alignments(p, "ab", 1), rel=1e-12)


def test_random_inputs_where_lecture_and_prefix_search_differ():
    found = []
    for seed in range(40):
        p = softmax_frames(np.random.default_rng(seed), 3, 5)
        lecture, _ = BeamSearchDecoder(["a", "b"], 2).decode(p[:, :, None])
        prefix, _ = PrefixBeamSearchDecoder(["a", "b"], 2).decode(p[:, :, None])
        if lecture != prefix:
            found.append(p)
    assert found
    for p in found:
        totals = exact_totals(p, "ab")
        for cls in (BeamSearchDecoder, PrefixBeamSearchDecoder):
            best, wide = cls(["a", "b"], 1000).decode(p[:, :, None])
            assert best == max(totals, key=totals.get) and wide == pytest.approx(totals, rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("beam", [2, 3, 5, 10])
def test_reference_prefix_beam_agrees_with_production(seed, beam):
    # flat posteriors (logits from N(0, 1)): many prefixes stay close, so pruning differences would show.
    # (beam 1 is left out on purpose: production beam 1 is greedy decoding, not a one-prefix search)
    rng = np.random.default_rng(40 + seed)
    lp = log_softmax(rng.normal(size=(12, len(SYMBOLS) + 1)))
    best, scores = PrefixBeamSearchDecoder(SYMBOLS, beam).decode(y_probs(lp))
    ours = prefix_beam_search(lp, beam_size=beam)
    assert best == text(ours[0].tokens)
    assert scores == pytest.approx({text(h.tokens): math.exp(h.score) for h in ours}, rel=1e-5)


@pytest.mark.parametrize("seed", range(5))
def test_reference_greedy_agrees_with_production(seed):
    rng = np.random.default_rng(seed)
    lp = log_softmax(rng.normal(size=(30, len(SYMBOLS) + 1)) * 2)
    path, prob = GreedySearchDecoder(SYMBOLS).decode(y_probs(lp))
    g = greedy_decode(lp)
    assert path == text(g.tokens)
    assert math.log(prob) == pytest.approx(g.score, abs=1e-5)


def test_batches_and_bad_shapes():
    rng = np.random.default_rng(0)
    lps = [log_softmax(rng.normal(size=(6, 5))) for _ in range(3)]
    y = np.concatenate([y_probs(lp) for lp in lps], axis=2)
    for cls in (BeamSearchDecoder, PrefixBeamSearchDecoder):
        paths, scores = cls(SYMBOLS, 4).decode(y)
        singles = [cls(SYMBOLS, 4).decode(y_probs(lp)) for lp in lps]
        assert paths == [s[0] for s in singles] and scores == [s[1] for s in singles]
    with pytest.raises(ValueError, match=r"shape \(5, T, batch\)"):
        GreedySearchDecoder(SYMBOLS).decode(y[:4])


def test_reference_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, asrkit.reference; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_greedy_multiple_choice_example():
    # the handout's question: ten steps over four words; the best path before collapsing is answer (B),
    # [3,0,3,1,3,0,1,0,2,0]; with word 0 as the blank it collapses to "3 3 1 3 1 2", probability 0.4 ** 10
    probs = np.array(
        [
            [0.1, 0.2, 0.3, 0.4],
            [0.4, 0.3, 0.2, 0.1],
            [0.1, 0.2, 0.3, 0.4],
            [0.1, 0.4, 0.3, 0.2],
            [0.1, 0.2, 0.3, 0.4],
            [0.4, 0.3, 0.2, 0.1],
            [0.1, 0.4, 0.3, 0.2],
            [0.4, 0.3, 0.2, 0.1],
            [0.1, 0.2, 0.4, 0.3],
            [0.4, 0.3, 0.2, 0.1],
        ]
    )
    answers = {
        "A": [3, 0, 3, 0, 3, 1, 1, 0, 2, 0],
        "B": [3, 0, 3, 1, 3, 0, 1, 0, 2, 0],
        "C": [3, 0, 3, 1, 3, 0, 0, 2, 0, 1],
    }
    path, prob = GreedySearchDecoder(["1", "2", "3"]).decode(probs.T[:, :, None])
    collapsed = {k: "".join(str(s) for s in collapse(v)) for k, v in answers.items()}
    assert len(set(collapsed.values())) == 3  # the three answers read differently once collapsed
    assert path == collapsed["B"] == "331312"
    assert prob == pytest.approx(0.4**10, rel=1e-12)
