"""Compiled (numba) kernels for CTC decoding: exact prefix beam search, greedy, sequence score.

The prefix beam search keeps, after every frame, the `beam` best label prefixes by their total
probability (blank-ending + token-ending mass, in log space). Prefixes are nodes of a trie that
only grows and never holds a prefix twice, so node ids are prefix identities and two ways of
reaching the same prefix in a frame always meet in one slot: a prefix already in the beam can only
be re-reached from its parent's slot, and that extension is found through the parent before any
new prefix is created. That is the whole of the exact merging.

Timestamps live in a second, parallel chain: a slot's frame for its last token is the frame of
the largest single contribution that produced it, so a prefix that first entered the beam with a
tiny probability moves its stamp to the frame where the token really fired.

An optional finite automaton (`trans[state, token]` -> next state or -1) restricts the prefixes,
which is how a lexicon constrains the search; without one, `trans` is a dummy and `use_fsa` False.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit, prange

NEG_INF = -np.inf


@njit(cache=True, inline="always")
def _lae(a: float, b: float) -> float:
    """log(exp(a) + exp(b)), safe with -inf."""
    if a < b:
        a, b = b, a
    if b == NEG_INF:
        return a
    return a + math.log1p(math.exp(b - a))


@njit(cache=True)
def _heap_push(hs, hi, n, cap, s, ref):
    """Min-heap of the `cap` best (score, ref); returns the new size. Keeps the larger on a full heap."""
    if n < cap:
        i = n
        n += 1
    elif s > hs[0]:
        # replace the root, then sift down
        i = 0
        while True:
            left = 2 * i + 1
            if left >= n:
                break
            c = left
            if left + 1 < n and hs[left + 1] < hs[left]:
                c = left + 1
            if hs[c] >= s:
                break
            hs[i] = hs[c]
            hi[i] = hi[c]
            i = c
        hs[i] = s
        hi[i] = ref
        return n
    else:
        return n
    # sift up
    while i > 0:
        p = (i - 1) // 2
        if hs[p] <= s:
            break
        hs[i] = hs[p]
        hi[i] = hi[p]
        i = p
    hs[i] = s
    hi[i] = ref
    return n


class BeamOptions(NamedTuple):
    """The search settings the kernels read (see `prefix_beam_search`); `trans` is the lexicon automaton."""

    beam: int
    blank: int
    token_min_logp: float  # -inf: no floor
    top_k: int  # 0: all tokens
    prune_beam: float  # inf: no pruning
    trans: np.ndarray  # (states, V) int32: next state or -1; a dummy when use_fsa is False
    use_fsa: bool


# The search state lives in a few 2-D arrays whose rows are named below: numba counts references to every
# array a function receives, so a handful of tables cost less per frame than a record of thirty arrays.
# trie (int32, rows x nodes): the prefix trie, append-only, so node ids are prefix identities; and the
# stamp chains (timestamps), a second append-only node table
PARENT, TOKEN, CHILD, NEXT, SLOT, S_PARENT, S_FRAME = 0, 1, 2, 3, 4, 5, 6
# beam slots, best first: float64 rows (log masses) and int32 rows
PB, PNB, PTOT = 0, 1, 2  # ending in a blank, ending in the last token, total
NODE, STAMP, LAST, STATE = 0, 1, 2, 3  # prefix node, stamp node, last token (-1: none), lexicon automaton state
# per-frame work on the old slots and the candidate heap: float64 rows and int64 rows
NPB, NPNB, HS, SEL_S = 0, 1, 2, 3  # next-frame masses of the old slots; heap scores; ranked scores
HI, SEL_R, FROM, MARKED = 0, 1, 2, 3  # heap refs (r < K: old slot r, else K + i * V + c: slot i + token c);
# ranked refs; the slot whose extension gave an old slot's largest contribution (-1: none); marked children


@njit(cache=True)
def _new_trie(n: int) -> np.ndarray:
    """Trie and stamp tables for n nodes, node 0 being the empty prefix (and the empty stamp chain)."""
    tr = np.empty((7, n), np.int32)
    tr[CHILD] = -1
    tr[NEXT] = -1
    tr[SLOT] = -1
    tr[PARENT, 0] = -1
    tr[TOKEN, 0] = -1
    tr[S_PARENT, 0] = -1
    tr[S_FRAME, 0] = -1
    return tr


@njit(cache=True)
def _keep_top_k(row, blank, floor, top_k, vals):
    """Keep only the top_k tokens the floor allows: the k-th largest value is the cut (-inf elsewhere in vals)."""
    V = row.shape[0]
    order = np.empty(V, np.int64)
    m = 0
    for c in range(V):
        if c != blank and row[c] >= floor:
            order[m] = c
            m += 1
    if m <= top_k:
        return
    ranked = np.empty(m, np.float64)
    for j in range(m):
        ranked[j] = row[order[j]]
    ranked.sort()
    cut = ranked[m - top_k]
    kept = 0
    for j in range(m):
        c = order[j]
        if row[c] < cut or kept >= top_k:
            vals[c] = NEG_INF
        else:
            kept += 1


@njit(cache=True, inline="always")
def _filter_tokens(row, opts, vals):
    """The log-probs of the tokens the frame may emit into `vals`, -inf for the others (the pruning options;
    all tokens but the blank when both are off); returns the best of them before the top-k cut."""
    V = row.shape[0]
    blank, floor, top_k = opts.blank, opts.token_min_logp, opts.top_k
    mx = NEG_INF
    for c in range(V):
        ok = c != blank and row[c] >= floor
        vals[c] = row[c] if ok else NEG_INF
        if ok and row[c] > mx:
            mx = row[c]
    if top_k > 0 and top_k < V - 1:
        _keep_top_k(row, blank, floor, top_k, vals)
    if mx == NEG_INF:
        # the floor removed every token: keep the frame's best one when it beats the blank
        best_c = -1
        for c in range(V):
            if c != blank and (best_c < 0 or row[c] > row[best_c]):
                best_c = c
        if best_c >= 0 and row[best_c] > row[blank]:
            vals[best_c] = row[best_c]
            mx = row[best_c]
    return mx


@njit(cache=True, inline="always")
def _stay_and_merge(row, lb, bf, bi, nb, tr, wf, wi, vals, child_mark):
    """Next-frame mass of the old prefixes: staying (a blank, or a repeat of the last token) plus the
    extensions of a parent slot that land on a prefix already in the beam; returns how many children it marked."""
    V = row.shape[0]
    for q in range(nb):
        wf[NPB, q] = bf[PTOT, q] + lb
        wf[NPNB, q] = bf[PNB, q] + row[bi[LAST, q]] if bi[LAST, q] >= 0 else NEG_INF
        wi[FROM, q] = -1
        tr[SLOT, bi[NODE, q]] = q
    n_marked = 0
    for q in range(nb):
        nd = bi[NODE, q]
        if nd == 0:
            continue
        i = tr[SLOT, tr[PARENT, nd]]
        if i < 0:
            continue
        c = tr[TOKEN, nd]
        child_mark[i * V + c] = True
        wi[MARKED, n_marked] = i * V + c
        n_marked += 1
        if vals[c] == NEG_INF:
            continue  # not allowed this frame (or impossible)
        base = bf[PB, i] if c == bi[LAST, i] else bf[PTOT, i]  # a repeat needs a blank in between
        s = base + row[c]
        if s == NEG_INF:
            continue
        npb, npnb = wf[NPB, q], wf[NPNB, q]
        if s > (npb if npb > npnb else npnb):
            wi[FROM, q] = i
        wf[NPNB, q] = _lae(npnb, s)
    for q in range(nb):
        tr[SLOT, bi[NODE, q]] = -1
    return n_marked


@njit(cache=True, inline="always")
def _candidates(bf, bi, nb, mx, opts, wf, hs, hi, vals, child_mark):
    """Fill the top-K heap: old prefixes first (their scores are final), then new ones above its floor;
    returns the heap size."""
    K = opts.beam
    use_fsa, trans = opts.use_fsa, opts.trans
    V = vals.shape[0]
    n = 0
    for q in range(nb):
        s = _lae(wf[NPB, q], wf[NPNB, q])
        if s > NEG_INF:
            n = _heap_push(hs, hi, n, K, s, q)
    for i in range(nb):  # the slots are sorted best first
        pt = bf[PTOT, i]
        if n == K and pt + mx <= hs[0]:
            break  # no token can lift this prefix, or any later one, above the floor
        li = bi[LAST, i]
        st = bi[STATE, i]
        pbi = bf[PB, i]
        base = i * V
        thr = hs[0] - pt if n == K else NEG_INF
        for c in range(V):
            v = vals[c]
            if v <= thr or child_mark[base + c]:
                continue
            s = (pbi if c == li else pt) + v
            if s == NEG_INF or (n == K and s <= hs[0]):
                continue
            if use_fsa and trans[st, c] < 0:
                continue
            n = _heap_push(hs, hi, n, K, s, K + base + c)
            if n == K:
                thr = hs[0] - pt
    return n


@njit(cache=True, inline="always")
def _rank(n, prune_beam, hs, hi, sel_s, sel_r):
    """Sort the heap (hs, hi) best first into (sel_s, sel_r) (insertion sort of at most K entries, ties by ref);
    returns how many survive `prune_beam`."""
    for j in range(n):
        s = hs[j]
        r = hi[j]
        k = j
        while k > 0 and (sel_s[k - 1] < s or (sel_s[k - 1] == s and sel_r[k - 1] > r)):
            sel_s[k] = sel_s[k - 1]
            sel_r[k] = sel_r[k - 1]
            k -= 1
        sel_s[k] = s
        sel_r[k] = r
    if prune_beam < np.inf and n > 0:
        floor = sel_s[0] - prune_beam
        m = 0
        while m < n and sel_s[m] >= floor:
            m += 1
        n = m
    return n


@njit(cache=True, inline="always")
def _child(tr, par, c, n_nodes):
    """The trie node of prefix `par` + token c, or -1 when it does not exist yet (then `_add_child` makes it:
    a prefix that leaves the beam and comes back finds its old node, so every prefix has exactly one)."""
    nd = tr[CHILD, par]
    while nd >= 0 and tr[TOKEN, nd] != c:
        nd = tr[NEXT, nd]
    if nd < 0:
        nd = n_nodes
        tr[PARENT, nd] = par
        tr[TOKEN, nd] = c
        tr[NEXT, nd] = tr[CHILD, par]
        tr[CHILD, par] = nd
    return nd


@njit(cache=True, inline="always")
def _build_beam(n, t, bf, bi, bf2, bi2, tr, opts, wf, wi, V, n_nodes, n_stamps):
    """Write the ranked candidates of frame t into the slots (bf2, bi2); returns the trie and stamp node counts."""
    K = opts.beam
    use_fsa, trans = opts.use_fsa, opts.trans
    for j in range(n):
        r = wi[SEL_R, j]
        if r < K:
            q = r
            bi2[NODE, j] = bi[NODE, q]
            bf2[PB, j] = wf[NPB, q]
            bf2[PNB, j] = wf[NPNB, q]
            bi2[LAST, j] = bi[LAST, q]
            bi2[STATE, j] = bi[STATE, q]
            src = wi[FROM, q]
            if src >= 0:  # an extension outweighed staying: the token's stamp moves to this frame
                tr[S_PARENT, n_stamps] = bi[STAMP, src]
                tr[S_FRAME, n_stamps] = t
                bi2[STAMP, j] = n_stamps
                n_stamps += 1
            else:
                bi2[STAMP, j] = bi[STAMP, q]
        else:
            i = (r - K) // V
            c = (r - K) % V
            nd = _child(tr, bi[NODE, i], c, n_nodes)
            if nd == n_nodes:
                n_nodes += 1
            bi2[NODE, j] = nd
            tr[S_PARENT, n_stamps] = bi[STAMP, i]
            tr[S_FRAME, n_stamps] = t
            bi2[STAMP, j] = n_stamps
            n_stamps += 1
            bf2[PB, j] = NEG_INF
            bf2[PNB, j] = wf[SEL_S, j]
            bi2[LAST, j] = c
            bi2[STATE, j] = trans[bi[STATE, i], c] if use_fsa else 0
        bf2[PTOT, j] = wf[SEL_S, j]
    return n_nodes, n_stamps


@njit(cache=True, inline="always")
def _write_nbest(bf, bi, nb, tr, out_tokens, out_frames, out_len, out_score, out_state):
    """Write the n-best by walking both chains back from each slot."""
    for j in range(nb):
        length = 0
        nd = bi[NODE, j]
        while nd > 0:
            length += 1
            nd = tr[PARENT, nd]
        nd = bi[NODE, j]
        sd = bi[STAMP, j]
        for k in range(length - 1, -1, -1):
            out_tokens[j, k] = tr[TOKEN, nd]
            out_frames[j, k] = tr[S_FRAME, sd]
            nd = tr[PARENT, nd]
            sd = tr[S_PARENT, sd]
        out_len[j] = length
        out_score[j] = bf[PTOT, j]
        out_state[j] = bi[STATE, j]


@njit(cache=True)
def _beam_search(lp, T, opts, out_tokens, out_frames, out_len, out_score, out_state):
    """Exact CTC prefix beam search over lp[:T] (T x V); writes the n-best, returns their number."""
    V = lp.shape[1]
    K = opts.beam
    tr = _new_trie(1 + T * K)
    n_nodes = n_stamps = 1  # node 0 of both tables: the empty prefix
    bf = np.full((3, K), NEG_INF)
    bi = np.zeros((4, K), np.int32)
    bi[LAST] = -1
    bf[PB, 0] = 0.0
    bf[PTOT, 0] = 0.0
    nb = 1
    bf2 = np.empty((3, K), np.float64)  # the next frame's beam is built here, then the two swap
    bi2 = np.zeros((4, K), np.int32)
    wf = np.empty((4, K), np.float64)
    wi = np.full((4, K), -1, np.int64)
    vals = np.empty(V, np.float64)
    child_mark = np.zeros(K * V, np.bool_)  # a child of slot i by token c already in the beam
    hs, hi, sel_s, sel_r = wf[HS], wi[HI], wf[SEL_S], wi[SEL_R]  # the heap and its ranking, best first
    for t in range(T):
        row = lp[t]
        mx = _filter_tokens(row, opts, vals)
        n_marked = _stay_and_merge(row, row[opts.blank], bf, bi, nb, tr, wf, wi, vals, child_mark)
        n = _candidates(bf, bi, nb, mx, opts, wf, hs, hi, vals, child_mark)
        for j in range(n_marked):
            child_mark[wi[MARKED, j]] = False
        n = _rank(n, opts.prune_beam, hs, hi, sel_s, sel_r)
        n_nodes, n_stamps = _build_beam(n, t, bf, bi, bf2, bi2, tr, opts, wf, wi, V, n_nodes, n_stamps)
        bf, bf2 = bf2, bf
        bi, bi2 = bi2, bi
        nb = n
        if nb == 0:
            break
    _write_nbest(bf, bi, nb, tr, out_tokens, out_frames, out_len, out_score, out_state)
    return nb


@njit(cache=True)
def greedy_path(lp, T, blank, out_tokens, out_frames, out_score):
    """Best path: arg-max per frame, repeats collapsed, blanks dropped; returns the label count and
    writes the path's log-probability to out_score[0]."""
    V = lp.shape[1]
    prev = blank
    n = 0
    total = 0.0
    for t in range(T):
        k = 0
        best = lp[t, 0]
        for c in range(1, V):
            if lp[t, c] > best:
                best = lp[t, c]
                k = c
        total += best
        if k != blank and k != prev:
            out_tokens[n] = k
            out_frames[n] = t
            n += 1
        prev = k
    out_score[0] = total
    return n


