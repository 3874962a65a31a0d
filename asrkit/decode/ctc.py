"""CTC decoding basics: hypotheses, lexicons (as automata for the beam search), greedy, sequence scores."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from asrkit.align.inputs import as_log_probs
from asrkit.decode.beam_kernel import greedy_path, sequence_logprob
from asrkit.errors import InputError
from asrkit.text import normalize_text

NEG_INF = float("-inf")

__all__ = [
    "Hypothesis",
    "Lexicon",
    "lexicon_from_words",
    "greedy_decode",
    "ctc_sequence_logprob",
]


class Hypothesis:
    """One decoded label sequence with its log score and per-token emission frames (+ word times in seconds).

    It unpacks as `(tokens, score)`, so an n-best list reads `for ids, score in hyps`. `tokens` and
    `timesteps` may be given as integer arrays: they become lists on first use, so an n-best list
    whose lower entries are never read costs no list building.
    """

    __slots__ = ("_tokens", "text", "score", "_timesteps", "words", "token_spans")

    def __init__(
        self, tokens: Sequence[int], text: str = "", score: float = 0.0, timesteps: Sequence[int] | None = None
    ):
        self._tokens = tokens
        self.text = text
        self.score = score
        self._timesteps = [] if timesteps is None else timesteps
        self.words: list = []  # Span(word, start s, end s, conf), filled when timestamps are asked for
        self.token_spans: list = []  # Span per token, likewise

    @property
    def tokens(self) -> list[int]:
        if not isinstance(self._tokens, list):
            self._tokens = np.asarray(self._tokens).tolist()
        return self._tokens

    @tokens.setter
    def tokens(self, value: Sequence[int]) -> None:
        self._tokens = value

    @property
    def timesteps(self) -> list[int]:
        if not isinstance(self._timesteps, list):
            self._timesteps = np.asarray(self._timesteps).tolist()
        return self._timesteps

    @timesteps.setter
    def timesteps(self, value: Sequence[int]) -> None:
        self._timesteps = value

    def __iter__(self):
        return iter((self.tokens, self.score))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Hypothesis):
            return NotImplemented
        return (self.tokens, self.text, self.score, self.timesteps) == (
            other.tokens,
            other.text,
            other.score,
            other.timesteps,
        )

    def __repr__(self) -> str:
        return f"Hypothesis(tokens={self.tokens}, text={self.text!r}, score={self.score}, timesteps={self.timesteps})"


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

    def automaton(self, vocab: int) -> tuple[np.ndarray, np.ndarray]:
        """The lexicon as a finite automaton over `vocab` tokens: (trans, accept).

        States are the partial words (0: none yet); `trans[s, c]` is the next state or -1 when
        token c cannot follow, and `accept[s]` says a prefix may end there (nothing started, or
        a complete last word). The compiled beam search walks it to stay inside the lexicon.
        """
        cached = getattr(self, "_fsa", None)
        if cached is not None and cached[0].shape[1] == vocab:
            return cached
        if any(k >= vocab or k < 0 for w in self.words for k in w) or self.space >= vocab:
            raise InputError(f"the lexicon uses token ids outside the vocabulary of size {vocab}")
        ids = {p: i for i, p in enumerate(sorted(self.prefixes, key=lambda p: (len(p), p)))}
        trans = np.full((len(ids), vocab), -1, np.int32)
        accept = np.zeros(len(ids), np.bool_)
        for p, i in ids.items():
            if p:
                trans[ids[p[:-1]], p[-1]] = i
            if p in self.words:
                accept[i] = True
                if self.space >= 0:
                    trans[i, self.space] = 0
        accept[0] = True
        self._fsa = (trans, accept)
        return self._fsa

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
    """A Lexicon from written words for a character tokenizer (`.index`: char -> id, `.space`: the separator).

    Each entry is normalised like the transcripts (`normalize_text`) and split on whitespace;
    words with a character the tokenizer lacks are skipped. InputError if no word is left.
    """
    index = tokenizer.index
    space = -1 if tokenizer.space is None else tokenizer.space
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


def kernel_input(log_probs: Any, ndim: int = 2, keep_float64: bool = False) -> np.ndarray:
    """Log-probs in the library's convention (`asrkit.align.inputs.as_log_probs`: a tensor or a NumPy array, any
    strides) as the C-contiguous NumPy array the compiled kernels read: float32, or float64 where the input is
    and `keep_float64`."""
    t = as_log_probs(log_probs, (ndim,))
    dtype = torch.float64 if keep_float64 and t.dtype == torch.float64 else torch.float32
    return t.to("cpu", dtype).contiguous().numpy()


def _check_blank(blank: int, vocab: int) -> None:
    """Raise if the blank index is outside the vocabulary."""
    if not 0 <= blank < vocab:
        raise InputError(f"blank index {blank} is outside the vocabulary of size {vocab}")


def greedy_decode(log_probs: Any, blank: int = 0) -> Hypothesis:
    """Best path: per-frame argmax, collapse repeats, drop blanks; score = the path log-prob."""
    lp = kernel_input(log_probs, 2, keep_float64=True)
    T, V = lp.shape
    _check_blank(blank, V)
    tokens = np.zeros(max(T, 1), np.int32)
    frames = np.zeros(max(T, 1), np.int32)
    score = np.zeros(1, np.float64)
    n = greedy_path(lp, T, blank, tokens, frames, score)
    return Hypothesis(tokens=tokens[:n].tolist(), score=float(score[0]), timesteps=frames[:n].tolist())


def ctc_sequence_logprob(log_probs: Any, tokens: list[int], blank: int = 0) -> float:
    """Total CTC log-probability of a label sequence (forward algorithm over all its alignments)."""
    lp = kernel_input(log_probs, 2, keep_float64=True)
    T, V = lp.shape
    _check_blank(blank, V)
    ext = np.full(2 * len(tokens) + 1, blank, np.int64)
    ext[1::2] = np.asarray(tokens, np.int64).reshape(-1)
    if ((ext < 0) | (ext >= V)).any():
        raise InputError(f"token ids must lie in [0, {V}), got {list(tokens)}")
    return float(sequence_logprob(lp, ext, blank))
