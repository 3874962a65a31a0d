"""CTC decoding: greedy (best path) and prefix beam search in log space."""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from asrkit.errors import InputError

NEG_INF = float("-inf")

__all__ = [
    "Hypothesis",
    "Lexicon",
    "lexicon_from_words",
    "greedy_decode",
    "prefix_beam_search",
    "ctc_decode",
    "batch_decode",
    "ctc_sequence_logprob",
]


@dataclass
class Hypothesis:
    """One decoded label sequence with its log score and per-token emission frames."""

    tokens: list[int]
    text: str = ""
    score: float = 0.0
    timesteps: list[int] = field(default_factory=list)


class Lexicon:
    """A closed vocabulary for the beam search: words as token-id sequences, words split by `space`.

    `words` holds the complete words (tuples of token ids), `prefixes` every proper and full prefix
    of a word, the empty tuple included. `space` is the word-separator token id (-1: none, so an
    output is at most one word). Empty words are ignored; a word containing `space` is an error.
    """

    def __init__(self, words: Iterable[Sequence[int]], space: int):
        self.space = int(space)
        self.words: set[tuple[int, ...]] = set()
        self.prefixes: set[tuple[int, ...]] = {()}
        for w in words:
            w = tuple(int(k) for k in w)
            if not w:
                continue
            if self.space in w:
                raise InputError(f"lexicon word {w} contains the space token {self.space}")
            self.words.add(w)
            for i in range(1, len(w) + 1):
                self.prefixes.add(w[:i])
        # partial word -> the tokens that may follow it (its letters; the space once it is a word),
        # so the search filters a prefix's candidates with one dict and one set lookup per token
        nxt: dict[tuple[int, ...], set[int]] = {p: set() for p in self.prefixes}
        for p in self.prefixes:
            if p:
                nxt[p[:-1]].add(p[-1])
        for w in self.words:
            nxt[w].add(self.space)
        self.next_tokens: dict[tuple[int, ...], frozenset[int]] = {p: frozenset(v) for p, v in nxt.items()}

    def __len__(self) -> int:
        return len(self.words)

    def __repr__(self) -> str:
        return f"Lexicon({len(self.words)} words, space={self.space})"

    def is_valid(self, prefix: Sequence[int]) -> bool:
        """Whether a collapsed, blank-free label sequence can still grow into lexicon words."""
        partial: list[int] = []
        for k in prefix:
            if k == self.space:
                if tuple(partial) not in self.words:  # also rejects a leading or a double space
                    return False
                partial = []
            else:
                partial.append(k)
        return tuple(partial) in self.prefixes

    def is_complete(self, prefix: Sequence[int]) -> bool:
        """Whether a label sequence is a finished output: valid, and its last word (if any) complete."""
        if not self.is_valid(prefix):
            return False
        last = _partial_word(tuple(prefix), self.space)
        return not last or last in self.words


def _partial_word(prefix: tuple[int, ...], space: int) -> tuple[int, ...]:
    """The tokens after the last space (all of them when there is none)."""
    for i in range(len(prefix) - 1, -1, -1):
        if prefix[i] == space:
            return prefix[i + 1 :]
    return prefix


def lexicon_from_words(words: Iterable[str], tokenizer: Any) -> Lexicon:
    """A Lexicon from written words for a character tokenizer (`.index`: char -> id, `" "`: space).

    Each entry is normalised like the transcripts (`normalize_text`) and split on whitespace;
    words with a character the tokenizer lacks are skipped. InputError if no word is left.
    """
    from asrkit.text import normalize_text

    index = tokenizer.index
    space = index.get(" ", -1)
    seqs: set[tuple[int, ...]] = set()
    skipped = 0
    for entry in words:
        for w in normalize_text(entry).split():
            if all(ch in index for ch in w):
                seqs.add(tuple(index[ch] for ch in w))
            else:
                skipped += 1
    if not seqs:
        detail = f" ({skipped} word(s) use characters outside the model's vocabulary)" if skipped else ""
        raise InputError(f"the lexicon has no usable words{detail}")
    return Lexicon(seqs, space)


