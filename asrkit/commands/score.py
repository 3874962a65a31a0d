"""`asrkit score`: WER/CER of one hypothesis file against the references (with details, frame accuracy, a confusion
matrix), or several hypothesis files in one comparison table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console

from asrkit.confusion import write_confusion
from asrkit.errors import InputError
from asrkit.score import (
    compare_hypotheses,
    format_comparison,
    format_details,
    format_report,
    listed,
    normalized,
    read_transcripts,
    score,
    score_warnings,
)


def score_command(
    ref: Path,
    hyps: list[Path],
    as_json: bool = False,
    details: int = 0,
    frames: bool = False,
    normalize: bool = False,
    confusion: Path | None = None,
) -> None:
    """Score `hyps` against `ref` and print the report (or one JSON object per hypothesis file); warnings on stderr."""
    refs = read_transcripts(ref)
    if not refs:
        raise InputError(f"--ref {ref} holds no transcripts: nothing to score against")
    if len(hyps) > 1:
        if details or frames or confusion is not None:
            raise InputError("--details, --frames and --confusion score one --hyp; several make a comparison table")
        compare_command(ref, refs, hyps, as_json, normalize)
        return
    (hyp,) = hyps
    got = read_transcripts(hyp)
    if normalize:
        refs, got = normalized(refs), normalized(got)
    rep = score(refs, got, frames=frames)
    for warning in score_warnings(refs, got, rep, already_normalized=normalize):
        print(f"warning: {warning}", file=sys.stderr)
    if confusion is not None:
        write_confusion(refs, got, confusion)
        print(f"confusion matrix: {confusion}", file=sys.stderr)
    if as_json:
        print(json.dumps(rep.to_dict()))
        return
    con = Console()
    con.print(format_report(rep))
    if rep.missing:
        con.print(
            f"[yellow]{len(rep.missing)} reference id(s) have no hypothesis (scored as deletions): {listed(rep.missing)}"
        )
    if rep.extra:
        con.print(
            f"[yellow]{len(rep.extra)} hypothesis id(s) are not in the reference (not scored): {listed(rep.extra)}"
        )
    if details:
        con.print(format_details(rep, details))


def compare_command(ref: Path, refs: dict[str, str], hyps: list[Path], as_json: bool, normalize: bool) -> None:
    """Several hypothesis files scored against one reference: one table, or one JSON object each."""
    rows = compare_hypotheses(refs, {str(h): read_transcripts(h) for h in hyps}, normalize=normalize)
    for name, _, warnings in rows:
        for warning in warnings:
            print(f"warning: {name}: {warning}", file=sys.stderr)
    if as_json:
        for name, rep, _ in rows:
            print(json.dumps({"hyp": name, **rep.to_dict()}))
        return
    Console().print(format_comparison(rows, title=f"Scores against {ref}"))
