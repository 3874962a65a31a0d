"""CTC decoding in plain NumPy, in probability space, as the course defines it.

Inputs are `y_probs` of shape (len(symbol_set) + 1, T, batch): per frame a probability distribution over
the blank (row 0) and the symbols. A decoded path is the string of its symbols after repeats are
collapsed and blanks removed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _check(y_probs: np.ndarray, n_symbols: int) -> np.ndarray:
    y = np.asarray(y_probs, dtype=np.float64)
    if y.ndim != 3 or y.shape[0] != n_symbols + 1:
        raise ValueError(f"y_probs must have shape ({n_symbols + 1}, T, batch), got {y.shape}")
    return y


class GreedySearchDecoder:
    """Best path: the most probable symbol of each frame, then repeats collapsed and blanks dropped."""

    def __init__(self, symbol_set: Sequence[str]):
        self.symbol_set = list(symbol_set)

    def decode(self, y_probs: np.ndarray) -> tuple[str | list[str], float | list[float]]:
        """(decoded path, its probability); lists of both when the batch holds more than one sequence."""
        y = _check(y_probs, len(self.symbol_set))
        paths, probs = [], []
        for b in range(y.shape[2]):
            best = y[:, :, b].argmax(axis=0)
            probs.append(float(np.prod(y[best, np.arange(y.shape[1]), b])))
            out, prev = [], 0
            for k in best:
                if k != 0 and k != prev:
                    out.append(self.symbol_set[k - 1])
                prev = k
            paths.append("".join(out))
        return (paths[0], probs[0]) if len(paths) == 1 else (paths, probs)


class BeamSearchDecoder:
    """Prefix beam search: after each frame keep the `beam_width` collapsed outputs of highest total
    probability, each output's probability summed over all the alignments that reduce to it (split into
    alignments ending in a blank and ending in a symbol, which extend differently on a repeat)."""

    def __init__(self, symbol_set: Sequence[str], beam_width: int):
        self.symbol_set = list(symbol_set)
        self.beam_width = int(beam_width)

    def decode(self, y_probs: np.ndarray) -> tuple[str | list[str], dict | list[dict]]:
        """(best path, merged path scores {path: probability} of the final beam); lists for a batch."""
        y = _check(y_probs, len(self.symbol_set))
        best, scores = [], []
        for b in range(y.shape[2]):
            merged = self._one(y[:, :, b])
            best.append(max(merged, key=merged.get))
            scores.append(merged)
        return (best[0], scores[0]) if len(best) == 1 else (best, scores)

    def _one(self, p: np.ndarray) -> dict[str, float]:
        """Merged scores of the final beam for one (symbols + 1, T) probability matrix."""
        beams: dict[tuple[int, ...], tuple[float, float]] = {(): (1.0, 0.0)}  # prefix -> (P ends in blank, P ends in symbol)
        for t in range(p.shape[1]):
            nxt: dict[tuple[int, ...], list[float]] = {}
            for prefix, (pb, ps) in beams.items():
                # a blank: the output stays the same
                e = nxt.setdefault(prefix, [0.0, 0.0])
                e[0] += (pb + ps) * p[0, t]
                for k in range(1, p.shape[0]):
                    if prefix and k == prefix[-1]:
                        # the same symbol again: continues the last one, unless a blank came between
                        e[1] += ps * p[k, t]
                        nxt.setdefault(prefix + (k,), [0.0, 0.0])[1] += pb * p[k, t]
                    else:
                        nxt.setdefault(prefix + (k,), [0.0, 0.0])[1] += (pb + ps) * p[k, t]
            kept = sorted(nxt.items(), key=lambda kv: kv[1][0] + kv[1][1], reverse=True)[: self.beam_width]
            beams = {k: (v[0], v[1]) for k, v in kept if v[0] + v[1] > 0}
        return {"".join(self.symbol_set[k - 1] for k in prefix): pb + ps for prefix, (pb, ps) in beams.items()}