@njit(cache=True)
def sequence_logprob(lp, ext, blank):
    """Total CTC log-probability of the blank-extended labels `ext` over lp (T x V): the forward algorithm."""
    T = lp.shape[0]
    S = ext.shape[0]
    if T == 0:
        return 0.0 if S == 1 else NEG_INF
    alpha = np.full(S, NEG_INF)
    new = np.empty(S, np.float64)
    alpha[0] = lp[0, ext[0]]
    if S > 1:
        alpha[1] = lp[0, ext[1]]
    for t in range(1, T):
        for s in range(S):
            a = alpha[s]
            if s >= 1:
                a = _lae(a, alpha[s - 1])
            if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                a = _lae(a, alpha[s - 2])
            new[s] = a + lp[t, ext[s]] if a != NEG_INF else NEG_INF
        alpha, new = new, alpha
    return _lae(alpha[S - 1], alpha[S - 2]) if S > 1 else alpha[S - 1]


@njit(cache=True)
def _one(lp, T, opts, out_tokens, out_frames, out_len, out_score, out_state):
    """One utterance: greedy (beam 1, scored by its path) or the beam search; returns the n-best size."""
    if opts.beam <= 1:
        out_len[0] = greedy_path(lp, T, opts.blank, out_tokens[0], out_frames[0], out_score)
        out_state[0] = 0
        return 1
    return _beam_search(lp, T, opts, out_tokens, out_frames, out_len, out_score, out_state)