def _as_2d(log_probs: Any) -> np.ndarray:
    """Convert a (T, V) array or torch tensor of log-probabilities to a NumPy array."""
    if hasattr(log_probs, "detach"):
        log_probs = log_probs.detach().cpu().numpy()
    arr = np.asarray(log_probs)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    if arr.ndim != 2:
        raise InputError(f"expected log-probabilities of shape (T, V), got shape {arr.shape}")
    return arr


def _check_blank(blank: int, vocab: int) -> None:
    """Raise if the blank index is outside the vocabulary."""
    if not 0 <= blank < vocab:
        raise InputError(f"blank index {blank} is outside the vocabulary of size {vocab}")


def _logaddexp(a: float, b: float) -> float:
    """log(exp(a) + exp(b)) for Python floats, safe with -inf."""
    if a < b:
        a, b = b, a
    if b == NEG_INF:
        return a
    return a + math.log1p(math.exp(b - a))


def greedy_decode(log_probs: Any, blank: int = 0) -> Hypothesis:
    """Best path: per-frame argmax, collapse repeats, drop blanks; score = the path log-prob."""
    lp = _as_2d(log_probs)
    T, V = lp.shape
    _check_blank(blank, V)
    if T == 0:
        return Hypothesis(tokens=[], score=0.0, timesteps=[])
    best = lp.argmax(axis=1)
    score = float(lp[np.arange(T), best].astype(np.float64).sum())
    tokens: list[int] = []
    timesteps: list[int] = []
    prev = blank
    for t, k in enumerate(best.tolist()):
        if k != blank and k != prev:
            tokens.append(k)
            timesteps.append(t)
        prev = k
    return Hypothesis(tokens=tokens, score=score, timesteps=timesteps)


def ctc_sequence_logprob(log_probs: Any, tokens: list[int], blank: int = 0) -> float:
    """Total CTC log-probability of a label sequence (forward algorithm over all its alignments)."""
    lp = _as_2d(log_probs)
    T, V = lp.shape
    _check_blank(blank, V)
    if T == 0:
        return 0.0 if not tokens else NEG_INF
    ext = [blank]
    for k in tokens:
        ext += [int(k), blank]
    S = len(ext)
    rows = lp.tolist()
    alpha = [NEG_INF] * S
    alpha[0] = rows[0][ext[0]]
    if S > 1:
        alpha[1] = rows[0][ext[1]]
    for t in range(1, T):
        row = rows[t]
        new = [NEG_INF] * S
        for s in range(S):
            a = alpha[s]
            if s >= 1:
                a = _logaddexp(a, alpha[s - 1])
            if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                a = _logaddexp(a, alpha[s - 2])
            new[s] = a + row[ext[s]] if a != NEG_INF else NEG_INF
        alpha = new
    return _logaddexp(alpha[-1], alpha[-2]) if S > 1 else alpha[-1]


