"""From a model's outputs to hypotheses, per head type: the CTC search (`Decoder`: beam or greedy, inside a lexicon or
fused with a word LM, n-best with text, token and word times), a classifier's ranked labels, a frame model's labels.

The Python API (`asrkit.api.Recognizer`), `asrkit decode` and the stream's final transcript all run these, so their
transcripts are the same.

>>> dec = Decoder(model.tokenizer, model.frame_shift, DecodeOptions(lexicon="words.txt"))  # doctest: +SKIP
>>> best = dec.decode(model.log_probs([feats]), with_times=True)[0][0]            # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asrkit.align.timing import timestamps
from asrkit.config import DecodeOptions
from asrkit.decode.beam import prefix_beam_search_batch
from asrkit.decode.ctc import Hypothesis, Lexicon
from asrkit.decode.lexicon import load_lexicon
from asrkit.decode.lm import LMDecoder
from asrkit.errors import InputError

__all__ = ["DecodeOptions", "Decoder", "check_lm_file", "frame_labels", "rank_labels"]


def check_lm_file(lm: str | Path | None) -> None:
    """One-line refusal of an LM file that is not there."""
    if lm is not None and not Path(lm).is_file():
        raise InputError(f"language model {lm} not found")


class Decoder:
    """The CTC search for one tokenizer: log-probabilities → n-best lists (best first, with text), and with `with_times`
    the best hypothesis's token and word spans in seconds. LMs and lexicons are built once and kept.

    The options given here are checked, and their LM or lexicon built, at once: a bad one is refused before any audio
    is read. `decode` takes other options per call (the Python API's keywords).
    """

    def __init__(self, tokenizer: Any, frame_shift: float, options: DecodeOptions | None = None):
        self.tokenizer = tokenizer
        self.frame_shift = frame_shift
        self.options = (options or DecodeOptions()).check()
        self._lm_cache: dict[tuple, LMDecoder] = {}
        self._lexicon_cache: dict[str, Lexicon] = {}
        self._prepare(self.options)

    def _prepare(self, o: DecodeOptions) -> None:
        if o.lm is not None:
            self._lm(o)
        else:
            self._lexicon(o.lexicon)

    def decode(
        self, log_probs: Sequence[torch.Tensor], with_times: bool = False, options: DecodeOptions | None = None
    ) -> list[list[Hypothesis]]:
        """Per input (T, V) log-probabilities, the n-best list; `with_times` sets the best one's `token_spans` and `words`."""
        o = self.options if options is None else options.check()
        lps = list(log_probs)
        if not lps:
            return []
        tok = self.tokenizer
        if o.lm is not None:  # the LM's hypotheses come with their text
            nbests = self._lm(o).decode_batch([lp.numpy() for lp in lps], o.workers)
        else:
            nbests = self._beam(lps, o.beam, self._lexicon(o.lexicon))
            for hyps in nbests:
                for h in hyps:
                    h.text = tok.decode(h.tokens).strip()
        if with_times:
            space = tok.space
            for lp, hyps in zip(lps, nbests):
                best = hyps[0]
                best.token_spans, best.words = timestamps(
                    lp, best.tokens, tok.symbols, tok.blank, self.frame_shift, space, best.timesteps
                )
        return nbests

    def _beam(self, lps: list[torch.Tensor], beam: int, lex: Lexicon | None) -> list[list[Hypothesis]]:
        V = lps[0].shape[1]
        lengths = np.array([lp.shape[0] for lp in lps], np.int64)
        padded = np.zeros((len(lps), int(lengths.max()), V), np.float32)
        for i, lp in enumerate(lps):
            padded[i, : lp.shape[0]] = lp.numpy()
        # greedy decoding cannot honour a lexicon: beam 1 searches with beam 2 then
        return prefix_beam_search_batch(
            padded, lengths, max(beam, 2) if lex is not None else beam, self.tokenizer.blank, lexicon=lex
        )

    def _lexicon(self, lexicon: str | Path | Lexicon | None) -> Lexicon | None:
        if lexicon is None or isinstance(lexicon, Lexicon):
            return lexicon
        key = str(lexicon)
        if key not in self._lexicon_cache:
            self._lexicon_cache[key] = load_lexicon(lexicon, self.tokenizer)
        return self._lexicon_cache[key]

    def _lm(self, o: DecodeOptions) -> LMDecoder:
        key = (str(o.lm), o.alpha, o.beta, o.beam, tuple(o.hotwords or ()), o.hotword_weight)
        if key not in self._lm_cache:
            check_lm_file(o.lm)
            tok = self.tokenizer
            self._lm_cache[key] = LMDecoder(
                tok, o.lm, o.alpha, o.beta, list(o.hotwords or ()) or None, o.hotword_weight, o.beam, tok.blank
            )
        return self._lm_cache[key]


def rank_labels(model: Any, feats: Sequence[torch.Tensor], top: int) -> list[list[tuple[str, float]]]:
    """A classifier's `top` (label, log-probability) pairs per input, best first, for normalised features (one batch)."""
    symbols = model.tokenizer.symbols
    out = []
    for lp in model.classify(list(feats)):
        order = lp.argsort(descending=True)[: max(1, top)].tolist()
        out.append([(symbols[k], float(lp[k])) for k in order])
    return out


def frame_labels(tokenizer: Any, log_probs: Sequence[torch.Tensor]) -> list[list[Hypothesis]]:
    """A frame model's reading: per input, one hypothesis of the arg-max label of each frame."""
    nbests = []
    for lp in log_probs:
        best = lp.argmax(-1)
        ids = best.tolist()
        nbests.append(
            [Hypothesis(ids, tokenizer.decode(ids), float(lp.gather(-1, best[:, None]).sum()), list(range(len(ids))))]
        )
    return nbests
