"""Word n-gram language models in ARPA format, interpolated modified Kneser-Ney (Chen & Goodman), as KenLM's lmplz.

Counts: the highest order uses raw counts; lower orders use continuation counts (the number of distinct words seen
before the n-gram), except n-grams that start with `<s>`, which keep their raw counts. Discounts D1, D2, D3+ per order
come from the counts of counts; when a corpus is too small for them (a count of counts is zero, or a discount falls
outside its range) the order falls back to 0.5, 1.0, 1.5, as `lmplz --discount_fallback` does. Unigrams are
interpolated with the uniform distribution over the vocabulary (with `<unk>`, without `<s>`). Each n-gram's
probability is the interpolated one and its backoff weight is the interpolation weight of the n-gram as a context.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

from asrkit.data.manifest import iter_manifest
from asrkit.errors import InputError
from asrkit.fsutil import atomic_write_text
from asrkit.text import normalize_text

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
FALLBACK = (0.5, 1.0, 1.5)
Gram = tuple[str, ...]


def discounts(counts: Iterable[int]) -> tuple[float, float, float]:
    """D1, D2, D3+ from the counts of counts (Chen & Goodman); the fallback when the data cannot give them."""
    t = Counter(c for c in counts if c <= 4)
    t1, t2, t3, t4 = (t[k] for k in (1, 2, 3, 4))
    if not (t1 and t2 and t3 and t4):
        return FALLBACK
    y = t1 / (t1 + 2 * t2)
    d = (1 - 2 * y * t2 / t1, 2 - 3 * y * t3 / t2, 3 - 4 * y * t4 / t3)
    if not (0 < d[0] < 1 and 0 < d[1] < 2 and 0 < d[2] < 3):
        return FALLBACK
    return d


def _discount(c: int, d: tuple[float, float, float]) -> float:
    return d[min(c, 3) - 1]


def build_arpa(sentences: Iterable[str], order: int = 3) -> tuple[str, dict]:
    """An ARPA text for the sentences (one per item, words split on white space) and a summary."""
    if order < 1:
        raise InputError(f"--order must be >= 1, got {order}")
    raw: list[Counter] = [Counter() for _ in range(order + 1)]  # raw[n][gram]
    n_sent = 0
    for s in sentences:
        words = s.split()
        if not words:
            continue
        for w in words:
            if w in (BOS, EOS, UNK):
                raise InputError(f"the corpus uses the reserved word {w!r}")
        toks = [BOS, *words, EOS]
        n_sent += 1
        for n in range(1, order + 1):
            for i in range(len(toks) - n + 1):
                raw[n][tuple(toks[i : i + n])] += 1
    if not n_sent:
        raise InputError("the corpus holds no words")
    asked = order
    order = max(n for n in range(1, order + 1) if raw[n])  # its longest sentence (with <s> and </s>) bounds the order
    raw = raw[: order + 1]
    # adjusted counts: raw at the highest order and for n-grams starting with <s>; else distinct left extensions
    adj: list[dict[Gram, int]] = [{} for _ in range(order + 1)]
    adj[order] = dict(raw[order])
    for n in range(order - 1, 0, -1):
        left: Counter = Counter()
        for g in raw[n + 1]:
            left[g[1:]] += 1
        adj[n] = {g: (c if g[0] == BOS else left[g]) for g, c in raw[n].items()}
    adj[1].pop((BOS,), None)  # <s> is never predicted
    disc = [FALLBACK] + [discounts(adj[n].values()) for n in range(1, order + 1)]

    # per context: total adjusted count and how many continuations have count 1, 2, 3+
    totals: list[dict[Gram, int]] = [defaultdict(int) for _ in range(order + 1)]
    kinds: list[dict[Gram, list[int]]] = [defaultdict(lambda: [0, 0, 0]) for _ in range(order + 1)]
    for n in range(1, order + 1):
        for g, c in adj[n].items():
            totals[n][g[:-1]] += c
            kinds[n][g[:-1]][min(c, 3) - 1] += 1

    def gamma(n: int, h: Gram) -> float:
        d, k = disc[n], kinds[n][h]
        return (d[0] * k[0] + d[1] * k[1] + d[2] * k[2]) / totals[n][h]

    vocab = sorted({g[0] for g in adj[1]} | {UNK})
    prob: list[dict[Gram, float]] = [{} for _ in range(order + 1)]
    uniform = 1 / len(vocab)
    g0 = gamma(1, ())
    for w in vocab:
        c = adj[1].get((w,), 0)
        prob[1][(w,)] = (max(c - _discount(c, disc[1]), 0) if c else 0) / totals[1][()] + g0 * uniform
    for n in range(2, order + 1):
        for g, c in adj[n].items():
            h = g[:-1]
            prob[n][g] = (c - _discount(c, disc[n])) / totals[n][h] + gamma(n, h) * prob[n - 1][g[1:]]
    backoff: list[dict[Gram, float]] = [{} for _ in range(order + 1)]
    for n in range(1, order):
        for h in totals[n + 1]:
            backoff[n][h] = gamma(n + 1, h)

    lines = ["\\data\\"]
    grams = [sorted(prob[1]) + [(BOS,)]] + [sorted(prob[n]) for n in range(2, order + 1)]
    for n, gs in enumerate(grams, 1):
        lines.append(f"ngram {n}={len(gs)}")
    for n, gs in enumerate(grams, 1):
        lines += ["", f"\\{n}-grams:"]
        for g in gs:
            lp = -99.0 if g == (BOS,) else math.log10(prob[n][g])
            row = f"{lp:.7g}\t{' '.join(g)}"
            if n < order:
                bo = backoff[n].get(g)
                row += f"\t{math.log10(bo):.7g}" if bo else "\t0"
            lines.append(row)
    lines += ["", "\\end\\", ""]
    summary = {
        "sentences": n_sent,
        "order": order,
        "order_asked": asked,
        "vocabulary": len(vocab),
        "ngrams": [len(g) for g in grams],
        "discounts": [list(d) for d in disc[1:]],
    }
    return "\n".join(lines), summary


def build_lm(corpus: str | Path, output: str | Path, order: int = 3, normalize: bool = True) -> dict:
    """Read a text corpus (one sentence per line; a JSONL manifest's texts) and write the ARPA model to `output`.

    `normalize`: each sentence as `prepare`, `score --normalize`, lexicons and hotwords see text (`normalize_text`:
    lower case, punctuation dropped), so that "Hello, World." and "hello world" are the same two words."""
    p = Path(corpus)
    if not p.is_file():
        raise InputError(f"corpus {p} not found")
    if p.suffix == ".jsonl":
        sentences = [u.text or "" for u in iter_manifest(p, resolve=False)]
    else:
        try:
            sentences = p.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise InputError(f"corpus {p} is not UTF-8 text") from None
    text, summary = build_arpa([normalize_text(x) for x in sentences] if normalize else sentences, order)
    atomic_write_text(output, text)
    return summary
