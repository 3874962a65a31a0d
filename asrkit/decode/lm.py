"""Word-LM CTC decoding: pyctcdecode's beam search with a KenLM model (ARPA or binary), hotwords, n-best, batches."""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asrkit.config import DecodeOptions
from asrkit.decode.ctc import Hypothesis, kernel_input
from asrkit.errors import InputError
from asrkit.text import BLANK, normalize_text

__all__ = ["LMDecoder", "LMResult", "arpa_unigrams"]

SPECIAL_WORDS = frozenset({"<s>", "</s>", "<unk>"})
_noted: set[str] = set()  # LM paths whose missing word list was already reported on stderr


@dataclass(frozen=True)
class LMResult:
    """One n-best entry: the hypothesis, its acoustic-only score, and its words as (word, first frame, frame after its last)."""

    hypothesis: Hypothesis
    logit_score: float
    words: list[tuple[str, int, int]]


def arpa_unigrams(path: str | Path) -> set[str]:
    """The words of an ARPA file's 1-gram section, without <s>, </s> and <unk>."""
    words: set[str] = set()
    inside = False
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if line == "\\1-grams:":
                inside = True
            elif line.startswith("\\") and inside:
                break
            elif inside and line:
                # "logprob word [backoff]": the backoff is absent in an order-1 model
                parts = line.split()
                if len(parts) >= 2 and parts[1] not in SPECIAL_WORDS:
                    words.add(parts[1])
    return words


def _is_arpa(path: Path) -> bool:
    """Whether a file is ARPA text (its first non-blank line is \\data\\), told by content, not by suffix."""
    with open(path, "rb") as f:
        head = f.read(4096)
    return head.lstrip().startswith(b"\\data\\")


def _word_list(path: Path) -> list[str]:
    """The words of a one-word-per-line file; empty if it is an asrkit character vocabulary."""
    words = path.read_text(encoding="utf-8", errors="replace").split()
    if BLANK in words or "<space>" in words:  # data/<recipe>/vocab.txt lists characters, not words
        return []
    return words


def _binary_unigrams(path: Path) -> tuple[set[str] | None, str]:
    """Unigrams for a KenLM binary from a file beside it: <stem>.arpa, <stem>.unigrams.txt, vocab.txt."""
    for side in (path.with_suffix(".arpa"), path.with_name(path.stem + ".unigrams.txt"), path.with_name("vocab.txt")):
        if side.is_file() and os.access(side, os.R_OK):
            words = (arpa_unigrams(side) if _is_arpa(side) else set(_word_list(side))) - SPECIAL_WORDS
            if words:
                return words, str(side)
    return None, ""


@contextmanager
def _quiet_build() -> Iterator[None]:
    """Silence pyctcdecode's logging warnings and KenLM's progress bar on stderr (file descriptor 2)."""
    log = logging.getLogger("pyctcdecode")
    level = log.level
    log.setLevel(logging.ERROR)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        log.setLevel(level)


def _labels(tokenizer: Any, blank: int) -> tuple[list[str], dict[str, int]]:
    """pyctcdecode labels (blank -> "", space -> " ", else the character) and the character -> id index."""
    kind = getattr(tokenizer, "kind", "char")
    if kind != "char":
        raise InputError(f"--lm needs a character model; this checkpoint was trained on {kind} targets")
    symbols = list(getattr(tokenizer, "symbols", tokenizer))
    blank = getattr(tokenizer, "blank", blank)
    if not isinstance(blank, int) or not 0 <= blank < len(symbols):
        raise InputError(f"blank index {blank} is outside the vocabulary of size {len(symbols)}")
    labels = []
    for i, s in enumerate(symbols):
        if i == blank:
            labels.append("")
        elif len(s) != 1:
            raise InputError(f"--lm needs a character model; symbol {s!r} is not a single character")
        else:
            labels.append(s)
    return labels, {s: i for i, s in enumerate(labels) if i != blank}