def prefix_beam_search(
    log_probs: Any,
    beam: int = 10,
    blank: int = 0,
    token_min_logp: float = -12.0,
    prune_beam: float | None = None,
    lexicon: Lexicon | None = None,
) -> list[Hypothesis]:
    """CTC prefix beam search: up to `beam` hypotheses, best first (beam 1: greedy).

    With a `lexicon`, only prefixes made of lexicon words survive: a new prefix is created only if
    each word it finishes (with a space) is a lexicon word, it has no leading or double space, and
    its trailing partial word is a prefix of a lexicon word. The answer keeps the hypotheses whose
    last word is complete (or empty); if none is, each hypothesis loses its unfinished last word, so
    the answer never holds a word outside the lexicon. Greedy decoding cannot honour a lexicon, so beam <= 1 with a lexicon
    runs the beam search with beam = 2.
    """
    lp = _as_2d(log_probs)
    T, V = lp.shape
    _check_blank(blank, V)
    if beam <= 1 and lexicon is not None:
        beam = 2
    if beam <= 1:
        # A one-prefix beam search is not best-path decoding; keep the greedy tokens as promised,
        # scored with their merged (all-alignment) probability like every beam hypothesis.
        hyp = greedy_decode(lp, blank)
        hyp.score = ctc_sequence_logprob(lp, hyp.tokens, blank)
        return [hyp]

    rows = lp.tolist()
    # per frame, the token ids best first (one vectorised sort per utterance)
    orders = np.argsort(-lp, axis=1, kind="stable").tolist()
    # prefix -> [log p_blank, log p_nonblank]; prefix -> frames where its tokens were appended
    beams: dict[tuple[int, ...], list[float]] = {(): [0.0, NEG_INF]}
    stamps: dict[tuple[int, ...], tuple[int, ...]] = {(): ()}
    scores: dict[tuple[int, ...], float] = {(): 0.0}
    lae = _logaddexp
    heappush, heapreplace = heapq.heappush, heapq.heapreplace
    if lexicon is not None:
        # prefix -> its trailing partial word (tokens after the last space); every beam prefix is valid
        partials: dict[tuple[int, ...], tuple[int, ...]] = {(): ()}
        next_tokens = lexicon.next_tokens
        space = lexicon.space

    for t in range(T):
        row = rows[t]
        lp_blank = row[blank]
        # candidate tokens for this frame, best first; the frame's best token is always kept
        # (the blank is always considered, through the prefixes that stay the same)
        cands = []
        for c in orders[t]:
            v = row[c]
            if v < token_min_logp:
                break
            if c != blank:
                cands.append((c, v))
        if not cands:
            top = next((c for c in orders[t] if c != blank), None)
            if top is not None and row[top] > lp_blank:
                cands = [(top, row[top])]
        cand_lp = dict(cands)

        nxt: dict[tuple[int, ...], list[float]] = {}
        nstamps: dict[tuple[int, ...], tuple[int, ...]] = {}
        contrib: dict[tuple[int, ...], float] = {}  # largest single contribution, picks the stamps

        # 1) prefixes that stay the same: blank after anything, or a repeat of the last token
        for prefix, (_, pnb) in beams.items():
            ptot = scores[prefix]
            n_pb = ptot + lp_blank
            n_pnb = pnb + row[prefix[-1]] if prefix else NEG_INF
            nxt[prefix] = [n_pb, n_pnb]
            nstamps[prefix] = stamps[prefix]
            contrib[prefix] = n_pb if n_pb > n_pnb else n_pnb

        # 2) extensions that land on a prefix already in the beam: merge their mass
        children: dict[tuple[int, ...], set[int]] = {}
        for q in beams:
            if not q or q[:-1] not in beams:
                continue
            parent, c = q[:-1], q[-1]
            children.setdefault(parent, set()).add(c)
            v = cand_lp.get(c)
            if v is None:
                continue
            pb = beams[parent][0]
            base = pb if parent and c == parent[-1] else scores[parent]  # a repeat needs a blank
            if base == NEG_INF:
                continue
            s = base + v
            entry = nxt[q]
            entry[1] = lae(entry[1], s)
            if s > contrib[q]:
                contrib[q] = s
                nstamps[q] = stamps[parent] + (t,)

        # the old prefixes' scores are now final; the beam-th best of them bounds from below the
        # beam-th best score of this frame (and the best one bounds the prune_beam floor), so a
        # brand-new prefix below that bound can never survive step 4 and is not even created
        tot = {p: lae(b, nb) for p, (b, nb) in nxt.items()}
        heap = sorted(tot.values(), reverse=True)[:beam]
        best = heap[0]
        heap.reverse()  # ascending: a valid min-heap
        lower = heap[0] if len(heap) >= beam else NEG_INF
        if prune_beam is not None:
            lower = max(lower, best - prune_beam)

        # 3) extensions to new prefixes (each has a single parent, so its score is final at once)
        for prefix, (pb, _) in beams.items():
            ptot = scores[prefix]
            last = prefix[-1] if prefix else -1
            pstamps = stamps[prefix]
            kids = children.get(prefix)
            pcands = cands
            if lexicon is not None:
                # the tokens that keep this prefix valid (the order, best first, is kept)
                ok = next_tokens[partials[prefix]]
                pcands = [cv for cv in cands if cv[0] in ok]
            for c, v in pcands:
                if kids and c in kids:
                    continue
                if c == last:
                    if pb == NEG_INF:
                        continue
                    s = pb + v
                    if s < lower:
                        continue
                else:
                    s = ptot + v
                    if s < lower:
                        break  # candidates are sorted: every later one is lower too
                newp = prefix + (c,)
                nxt[newp] = [NEG_INF, s]
                nstamps[newp] = pstamps + (t,)
                tot[newp] = s
                if len(heap) < beam:
                    heappush(heap, s)
                    if len(heap) == beam:
                        lower = heap[0]
                elif s > heap[0]:
                    heapreplace(heap, s)
                    lower = heap[0]
                if prune_beam is not None:
                    if s > best:
                        best = s
                    if best - prune_beam > lower:
                        lower = best - prune_beam

        # 4) keep the best `beam` prefixes (optionally dropping those far below the best)
        keep = sorted(tot, key=tot.__getitem__, reverse=True)[:beam]
        if prune_beam is not None and keep:
            floor = tot[keep[0]] - prune_beam
            keep = [p for p in keep if tot[p] >= floor]
        beams = {p: nxt[p] for p in keep}
        stamps = {p: nstamps[p] for p in keep}
        scores = {p: tot[p] for p in keep}
        if lexicon is not None:
            # a new prefix extends an old one by one token: derive its partial word from its parent's
            partials = {
                p: partials[p] if p in partials else (() if p[-1] == space else partials[p[:-1]] + (p[-1],))
                for p in keep
            }

    final = list(beams)  # already sorted best first
    if lexicon is not None:
        words = lexicon.words
        done = [p for p in final if not partials[p] or partials[p] in words]
        if not done:
            # no hypothesis ends on a whole word: drop each one's unfinished last word (and the space
            # before it), so that the answer still holds only lexicon words; duplicates keep the best
            out: dict[tuple[int, ...], Hypothesis] = {}
            for p in final:
                n = len(p) - len(partials[p])
                q = p[: n - 1] if n > 0 and p[n - 1] == space else p[:n]
                if q not in out:
                    out[q] = Hypothesis(tokens=list(q), score=scores[p], timesteps=list(stamps[p][: len(q)]))
            return list(out.values())
        final = done
    return [Hypothesis(tokens=list(p), score=scores[p], timesteps=list(stamps[p])) for p in final]


