"""CTC greedy decoding and prefix beam search, checked against brute force and a naive reference."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np
import pytest

from asrkit.decode import (
    Hypothesis,
    ctc_sequence_logprob,
    greedy_decode,
    prefix_beam_search,
    prefix_beam_search_batch,
)
from asrkit.errors import InputError

from ctc_helpers import collapse, log_softmax

NEG_INF = float("-inf")


def random_log_probs(rng: np.random.Generator, T: int, V: int, scale: float = 1.0) -> np.ndarray:
    return log_softmax(rng.normal(size=(T, V)) * scale)


def brute_force(lp: np.ndarray, blank: int = 0) -> dict[tuple[int, ...], float]:
    """Total probability of every label sequence, summing all V**T paths (float64)."""
    p = np.exp(lp.astype(np.float64))
    T, V = p.shape
    totals: dict[tuple[int, ...], float] = defaultdict(float)
    for path in itertools.product(range(V), repeat=T):
        totals[collapse(path, blank)] += float(np.prod(p[np.arange(T), list(path)]))
    return dict(totals)


def naive_prefix_beam(lp: np.ndarray, beam: int, blank: int = 0) -> list[tuple[tuple[int, ...], float]]:
    """Textbook prefix beam search in probability space (float64), no token or score pruning."""
    p = np.exp(lp.astype(np.float64))
    T, V = p.shape
    beams = {(): (1.0, 0.0)}
    for t in range(T):
        nxt: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [0.0, 0.0])
        for prefix, (pb, pnb) in beams.items():
            nxt[prefix][0] += (pb + pnb) * p[t, blank]
            if prefix:
                nxt[prefix][1] += pnb * p[t, prefix[-1]]
            for c in range(V):
                if c == blank:
                    continue
                if prefix and c == prefix[-1]:
                    nxt[prefix + (c,)][1] += pb * p[t, c]
                else:
                    nxt[prefix + (c,)][1] += (pb + pnb) * p[t, c]
        # impossible prefixes (probability 0) are never kept
        best = sorted(((k, v) for k, v in nxt.items() if v[0] + v[1] > 0), key=lambda kv: -(kv[1][0] + kv[1][1]))[:beam]
        beams = {k: (v[0], v[1]) for k, v in best}
    return [(k, math.log(v[0] + v[1])) for k, v in beams.items()]


def frames_with_argmax(argmax: list[int], V: int, peak: float = 0.7) -> np.ndarray:
    """Log-probs whose per-frame argmax is the given sequence."""
    p = np.full((len(argmax), V), (1.0 - peak) / (V - 1))
    p[np.arange(len(argmax)), argmax] = peak
    return np.log(p).astype(np.float32)


# ---------------------------------------------------------------- greedy


def test_greedy_hand_made():
    lp = frames_with_argmax([1, 1, 0, 1, 2, 2, 0, 0, 3], V=4)
    hyp = greedy_decode(lp)
    assert isinstance(hyp, Hypothesis)
    assert hyp.tokens == [1, 1, 2, 3]
    assert hyp.timesteps == [0, 3, 4, 8]
    assert hyp.text == ""
    assert hyp.score == pytest.approx(9 * math.log(0.7), abs=1e-5)


def test_greedy_other_blank_index_and_torch_input():
    torch = pytest.importorskip("torch")
    # blank is 3 here; argmax [3, 0, 0, 3, 0, 1, 1, 2] -> [0, 0, 1, 2]
    lp = frames_with_argmax([3, 0, 0, 3, 0, 1, 1, 2], V=4)
    hyp = greedy_decode(torch.from_numpy(lp).requires_grad_(True), blank=3)
    assert hyp.tokens == [0, 0, 1, 2]
    assert hyp.timesteps == [1, 4, 5, 7]


def test_greedy_empty_and_all_blank():
    assert greedy_decode(np.zeros((0, 3), np.float32)).tokens == []
    hyp = greedy_decode(frames_with_argmax([0, 0, 0], V=3))
    assert hyp.tokens == [] and hyp.timesteps == []


def test_bad_shapes_rejected():
    with pytest.raises(InputError):
        greedy_decode(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(InputError):
        prefix_beam_search(np.zeros((3,), np.float32))
    with pytest.raises(InputError):
        greedy_decode(np.zeros((2, 3), np.float32), blank=3)


# ---------------------------------------------------------------- beam search vs brute force


@pytest.mark.parametrize("T,V,seed", [(1, 2, 0), (2, 3, 1), (3, 2, 2), (3, 3, 3), (4, 3, 4), (5, 3, 5), (5, 2, 6)])
@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_beam_equals_brute_force(T, V, seed, scale):
    rng = np.random.default_rng(seed)
    lp = random_log_probs(rng, T, V, scale)
    totals = brute_force(lp)
    assert sum(totals.values()) == pytest.approx(1.0, abs=1e-5)
    hyps = prefix_beam_search(lp, beam_size=200, token_min_logp=NEG_INF)
    # every possible label sequence is found when the beam is wide enough
    assert {tuple(h.tokens) for h in hyps} == set(totals)
    best = max(totals, key=totals.get)
    assert tuple(hyps[0].tokens) == best
    assert hyps[0].score == pytest.approx(math.log(totals[best]), abs=1e-6)
    for h in hyps:
        assert h.score == pytest.approx(math.log(totals[tuple(h.tokens)]), abs=1e-6)
    scores = [h.score for h in hyps]
    assert scores == sorted(scores, reverse=True)


def test_beam_brute_force_nonzero_blank():
    rng = np.random.default_rng(11)
    lp = random_log_probs(rng, 4, 3, 2.0)
    totals = brute_force(lp, blank=2)
    hyps = prefix_beam_search(lp, beam_size=100, blank=2, token_min_logp=NEG_INF)
    assert {tuple(h.tokens) for h in hyps} == set(totals)
    for h in hyps:
        assert 2 not in h.tokens
        assert h.score == pytest.approx(math.log(totals[tuple(h.tokens)]), abs=1e-6)


def test_repeated_token_needs_blank():
    # a, a over two frames is "a" (not "aa"); a, blank, a is "aa"
    lp = np.log(np.array([[0.01, 0.99], [0.01, 0.99]])).astype(np.float32)
    hyps = prefix_beam_search(lp, beam_size=10, token_min_logp=NEG_INF)
    totals = brute_force(lp)
    assert hyps[0].tokens == [1]
    assert hyps[0].score == pytest.approx(math.log(totals[(1,)]), abs=1e-6)
    assert (1, 1) not in {tuple(h.tokens) for h in hyps}  # impossible in two frames
    lp3 = np.log(np.array([[0.01, 0.99], [0.98, 0.02], [0.01, 0.99]])).astype(np.float32)
    hyps3 = prefix_beam_search(lp3, beam_size=10, token_min_logp=NEG_INF)
    assert hyps3[0].tokens == [1, 1]
    assert hyps3[0].timesteps == [0, 2]
    assert hyps3[0].score == pytest.approx(math.log(brute_force(lp3)[(1, 1)]), abs=1e-6)


def test_sequence_logprob_matches_brute_force():
    rng = np.random.default_rng(7)
    lp = random_log_probs(rng, 5, 3, 2.0)
    for labels, total in brute_force(lp).items():
        assert ctc_sequence_logprob(lp, list(labels)) == pytest.approx(math.log(total), abs=1e-6)
    # a triple repeat needs 3 tokens + 2 separating blanks: fits in 5 frames, not in 4
    assert ctc_sequence_logprob(lp, [1, 1, 1]) > NEG_INF
    assert ctc_sequence_logprob(lp[:4], [1, 1, 1]) == NEG_INF


# ---------------------------------------------------------------- pruned search vs naive reference


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("beam", [2, 3, 5])
def test_narrow_beam_matches_naive_reference(seed, beam):
    # the fast search skips hopeless extensions early; with token_min_logp off it must keep
    # exactly the prefixes (and scores) of the textbook algorithm
    rng = np.random.default_rng(100 + seed)
    lp = random_log_probs(rng, 10, 5, 2.0)
    ref = naive_prefix_beam(lp, beam)
    got = prefix_beam_search(lp, beam_size=beam, token_min_logp=NEG_INF)
    assert [tuple(h.tokens) for h in got] == [k for k, _ in ref]
    for h, (_, s) in zip(got, ref):
        assert h.score == pytest.approx(s, abs=1e-6)


# ---------------------------------------------------------------- beam vs greedy


@pytest.mark.parametrize("seed", range(20))
def test_beam1_equals_greedy_and_beam_not_worse(seed):
    rng = np.random.default_rng(seed)
    T, V = int(rng.integers(1, 30)), int(rng.integers(2, 8))
    lp = random_log_probs(rng, T, V, scale=float(rng.uniform(0.5, 5.0)))
    g = greedy_decode(lp)
    b1 = prefix_beam_search(lp, beam_size=1)
    assert len(b1) == 1
    assert b1[0].tokens == g.tokens
    assert b1[0].timesteps == g.timesteps
    assert b1[0].score == pytest.approx(g.score, abs=1e-6)  # the best path's log-probability
    assert prefix_beam_search(lp, beam_size=1)[0].tokens == g.tokens
    hyps = prefix_beam_search(lp, beam_size=10)
    assert 1 <= len(hyps) <= 10
    assert hyps[0].score >= g.score - 1e-6
    assert prefix_beam_search(lp, beam_size=10)[0].tokens == hyps[0].tokens


def test_beam1_is_greedy_where_one_prefix_search_would_differ():
    # frame 0: "a" (0.51 vs blank 0.49); frame 1: b is the argmax (0.4) but staying on "a"
    # has 0.3 (blank) + 0.3 (repeat) -- a one-prefix search would answer "a", greedy "ab"
    lp = np.log(np.array([[0.49, 0.51, 0.0 + 1e-9], [0.3, 0.3, 0.4]])).astype(np.float32)
    assert greedy_decode(lp).tokens == [1, 2]
    assert prefix_beam_search(lp, beam_size=1)[0].tokens == [1, 2]


def test_beam_beats_greedy_classic():
    # two frames, P(blank) = 0.6 and P(a) = 0.4 in each.
    # greedy path: blank blank -> "" with probability 0.6 * 0.6 = 0.36.
    # "a" collects three paths: a-blank 0.24 + blank-a 0.24 + a-a 0.16 = 0.64 > 0.36.
    lp = np.log(np.array([[0.6, 0.4], [0.6, 0.4]])).astype(np.float32)
    g = greedy_decode(lp)
    assert g.tokens == []
    assert g.score == pytest.approx(math.log(0.36), abs=1e-6)
    hyps = prefix_beam_search(lp, beam_size=4)
    assert hyps[0].tokens == [1]
    assert hyps[0].score == pytest.approx(math.log(0.64), abs=1e-6)
    assert hyps[1].tokens == []
    assert hyps[1].score == pytest.approx(math.log(0.36), abs=1e-6)
    assert len(hyps) == 2  # "aa" needs three frames


# ---------------------------------------------------------------- timesteps, pruning options


@pytest.mark.parametrize("seed", range(10))
def test_timesteps_valid(seed):
    rng = np.random.default_rng(200 + seed)
    T, V = 25, 6
    lp = random_log_probs(rng, T, V, 4.0)
    for hyp in [greedy_decode(lp), *prefix_beam_search(lp, beam_size=8)]:
        assert len(hyp.timesteps) == len(hyp.tokens)
        assert all(0 <= t < T for t in hyp.timesteps)
        assert all(a <= b for a, b in zip(hyp.timesteps, hyp.timesteps[1:]))


def test_timesteps_follow_the_emissions():
    # argmax path: blank x2, 1 at frame 2-3, blank, 2 at frame 5, blank, 1 at frame 7
    lp = frames_with_argmax([0, 0, 1, 1, 0, 2, 0, 1], V=3, peak=0.95)
    assert greedy_decode(lp).timesteps == [2, 5, 7]
    best = prefix_beam_search(lp, beam_size=5)[0]
    assert best.tokens == [1, 2, 1]
    assert best.timesteps == [2, 5, 7]


def test_token_min_logp_filters_and_keeps_best():
    lp = np.log(np.array([[0.05, 0.9, 0.05], [0.9, 0.05, 0.05]])).astype(np.float32)
    hyps = prefix_beam_search(lp, beam_size=10, token_min_logp=math.log(0.5))
    # only the best token of each frame may be emitted
    assert {tuple(h.tokens) for h in hyps} <= {(), (1,)}
    assert hyps[0].tokens == [1]
    # a threshold above every token still keeps the frame's best one
    hyps = prefix_beam_search(lp, beam_size=10, token_min_logp=1.0)
    assert hyps[0].tokens == [1]


def test_prune_beam_drops_far_hypotheses():
    rng = np.random.default_rng(5)
    lp = random_log_probs(rng, 12, 5, 3.0)
    full = prefix_beam_search(lp, beam_size=10, token_min_logp=NEG_INF)
    pruned = prefix_beam_search(lp, beam_size=10, token_min_logp=NEG_INF, prune_beam=2.0)
    assert pruned[0].tokens == full[0].tokens
    assert all(h.score >= pruned[0].score - 2.0 for h in pruned)
    assert len(pruned) <= len(full)


# ---------------------------------------------------------------- batches


@pytest.mark.parametrize("beam", [1, 6])
def test_batch_equals_one_by_one_with_padding(beam):
    rng = np.random.default_rng(42)
    lengths = [7, 12, 1, 0, 12]
    N, T, V = len(lengths), max(lengths), 5
    batch = np.stack([random_log_probs(rng, T, V, 3.0) for _ in range(N)])
    # padding frames strongly favour a token, so decoding them would change the answer
    for i, n in enumerate(lengths):
        batch[i, n:] = np.log(np.array([0.01, 0.96, 0.01, 0.01, 0.01]))
    got = prefix_beam_search_batch(batch, np.array(lengths), beam_size=beam)
    assert len(got) == N
    for i, n in enumerate(lengths):
        ref = prefix_beam_search(batch[i, :n], beam_size=beam)
        assert [(h.tokens, h.timesteps) for h in got[i]] == [(h.tokens, h.timesteps) for h in ref]
        assert [h.score for h in got[i]] == pytest.approx([h.score for h in ref], abs=1e-9)
    assert got[3][0].tokens == []


def test_batch_torch_input_and_bad_lengths():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    batch = np.stack([random_log_probs(rng, 6, 4, 3.0) for _ in range(2)])
    got = prefix_beam_search_batch(torch.from_numpy(batch), torch.tensor([6, 4]), beam_size=3)
    assert got[0][0].tokens == prefix_beam_search(batch[0], beam_size=3)[0].tokens
    assert got[1][0].tokens == prefix_beam_search(batch[1, :4], beam_size=3)[0].tokens
    with pytest.raises(InputError, match=r"lengths must lie in \[0, 6\]"):
        prefix_beam_search_batch(batch, [6, 7])
    with pytest.raises(InputError, match="1 lengths for a batch of 2"):
        prefix_beam_search_batch(batch, [6])
    with pytest.raises(InputError, match=r"shape \(B, T, V\)"):
        prefix_beam_search_batch(batch[0], [6])


# ---------------------------------------------------------------- exactness on flat posteriors


def test_nbest_order_equals_brute_force():
    # a beam as wide as the number of label sequences returns all of them, ordered by their total
    # probability exactly as the brute-force sum orders them
    for seed in range(8):
        rng = np.random.default_rng(500 + seed)
        lp = random_log_probs(rng, 4, 3)
        totals = brute_force(lp)
        want = sorted(totals, key=totals.get, reverse=True)
        got = prefix_beam_search(lp, beam_size=len(totals))
        assert [tuple(h.tokens) for h in got] == want
        assert [s for _, s in got] == pytest.approx([math.log(totals[k]) for k in want], abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("beam", [3, 10])
def test_equals_dict_search_on_flat_posteriors_full_alphabet(seed, beam):
    # logits drawn from N(0, 1) over 29 tokens: greedy and beam disagree often, and a prefix is
    # reached along many paths, so any merging or pruning error changes the n-best
    rng = np.random.default_rng(700 + seed)
    lp = random_log_probs(rng, 40, 29)
    ref = naive_prefix_beam(lp, beam)
    got = prefix_beam_search(lp, beam_size=beam)
    assert [tuple(ids) for ids, _ in got] == [k for k, _ in ref]
    assert [s for _, s in got] == pytest.approx([s for _, s in ref], abs=1e-6)


def test_flat_posteriors_make_greedy_and_beam_disagree():
    # the property the exactness tests rely on: on flat posteriors the beam often beats greedy
    rng = np.random.default_rng(1)
    differ = sum(
        prefix_beam_search(lp, beam_size=10)[0].tokens != greedy_decode(lp).tokens
        for lp in (random_log_probs(rng, 30, 29) for _ in range(20))
    )
    assert differ >= 10


def test_unpacks_as_ids_and_score():
    lp = np.log(np.array([[0.6, 0.4], [0.6, 0.4]], dtype=np.float32))
    (ids, score), (ids2, score2) = prefix_beam_search(lp, 4)
    assert (ids, ids2) == ([1], [])
    assert (math.exp(score), math.exp(score2)) == pytest.approx((0.64, 0.36))


def test_top_k_limits_the_tokens_of_a_frame():
    # frame 1 ranks b > c > a; with top_k=1 only b may be emitted there
    lp = np.log(np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.2, 0.4, 0.3]], dtype=np.float32))
    full = {tuple(h.tokens) for h in prefix_beam_search(lp, beam_size=50)}
    cut = {tuple(h.tokens) for h in prefix_beam_search(lp, beam_size=50, top_k=1)}
    assert (3,) in full and (1,) in full
    assert cut <= {(), (1,), (2,), (3,), (1, 2), (2, 2), (3, 2)} and (3,) not in cut
    assert (2,) in cut  # frame 1's best token is kept


def test_bad_options_rejected():
    lp = np.zeros((3, 4), np.float32)
    with pytest.raises(InputError, match="beam_size"):
        prefix_beam_search(lp, beam_size=0)
    with pytest.raises(InputError, match="top_k"):
        prefix_beam_search(lp, top_k=0)
    with pytest.raises(InputError, match="blank index 4"):
        prefix_beam_search(lp, blank=4)


def test_docstring_example_runs():
    import doctest

    import asrkit.decode.beam

    assert doctest.testmod(asrkit.decode.beam).failed == 0