def _as_float32(log_probs: Any, vocab: int) -> np.ndarray:
    """A C-contiguous float32 (T, vocab) array from a NumPy array or torch tensor."""
    shape = f"(T, {vocab})"
    arr = kernel_input(log_probs, 2)
    if arr.shape[1] != vocab:
        raise InputError(f"expected log-probabilities of shape {shape}, got shape {arr.shape}")
    return arr


class LMDecoder:
    """CTC beam search with a word n-gram LM (shallow fusion: acoustic + alpha * LM + beta * words), via pyctcdecode.

    >>> dec = LMDecoder(tokenizer, "lm.arpa", alpha=0.5, beta=1.0)
    >>> dec.decode(log_probs)[0].text
    'the cat'
    """

    def __init__(
        self,
        tokenizer: Any,
        lm: str | Path | None,
        alpha: float = 0.5,
        beta: float = 1.0,
        hotwords: Sequence[str] | None = None,
        hotword_weight: float = 10.0,
        beam_size: int = DecodeOptions.beam,
        blank: int = 0,
    ):
        if beam_size < 1:
            raise InputError(f"beam_size must be at least 1, got {beam_size}")
        self.labels, self._index = _labels(tokenizer, blank)
        self.blank = self.labels.index("")
        self.space = self._index.get(" ", -1)
        self.beam_size = int(beam_size)
        self.alpha, self.beta = float(alpha), float(beta)
        self.hotwords = [w for w in (normalize_text(h) for h in hotwords or []) if w] or None
        self.hotword_weight = float(hotword_weight)
        self.unigrams: set[str] | None = None
        self.lm_path = None if lm is None else Path(lm)
        if self.lm_path is not None:
            self.unigrams = self._read_unigrams(self.lm_path)
            words = {w for w in self.unigrams or () if w not in ("<s>", "</s>", "<unk>")}
            if words and not any(set(w) <= self._index.keys() for w in words):
                chars = "".join(sorted(self._index)).strip()
                hint = ""
                if any(set(normalize_text(w)) <= self._index.keys() for w in words):  # upper case or punctuation
                    hint = " (its words are upper-case or carry punctuation: `asrkit lm build` normalises a corpus as decode does)"
                raise InputError(
                    f"language model {self.lm_path}: none of its {len(words)} words can be spelled with the model's characters {chars!r}; it was built for another vocabulary{hint}"
                )
        from pyctcdecode import build_ctcdecoder  # lazy: pyctcdecode and kenlm load only when a run decodes with an LM

        try:
            with _quiet_build():
                self._decoder = build_ctcdecoder(
                    self.labels,
                    None if self.lm_path is None else str(self.lm_path),
                    unigrams=self.unigrams,
                    alpha=self.alpha,
                    beta=self.beta,
                )
        except (OSError, ValueError, UnicodeDecodeError) as e:
            if "at least a bigram" in str(e):
                raise InputError(
                    f"language model {self.lm_path} is a unigram model; KenLM needs order 2 or more"
                ) from None
            raise InputError(
                f"cannot read the language model {self.lm_path}: it is neither an ARPA nor a KenLM binary file"
            ) from None

    @staticmethod
    def _read_unigrams(path: Path) -> set[str] | None:
        """The LM's words: from the ARPA itself, or for a binary from a file beside it (None: none found)."""
        if not path.is_file() or not os.access(path, os.R_OK):
            raise InputError(f"language model {path} not found or not readable")
        if _is_arpa(path):
            words = arpa_unigrams(path)
            if not words:
                raise InputError(f"language model {path} has no words in its 1-gram section")
            return words
        words, _ = _binary_unigrams(path)
        if words is None and str(path) not in _noted:
            _noted.add(str(path))
            print(
                f"note: no word list beside {path} ({path.stem}.arpa, {path.stem}.unigrams.txt or vocab.txt); "
                "decoding without one, so partial words are not checked against the LM's vocabulary",
                file=sys.stderr,
            )
        return words

    def _search_options(self) -> dict:
        return {"beam_width": self.beam_size, "hotwords": self.hotwords, "hotword_weight": self.hotword_weight}

    def decode(self, log_probs: Any) -> list[Hypothesis]:
        """The n-best hypotheses (best first) for one (T, V) matrix of CTC log-probabilities."""
        return [r.hypothesis for r in self.decode_with_words(log_probs)]

    def decode_with_words(self, log_probs: Any) -> list[LMResult]:
        """The n-best (best first) with each entry's acoustic-only score and word frames."""
        lp = _as_float32(log_probs, len(self.labels))
        if lp.shape[0] == 0:
            return [LMResult(Hypothesis([], "", 0.0, []), 0.0, [])]
        # pyctcdecode log-softmaxes its input, which leaves log-probabilities as they are
        beams = self._decoder.decode_beams(lp, **self._search_options())
        return [self._result(lp, text, frames, logit, combined) for text, _, frames, logit, combined in beams]

    def decode_batch(self, log_probs: Sequence[Any], workers: int = 0) -> list[list[Hypothesis]]:
        """The n-best lists of many utterances; workers > 1 decodes in a pool of forked processes."""
        return [[r.hypothesis for r in rs] for rs in self.decode_batch_with_words(log_probs, workers)]

    def decode_batch_with_words(self, log_probs: Sequence[Any], workers: int = 0) -> list[list[LMResult]]:
        """`decode_with_words` for many utterances; workers > 1 decodes in a pool of forked processes."""
        if workers < 0:
            raise InputError(f"workers must be 0 or more, got {workers}")
        lps = [_as_float32(x, len(self.labels)) for x in log_probs]
        todo = [i for i, lp in enumerate(lps) if lp.shape[0] > 0]
        workers = min(workers, len(todo))
        if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
            return [self.decode_with_words(lp) for lp in lps]
        # the KenLM model lives in a class attribute of pyctcdecode's decoder, so only forked children inherit it
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            beams = self._decoder.decode_beams_batch(pool, [lps[i] for i in todo], **self._search_options())
        out = [[LMResult(Hypothesis([], "", 0.0, []), 0.0, [])] for _ in lps]
        for i, bs in zip(todo, beams):
            out[i] = [self._result(lps[i], text, frames, logit, combined) for text, frames, logit, combined in bs]
        return out

    def _result(self, lp: np.ndarray, text: str, frames: list, logit: float, combined: float) -> LMResult:
        """An LMResult from one pyctcdecode beam: the text's token ids and the frame each token fires at."""
        words = [(w, int(s), int(e)) for w, (s, e) in frames]
        tokens, steps = self._tokens_and_frames(lp, words)
        return LMResult(Hypothesis(tokens, text, float(combined), steps), float(logit), words)

    def _tokens_and_frames(self, lp: np.ndarray, words: list[tuple[str, int, int]]) -> tuple[list[int], list[int]]:
        """Token ids of the words joined by spaces, and for each token an emission frame.

        pyctcdecode gives each word's span [start, end): its first character fires at `start`, its last one
        before `end`. Inside the span each later character takes its most likely frame after the previous
        one's (leaving room for the rest); a space takes its most likely frame between the two words.
        """
        T = lp.shape[0]
        tokens: list[int] = []
        steps: list[int] = []
        prev_end = 0
        for n, (word, start, end) in enumerate(words):
            if n and self.space >= 0:
                tokens.append(self.space)
                steps.append(_best_frame(lp, self.space, prev_end, max(start, prev_end + 1)))
            t = start
            for j, ch in enumerate(word):
                k = self._index[ch]
                if j:
                    t = _best_frame(lp, k, t + 1, end - (len(word) - 1 - j))
                tokens.append(k)
                steps.append(min(t, T - 1))
            prev_end = end
        return tokens, steps

    def __del__(self) -> None:
        # pyctcdecode keeps every decoder's LM in a class-level dict until told to drop it
        decoder = getattr(self, "_decoder", None)
        if decoder is not None:
            decoder.cleanup()


def _best_frame(lp: np.ndarray, k: int, lo: int, hi: int) -> int:
    """The frame in [lo, hi) where token k is most likely (lo itself when the range is empty)."""
    hi = min(hi, lp.shape[0])
    return lo + int(np.argmax(lp[lo:hi, k])) if hi > lo else lo