def ctc_decode(log_probs: Any, beam: int = 1, blank: int = 0, **kw: Any) -> list[Hypothesis]:
    """Greedy decoding when beam <= 1, else prefix beam search; returns hypotheses best first.

    With a `lexicon` (passed on to `prefix_beam_search`) there is no greedy shortcut: beam <= 1
    runs the beam search with beam 2.
    """
    if beam <= 1 and kw.get("lexicon") is None:
        return [greedy_decode(log_probs, blank)]
    return prefix_beam_search(log_probs, beam=beam, blank=blank, **kw)


def batch_decode(
    log_probs_batch: Any,
    lengths: Any = None,
    beam: int = 1,
    blank: int = 0,
    **kw: Any,
) -> list[Hypothesis]:
    """Best hypothesis per utterance of an (N, T, V) batch cut to its length (text left empty)."""
    if hasattr(log_probs_batch, "detach"):
        log_probs_batch = log_probs_batch.detach().cpu().numpy()
    batch = np.asarray(log_probs_batch)
    if batch.ndim != 3:
        raise InputError(f"expected a batch of shape (N, T, V), got shape {batch.shape}")
    N, T, _ = batch.shape
    if lengths is None:
        lens = [T] * N
    else:
        if hasattr(lengths, "detach"):
            lengths = lengths.detach().cpu().numpy()
        lens = [int(x) for x in np.asarray(lengths).reshape(-1).tolist()]
        if len(lens) != N:
            raise InputError(f"got {len(lens)} lengths for a batch of {N} utterances")
        if any(n < 0 or n > T for n in lens):
            raise InputError(f"lengths must lie in [0, {T}], got {lens}")
    return [ctc_decode(batch[i, : lens[i]], beam=beam, blank=blank, **kw)[0] for i in range(N)]
