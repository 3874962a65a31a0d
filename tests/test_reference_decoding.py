"""The NumPy reference decoders: brute force, the handout's toy table, and agreement with production decoding."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from asrkit.decode import greedy_decode, prefix_beam_search
from asrkit.reference import BeamSearchDecoder, GreedySearchDecoder

from ctc_helpers import collapse, log_softmax

SYMBOLS = ["a", "b", "c", "d"]


def y_probs(lp: np.ndarray) -> np.ndarray:
    """(T, V) log-probs with blank 0 -> the reference's (V, T, 1) probabilities."""
    return np.exp(lp.astype(np.float64)).T[:, :, None]


def text(ids) -> str:
    return "".join(SYMBOLS[k - 1] for k in ids)


def test_toy_table_equals_brute_force():
    # the handout's three-frame example over {-, A, B}, beam width 3
    p = np.array([[0.49, 0.38, 0.02], [0.03, 0.44, 0.40], [0.47, 0.18, 0.58]])
    totals: dict[str, float] = {}
    for path in itertools.product(range(3), repeat=3):
        s = "".join("-AB"[k] for k in collapse(path))
        totals[s] = totals.get(s, 0.0) + float(np.prod(p[list(path), range(3)]))
    best, scores = BeamSearchDecoder(["A", "B"], 3).decode(p[:, :, None])
    assert best == max(totals, key=totals.get) == "BA"
    assert scores["BA"] == pytest.approx(totals["BA"], rel=1e-12)
    # a beam wide enough to keep every output gives every output's exact total
    _, wide = BeamSearchDecoder(["A", "B"], 50).decode(p[:, :, None])
    assert wide == pytest.approx(totals, rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("beam", [2, 3, 5, 10])
def test_reference_beam_agrees_with_prefix_beam_search(seed, beam):
    # flat posteriors (logits from N(0, 1)): many prefixes stay close, so pruning differences would show.
    # (beam 1 is left out on purpose: production beam 1 is greedy decoding, not a one-prefix search)
    rng = np.random.default_rng(40 + seed)
    lp = log_softmax(rng.normal(size=(12, len(SYMBOLS) + 1)))
    best, scores = BeamSearchDecoder(SYMBOLS, beam).decode(y_probs(lp))
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
    paths, scores = BeamSearchDecoder(SYMBOLS, 4).decode(y)
    assert paths == [BeamSearchDecoder(SYMBOLS, 4).decode(y_probs(lp))[0] for lp in lps]
    assert len(scores) == 3
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
    probs = np.array([
        [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4], [0.1, 0.4, 0.3, 0.2], [0.1, 0.2, 0.3, 0.4],
        [0.4, 0.3, 0.2, 0.1], [0.1, 0.4, 0.3, 0.2], [0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.4, 0.3], [0.4, 0.3, 0.2, 0.1],
    ])
    answers = {"A": [3, 0, 3, 0, 3, 1, 1, 0, 2, 0], "B": [3, 0, 3, 1, 3, 0, 1, 0, 2, 0], "C": [3, 0, 3, 1, 3, 0, 0, 2, 0, 1]}
    path, prob = GreedySearchDecoder(["1", "2", "3"]).decode(probs.T[:, :, None])
    collapsed = {k: "".join(str(s) for s in collapse(v)) for k, v in answers.items()}
    assert len(set(collapsed.values())) == 3  # the three answers read differently once collapsed
    assert path == collapsed["B"] == "331312"
    assert prob == pytest.approx(0.4**10, rel=1e-12)