@njit(cache=True)
def beam_one(lp, opts):
    """Decode one (T, V) utterance; returns (count, tokens, frames, lengths, scores, fsa states)."""
    T = lp.shape[0]
    K = max(opts.beam, 1)
    out_tokens = np.zeros((K, max(T, 1)), np.int32)
    out_frames = np.zeros((K, max(T, 1)), np.int32)
    out_len = np.zeros(K, np.int32)
    out_score = np.full(K, NEG_INF)
    out_state = np.zeros(K, np.int32)
    n = _one(lp, T, opts, out_tokens, out_frames, out_len, out_score, out_state)
    return n, out_tokens, out_frames, out_len, out_score, out_state


@njit(cache=True, parallel=True)
def beam_batch(lp, lengths, opts):
    """Decode a (B, T, V) batch cut to `lengths`, utterances in parallel; like `beam_one`, batched."""
    B, T, _ = lp.shape
    K = max(opts.beam, 1)
    out_n = np.zeros(B, np.int32)
    out_tokens = np.zeros((B, K, max(T, 1)), np.int32)
    out_frames = np.zeros((B, K, max(T, 1)), np.int32)
    out_len = np.zeros((B, K), np.int32)
    out_score = np.full((B, K), NEG_INF)
    out_state = np.zeros((B, K), np.int32)
    for b in prange(B):
        out_n[b] = _one(lp[b], lengths[b], opts, out_tokens[b], out_frames[b], out_len[b], out_score[b], out_state[b])
    return out_n, out_tokens, out_frames, out_len, out_score, out_state
