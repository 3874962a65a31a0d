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


@njit(cache=True)
def _beam_search(
    lp, T, beam, blank, token_min_logp, top_k, prune_beam, trans, accept, use_fsa,
    out_tokens, out_frames, out_len, out_score, out_state,
):
    """Exact CTC prefix beam search over lp[:T] (T x V); writes the n-best, returns their number."""
    V = lp.shape[1]
    K = beam
    n_nodes_max = 1 + T * K
    # prefix trie (identity) and stamp chains (timestamps), both append-only
    p_parent = np.empty(n_nodes_max, np.int32)
    p_token = np.empty(n_nodes_max, np.int32)
    s_parent = np.empty(n_nodes_max, np.int32)
    s_frame = np.empty(n_nodes_max, np.int32)
    slot_of = np.full(n_nodes_max, -1, np.int32)  # trie node -> beam slot, for the current beam only
    # first child / next sibling: a prefix that leaves the beam and comes back finds its old node,
    # so every prefix has exactly one node and node ids are prefix identities
    p_child = np.full(n_nodes_max, -1, np.int32)
    p_next = np.full(n_nodes_max, -1, np.int32)
    p_parent[0] = -1
    p_token[0] = -1
    s_parent[0] = -1
    s_frame[0] = -1
    n_pnodes = 1
    n_snodes = 1

    # the beam: K slots
    node = np.zeros(K, np.int32)
    stamp = np.zeros(K, np.int32)
    pb = np.full(K, NEG_INF)
    pnb = np.full(K, NEG_INF)
    ptot = np.full(K, NEG_INF)
    last = np.full(K, -1, np.int32)
    state = np.zeros(K, np.int32)
    pb[0] = 0.0
    ptot[0] = 0.0
    nb = 1

    # next-frame values of the old slots
    npb = np.empty(K, np.float64)
    npnb = np.empty(K, np.float64)
    nstamp_from = np.full(K, -1, np.int32)  # slot whose extension gave the largest contribution
    # a child of slot i by token c already in the beam: marked so it is not created twice
    child_mark = np.zeros(K * V, np.bool_)
    marked = np.empty(K, np.int32)
    # top-K heap over candidates: ref < K is an old slot, else K + i * V + c is new (slot i, token c)
    hs = np.empty(K, np.float64)
    hi = np.empty(K, np.int64)
    allowed = np.empty(V, np.bool_)
    vals = np.empty(V, np.float64)  # the frame's token log-probs, -inf where a token is not allowed
    order = np.empty(V, np.int64)

    # new beam (built into these, then swapped)
    node2 = np.zeros(K, np.int32)
    stamp2 = np.zeros(K, np.int32)
    pb2 = np.empty(K, np.float64)
    pnb2 = np.empty(K, np.float64)
    ptot2 = np.empty(K, np.float64)
    last2 = np.empty(K, np.int32)
    state2 = np.empty(K, np.int32)
    sel_s = np.empty(K, np.float64)
    sel_r = np.empty(K, np.int64)

    for t in range(T):
        row = lp[t]
        lb = row[blank]
        # token filter for this frame (pruning options; all tokens when both are off)
        mx = NEG_INF
        for c in range(V):
            ok = c != blank and row[c] >= token_min_logp
            allowed[c] = ok
            if ok and row[c] > mx:
                mx = row[c]
        if top_k > 0 and top_k < V - 1:
            # keep the top_k tokens: the k-th largest value is the floor
            m = 0
            for c in range(V):
                if allowed[c]:
                    order[m] = c
                    m += 1
            if m > top_k:
                ranked = np.empty(m, np.float64)
                for j in range(m):
                    ranked[j] = row[order[j]]
                ranked.sort()
                floor = ranked[m - top_k]
                kept = 0
                for j in range(m):
                    c = order[j]
                    if row[c] < floor or kept >= top_k:
                        allowed[c] = False
                    else:
                        kept += 1
        if mx == NEG_INF:
            # the floor removed every token: keep the frame's best one when it beats the blank
            best_c = -1
            for c in range(V):
                if c != blank and (best_c < 0 or row[c] > row[best_c]):
                    best_c = c
            if best_c >= 0 and row[best_c] > lb:
                allowed[best_c] = True
                mx = row[best_c]

        for c in range(V):
            vals[c] = row[c] if allowed[c] else NEG_INF
        # 1) old prefixes stay: a blank after anything, or a repeat of the last token
        for q in range(nb):
            npb[q] = ptot[q] + lb
            npnb[q] = pnb[q] + row[last[q]] if last[q] >= 0 else NEG_INF
            nstamp_from[q] = -1
            slot_of[node[q]] = q
        # 2) extensions that land on a prefix already in the beam (its parent is in the beam too)
        n_marked = 0
        for q in range(nb):
            nd = node[q]
            if nd == 0:
                continue
            i = slot_of[p_parent[nd]]
            if i < 0:
                continue
            c = p_token[nd]
            child_mark[i * V + c] = True
            marked[n_marked] = i * V + c
            n_marked += 1
            if not allowed[c]:
                continue
            base = pb[i] if c == last[i] else ptot[i]  # a repeat needs a blank in between
            s = base + row[c]
            if s == NEG_INF:
                continue
            stay = npb[q] if npb[q] > npnb[q] else npnb[q]
            if s > stay:
                nstamp_from[q] = i
            npnb[q] = _lae(npnb[q], s)
        for q in range(nb):
            slot_of[node[q]] = -1

        # 3) the heap: old prefixes first (their scores are final now), then new ones above its floor
        n = 0
        for q in range(nb):
            s = _lae(npb[q], npnb[q])
            if s > NEG_INF:
                n = _heap_push(hs, hi, n, K, s, q)
        for i in range(nb):  # the slots are sorted best first
            pt = ptot[i]
            if n == K and pt + mx <= hs[0]:
                break  # no token can lift this prefix, or any later one, above the floor
            li = last[i]
            st = state[i]
            base = i * V
            thr = hs[0] - pt if n == K else NEG_INF
            for c in range(V):
                v = vals[c]
                if v <= thr or child_mark[base + c]:
                    continue
                s = (pb[i] if c == li else pt) + v
                if s == NEG_INF or (n == K and s <= hs[0]):
                    continue
                if use_fsa and trans[st, c] < 0:
                    continue
                n = _heap_push(hs, hi, n, K, s, K + base + c)
                if n == K:
                    thr = hs[0] - pt
        for j in range(n_marked):
            child_mark[marked[j]] = False

        # 4) the new beam, best first (insertion sort of at most K entries)
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
        for j in range(n):
            r = sel_r[j]
            if r < K:
                q = r
                node2[j] = node[q]
                pb2[j] = npb[q]
                pnb2[j] = npnb[q]
                last2[j] = last[q]
                state2[j] = state[q]
                src = nstamp_from[q]
                if src >= 0:
                    s_parent[n_snodes] = stamp[src]
                    s_frame[n_snodes] = t
                    stamp2[j] = n_snodes
                    n_snodes += 1
                else:
                    stamp2[j] = stamp[q]
            else:
                i = (r - K) // V
                c = (r - K) % V
                par = node[i]
                nd = p_child[par]
                while nd >= 0 and p_token[nd] != c:
                    nd = p_next[nd]
                if nd < 0:
                    nd = n_pnodes
                    n_pnodes += 1
                    p_parent[nd] = par
                    p_token[nd] = c
                    p_next[nd] = p_child[par]
                    p_child[par] = nd
                node2[j] = nd
                s_parent[n_snodes] = stamp[i]
                s_frame[n_snodes] = t
                stamp2[j] = n_snodes
                n_snodes += 1
                pb2[j] = NEG_INF
                pnb2[j] = sel_s[j]
                last2[j] = c
                state2[j] = trans[state[i], c] if use_fsa else 0
            ptot2[j] = sel_s[j]
        node, node2 = node2, node
        stamp, stamp2 = stamp2, stamp
        pb, pb2 = pb2, pb
        pnb, pnb2 = pnb2, pnb
        ptot, ptot2 = ptot2, ptot
        last, last2 = last2, last
        state, state2 = state2, state
        nb = n
        if nb == 0:
            break

    # write the n-best by walking both chains back from each slot
    for j in range(nb):
        length = 0
        nd = node[j]
        while nd > 0:
            length += 1
            nd = p_parent[nd]
        nd = node[j]
        sd = stamp[j]
        for k in range(length - 1, -1, -1):
            out_tokens[j, k] = p_token[nd]
            out_frames[j, k] = s_frame[sd]
            nd = p_parent[nd]
            sd = s_parent[sd]
        out_len[j] = length
        out_score[j] = ptot[j]
        out_state[j] = state[j]
    return nb


