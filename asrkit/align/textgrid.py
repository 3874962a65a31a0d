"""Praat TextGrid files (long text format) with interval tiers; gaps between spans become empty intervals."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from asrkit.align.timing import Span
from asrkit.fsutil import atomic_write_text

Interval = tuple[float, float, str]


def _num(x: float) -> str:
    """A time as Praat writes it: no trailing zeros, microsecond precision."""
    s = f"{x:.6f}".rstrip("0").rstrip(".")
    return "0" if s in ("", "-0") else s


def _quote(text: str) -> str:
    """A Praat string literal: double quotes inside are doubled."""
    return '"' + text.replace('"', '""') + '"'


def fill_tier(spans: Sequence[Span], xmax: float, xmin: float = 0.0) -> list[Interval]:
    """Contiguous intervals covering [xmin, xmax]: the spans (clipped, in time order) with empty intervals between them."""
    out: list[Interval] = []
    cur = round(xmin, 6)
    end = round(xmax, 6)
    for sp in sorted(spans, key=lambda s: s.start):
        a, b = max(round(sp.start, 6), cur), min(round(sp.end, 6), end)
        if b <= a:
            continue
        if a > cur:
            out.append((cur, a, ""))
        out.append((a, b, sp.label))
        cur = b
    if cur < end or not out:
        out.append((cur, end, ""))
    return out


def textgrid_text(tiers: Sequence[tuple[str, Sequence[Interval]]], xmax: float, xmin: float = 0.0) -> str:
    """The long text format of a TextGrid with the given interval tiers (name, intervals)."""
    lines = [
        'File type = "ooTextFile"',
        'Object class = "TextGrid"',
        "",
        f"xmin = {_num(xmin)} ",
        f"xmax = {_num(xmax)} ",
        "tiers? <exists> ",
        f"size = {len(tiers)} ",
        "item []: ",
    ]
    for i, (name, intervals) in enumerate(tiers, 1):
        lines += [
            f"    item [{i}]:",
            '        class = "IntervalTier" ',
            f"        name = {_quote(name)} ",
            f"        xmin = {_num(xmin)} ",
            f"        xmax = {_num(xmax)} ",
            f"        intervals: size = {len(intervals)} ",
        ]
        for j, (a, b, text) in enumerate(intervals, 1):
            lines += [
                f"        intervals [{j}]:",
                f"            xmin = {_num(a)} ",
                f"            xmax = {_num(b)} ",
                f"            text = {_quote(text)} ",
            ]
    return "\n".join(lines) + "\n"


def write_textgrid(
    path: str | Path, duration: float, tokens: Sequence[Span], words: Sequence[Span] | None = None
) -> None:
    """Write <path> atomically: tier "words" (when given) above tier "tokens", each spanning [0, duration]."""
    tiers: list[tuple[str, list[Interval]]] = []
    if words is not None:
        tiers.append(("words", fill_tier(words, duration)))
    tiers.append(("tokens", fill_tier(tokens, duration)))
    atomic_write_text(path, textgrid_text(tiers, duration))
