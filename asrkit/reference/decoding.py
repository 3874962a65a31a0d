"""CTC decoding in plain NumPy, in probability space, as the course defines it.

`GreedySearchDecoder` follows section 5.1 of the HW3P1 handout; `BeamSearchDecoder` follows section 5.2 (Figure 19
and the lecture's pseudo-code it illustrates) and the toy example of section 6.3 (Table 6, Figure 20).
`PrefixBeamSearchDecoder` is a different search, kept for comparison: it ranks outputs by their merged totals,
the lecture's search ranks blank-ending and symbol-ending paths separately; at small widths they can disagree.

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


class _BeamDecoder:
    """The course's decoder interface: `decode(y_probs)` → (best path, {path: probability}); a subclass's `_one` scores
    the paths of one (symbols + 1, T) matrix."""

    def __init__(self, symbol_set: Sequence[str], beam_width: int):
        self.symbol_set = list(symbol_set)
        self.beam_width = int(beam_width)

    def decode(self, y_probs: np.ndarray) -> tuple[str | list[str], dict | list[dict]]:
        """(best path, path scores {path: probability}: the merged final paths); lists of both for a batch of more than one."""
        y = _check(y_probs, len(self.symbol_set))
        best, scores = [], []
        for b in range(y.shape[2]):
            merged = self._one(y[:, :, b])
            best.append(max(merged, key=merged.get, default=""))
            scores.append(merged)
        return (best[0], scores[0]) if len(best) == 1 else (best, scores)

    def _one(self, p: np.ndarray) -> dict[str, float]:
        raise NotImplementedError


class BeamSearchDecoder(_BeamDecoder):
    """The lecture's CTC beam search (handout section 5.2, Figure 19).

    Two path sets are kept: paths ending in a blank and paths ending in a symbol, each with its own score (the summed
    probability of the alignments that reach it). Before each frame after the first, the union of the two sets is
    pruned to the paths scoring at least the `beam_width`-th best score of the union (so paths tied with that score
    all stay, as in the lecture's cutoff rule); a path and its twin in the other set compete separately. The kept
    paths are then extended with the blank and with every symbol. After the last frame the two sets, unpruned, are
    merged: a path present in both gets the sum of its two scores.
    """

    def _prune(self, blank: dict, symbol: dict) -> tuple[dict, dict]:
        """Keep, in both sets, the paths whose score reaches the beam_width-th best score of the union."""
        ranked = sorted([*blank.values(), *symbol.values()], reverse=True)
        if not ranked:
            return blank, symbol
        cutoff = ranked[min(self.beam_width, len(ranked)) - 1]
        # a zero-probability path can never win; keeping zeros tied at a zero cutoff would let the beam grow unbounded
        return (
            {p: v for p, v in blank.items() if v >= cutoff and v > 0},
            {p: v for p, v in symbol.items() if v >= cutoff and v > 0},
        )

    def _one(self, p: np.ndarray) -> dict[str, float]:
        """Merged final path scores for one (symbols + 1, T) probability matrix."""
        # paths are tuples of symbol indices (1-based); before the first frame only the empty path, "ending in blank"
        blank: dict[tuple[int, ...], float] = {(): 1.0}
        symbol: dict[tuple[int, ...], float] = {}
        for t in range(p.shape[1]):
            if t > 0:
                blank, symbol = self._prune(blank, symbol)
            new_blank: dict[tuple[int, ...], float] = {}
            new_symbol: dict[tuple[int, ...], float] = {}
            for path, score in blank.items():
                new_blank[path] = new_blank.get(path, 0.0) + score * p[0, t]
                for k in range(1, p.shape[0]):
                    # after a blank, any symbol (the last one too) starts a new output symbol
                    new_symbol[path + (k,)] = new_symbol.get(path + (k,), 0.0) + score * p[k, t]
            for path, score in symbol.items():
                new_blank[path] = new_blank.get(path, 0.0) + score * p[0, t]
                for k in range(1, p.shape[0]):
                    # the same symbol again, with no blank between, continues the last output symbol
                    nxt = path if k == path[-1] else path + (k,)
                    new_symbol[nxt] = new_symbol.get(nxt, 0.0) + score * p[k, t]
            blank, symbol = new_blank, new_symbol
        merged: dict[str, float] = {}
        for paths in (symbol, blank):
            for path, score in paths.items():
                key = "".join(self.symbol_set[k - 1] for k in path)
                merged[key] = merged.get(key, 0.0) + score
        return merged


class PrefixBeamSearchDecoder(_BeamDecoder):
    """Merged-prefix beam search (not the handout's algorithm): after each frame keep the `beam_width` collapsed outputs of highest total
    probability, each output's probability summed over all the alignments that reduce to it (split into
    alignments ending in a blank and ending in a symbol, which extend differently on a repeat)."""

    def _one(self, p: np.ndarray) -> dict[str, float]:
        """Merged scores of the final beam for one (symbols + 1, T) probability matrix."""
        beams: dict[tuple[int, ...], tuple[float, float]] = {
            (): (1.0, 0.0)
        }  # prefix -> (P ends in blank, P ends in symbol)
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