@njit(cache=True)
def _greedy(lp, T, blank, out_tokens, out_frames, out_score):
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
def _one(lp, T, beam, blank, token_min_logp, top_k, prune_beam, trans, accept, use_fsa,
         out_tokens, out_frames, out_len, out_score, out_state):
    """One utterance: greedy (beam 1, scored by its path) or the beam search; returns the n-best size."""
    if beam <= 1:
        out_len[0] = _greedy(lp, T, blank, out_tokens[0], out_frames[0], out_score)
        out_state[0] = 0
        return 1
    return _beam_search(lp, T, beam, blank, token_min_logp, top_k, prune_beam, trans, accept, use_fsa,
                        out_tokens, out_frames, out_len, out_score, out_state)


@njit(cache=True)
def beam_one(lp, beam, blank, token_min_logp, top_k, prune_beam, trans, accept, use_fsa):
    """Decode one (T, V) utterance; returns (count, tokens, frames, lengths, scores, fsa states)."""
    T = lp.shape[0]
    K = max(beam, 1)
    out_tokens = np.zeros((K, max(T, 1)), np.int32)
    out_frames = np.zeros((K, max(T, 1)), np.int32)
    out_len = np.zeros(K, np.int32)
    out_score = np.full(K, NEG_INF)
    out_state = np.zeros(K, np.int32)
    n = _one(lp, T, beam, blank, token_min_logp, top_k, prune_beam, trans, accept, use_fsa,
             out_tokens, out_frames, out_len, out_score, out_state)
    return n, out_tokens, out_frames, out_len, out_score, out_state


@njit(cache=True, parallel=True)
def beam_batch(lp, lengths, beam, blank, token_min_logp, top_k, prune_beam, trans, accept, use_fsa):
    """Decode a (B, T, V) batch cut to `lengths`, utterances in parallel; like `beam_one`, batched."""
    B, T, _ = lp.shape
    K = max(beam, 1)
    out_n = np.zeros(B, np.int32)
    out_tokens = np.zeros((B, K, max(T, 1)), np.int32)
    out_frames = np.zeros((B, K, max(T, 1)), np.int32)
    out_len = np.zeros((B, K), np.int32)
    out_score = np.full((B, K), NEG_INF)
    out_state = np.zeros((B, K), np.int32)
    for b in prange(B):
        out_n[b] = _one(lp[b], lengths[b], beam, blank, token_min_logp, top_k, prune_beam, trans, accept,
                        use_fsa, out_tokens[b], out_frames[b], out_len[b], out_score[b], out_state[b])
    return out_n, out_tokens, out_frames, out_len, out_score, out_state
