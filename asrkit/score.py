"""Scoring: WER/CER with jiwer, per-utterance alignments, token edit distance, report tables."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jiwer
from rich.table import Table
from rich.text import Text

from asrkit.errors import InputError
from asrkit.jsonlines import json_object_with_id
from asrkit.text import normalize_text

# One aligned position: (op, ref token, hyp token); op is OK, SUB, DEL or INS, and the absent side is "".
Op = tuple[str, str, str]
_OPS = {"equal": "OK", "substitute": "SUB", "delete": "DEL", "insert": "INS"}


def read_transcripts(path: str | Path) -> dict[str, str]:
    """Read an `id<TAB>text` file (or `id text`; text may be empty), or a JSONL manifest's texts, into {id: text}."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a transcript file (id<TAB>text lines or a JSONL manifest)")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: transcript file not found") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read transcript file ({e.__class__.__name__}: {e})") from None
    try:
        text_all = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not UTF-8 text; a transcript file has id<TAB>text lines") from None
    if path.suffix == ".jsonl":
        return _read_jsonl_texts(path, text_all)
    lines = text_all.splitlines()
    out: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if "\t" in line:
            utt, text = line.split("\t", 1)
        else:  # no tab: `id` alone, or Kaldi-style `id text`
            parts = line.strip().split(None, 1)
            utt, text = parts[0], (parts[1] if len(parts) > 1 else "")
        utt = utt.strip()
        if not utt:
            raise InputError(f"{path}:{lineno}: line has no utterance id")
        if utt in out:
            raise InputError(f"{path}:{lineno}: duplicate utterance id {utt!r} (first on line {first_line[utt]})")
        out[utt] = text.strip()
        first_line[utt] = lineno
    return out


def _read_jsonl_texts(path: Path, text: str) -> dict[str, str]:
    """{id: text} from JSON lines: a manifest (its label, phonemes or text) or `asrkit decode --json` output."""
    out: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        d = json_object_with_id(line, where, "with 'id' and 'text'")
        utt = d["id"]
        ph = d.get("phonemes")
        if d.get("label") is not None:
            ref = d["label"]
        elif ph is not None:
            if not (isinstance(ph, list) and all(isinstance(x, str) for x in ph)):
                raise InputError(f"{where}: utterance {utt!r}: 'phonemes' must be a list of strings")
            ref = " ".join(ph)
        else:
            ref = d.get("text") or ""
        if not isinstance(ref, str):
            raise InputError(f"{where}: utterance {utt!r}: the text or label must be a string, got {ref!r:.60}")
        if utt in out:
            raise InputError(f"{where}: duplicate utterance id {utt!r} (first on line {first_line[utt]})")
        out[utt] = " ".join(ref.split())
        first_line[utt] = lineno
    return out


def _norm(text: str) -> str:
    """Strip and collapse runs of whitespace to one space."""
    return " ".join(text.split())


@dataclass
class UttScore:
    """Scores and word alignment of one utterance."""

    id: str
    ref: str
    hyp: str
    hits: int = 0
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    ref_words: int = 0
    char_errors: int = 0
    ref_chars: int = 0
    missing: bool = False
    ops: list[Op] = field(default_factory=list)

    @property
    def errors(self) -> int:
        """Word errors S+D+I."""
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        """Word error rate of this utterance (inf when the reference is empty and there are errors)."""
        return _rate(self.errors, self.ref_words)

    def alignment(self) -> str:
        """Three lines REF/HYP/ops (S, D, I under the word), with '*' filling the absent side."""
        refs, hyps, marks = [], [], []
        for op, r, h in self.ops:
            w = max(len(r), len(h), 1)
            refs.append((r or "*" * w).ljust(w))
            hyps.append((h or "*" * w).ljust(w))
            marks.append(("" if op == "OK" else op[0]).ljust(w))
        rows = (("REF: ", refs), ("HYP: ", hyps), ("     ", marks))
        return "\n".join((k + " ".join(v)).rstrip() for k, v in rows)


def _rate(errors: int, total: int) -> float:
    if total:
        return errors / total
    return 0.0 if errors == 0 else math.inf


@dataclass
class ScoreReport:
    """Corpus-level WER/CER with counts, id mismatches and per-utterance details."""

    wer: float
    cer: float
    substitutions: int
    deletions: int
    insertions: int
    hits: int
    ref_words: int
    char_substitutions: int
    char_deletions: int
    char_insertions: int
    char_hits: int
    ref_chars: int
    n_utterances: int
    sentence_errors: int
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    per_utterance: list[UttScore] = field(default_factory=list)
    # frame-labelling outputs (one character per frame, e.g. echo): position-wise accuracy, when every
    # hypothesis has its reference's length; edit-distance CER can understate such errors
    frame_accuracy: float | None = None

    @property
    def word_errors(self) -> int:
        """S+D+I at word level."""
        return self.substitutions + self.deletions + self.insertions

    @property
    def ser(self) -> float:
        """Sentence error rate: fraction of scored utterances with any word error."""
        return self.sentence_errors / self.n_utterances if self.n_utterances else 0.0

    @property
    def mean_edit_distance(self) -> float:
        """Mean Levenshtein distance per utterance over tokens (words; phonemes: the Kaggle HW3P2 metric)."""
        return self.word_errors / self.n_utterances if self.n_utterances else 0.0

    @property
    def accuracy(self) -> float:
        """Sentence accuracy: fraction of scored utterances whose hypothesis matches exactly (the label accuracy of a classifier)."""
        return (self.n_utterances - self.sentence_errors) / self.n_utterances if self.n_utterances else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; `wer`/`cer` are fractions (null if the reference is empty but errors exist)."""
        d = asdict(self)
        for k in ("wer", "cer"):
            d[k] = d[k] if math.isfinite(d[k]) else None
        d["ser"] = self.ser
        d["mean_edit_distance"] = self.mean_edit_distance
        d["accuracy"] = self.accuracy
        d["word_errors"] = self.word_errors
        for u, ud in zip(self.per_utterance, d["per_utterance"]):
            ud["ops"] = [list(o) for o in u.ops]
            ud["errors"] = u.errors
            ud["alignment"] = u.alignment()
        return d


def _chunks_to_ops(chunks: Sequence[Any], ref: Sequence[str], hyp: Sequence[str]) -> list[Op]:
    """Expand jiwer AlignmentChunks into one op per aligned position."""
    ops: list[Op] = []
    for c in chunks:
        op = _OPS[c.type]
        if op == "INS":
            ops += [("INS", "", hyp[j]) for j in range(c.hyp_start_idx, c.hyp_end_idx)]
        elif op == "DEL":
            ops += [("DEL", ref[i], "") for i in range(c.ref_start_idx, c.ref_end_idx)]
        else:
            ops += [
                (op, ref[i], hyp[j])
                for i, j in zip(range(c.ref_start_idx, c.ref_end_idx), range(c.hyp_start_idx, c.hyp_end_idx))
            ]
    return ops


def _align(refs: list[str], hyps: list[str], chars: bool) -> list[list[Op]]:
    """Per-pair alignment ops via jiwer; empty references (which jiwer may reject) are all insertions."""
    out: list[list[Op]] = [[("INS", "", t) for t in (h if chars else h.split())] for h in hyps]
    idx = [i for i, r in enumerate(refs) if r]
    if not idx:
        return out
    r_in, h_in = [refs[i] for i in idx], [hyps[i] for i in idx]
    res = jiwer.process_characters(r_in, h_in) if chars else jiwer.process_words(r_in, h_in)
    for k, i in enumerate(idx):
        out[i] = _chunks_to_ops(res.alignments[k], res.references[k], res.hypotheses[k])
    return out


def _count(ops: list[Op], op: str) -> int:
    return sum(1 for o in ops if o[0] == op)


def score(refs: dict[str, str], hyps: dict[str, str], frames: bool = False) -> ScoreReport:
    """Score hypotheses against references; missing hyps count as empty, extra hyps are listed only.

    `frames`: the texts are one label per frame (e.g. the echo task): also report the position-wise accuracy,
    which needs every hypothesis to have its reference's length.
    """
    ids = list(refs)
    missing = [u for u in ids if u not in hyps]
    extra = [u for u in hyps if u not in refs]
    r_txt = [_norm(refs[u]) for u in ids]
    h_txt = [_norm(hyps.get(u, "")) for u in ids]
    word_ops = _align(r_txt, h_txt, chars=False)
    char_ops = _align(r_txt, h_txt, chars=True)
    utts: list[UttScore] = []
    miss = set(missing)
    for u, r, h, wo, co in zip(ids, r_txt, h_txt, word_ops, char_ops):
        utts.append(
            UttScore(
                id=u,
                ref=r,
                hyp=h,
                hits=_count(wo, "OK"),
                substitutions=_count(wo, "SUB"),
                deletions=_count(wo, "DEL"),
                insertions=_count(wo, "INS"),
                ref_words=len(r.split()),
                char_errors=len(co) - _count(co, "OK"),
                ref_chars=len(r),
                missing=u in miss,
                ops=wo,
            )
        )
    flat_c = [o for co in char_ops for o in co]
    s, d, i = (sum(getattr(x, k) for x in utts) for k in ("substitutions", "deletions", "insertions"))
    cs, cd, ci = (_count(flat_c, k) for k in ("SUB", "DEL", "INS"))
    ref_words = sum(x.ref_words for x in utts)
    ref_chars = sum(x.ref_chars for x in utts)
    frame_acc = None
    if frames:
        for u, r, h in zip(ids, r_txt, h_txt):
            if len(r) != len(h):
                raise InputError(
                    f"--frames: utterance {u!r} has {len(h)} hypothesis labels for {len(r)} reference frames"
                )
        frame_acc = sum(a == b for r, h in zip(r_txt, h_txt) for a, b in zip(r, h)) / max(ref_chars, 1)
    return ScoreReport(
        wer=_rate(s + d + i, ref_words),
        cer=_rate(cs + cd + ci, ref_chars),
        substitutions=s,
        deletions=d,
        insertions=i,
        hits=sum(x.hits for x in utts),
        ref_words=ref_words,
        char_substitutions=cs,
        char_deletions=cd,
        char_insertions=ci,
        char_hits=_count(flat_c, "OK"),
        ref_chars=ref_chars,
        n_utterances=len(utts),
        sentence_errors=sum(1 for x in utts if x.errors),
        missing=missing,
        extra=extra,
        per_utterance=utts,
        frame_accuracy=frame_acc,
    )


def normalized(texts: dict[str, str]) -> dict[str, str]:
    """Each text lower-cased with punctuation dropped (`asrkit.text.normalize_text`, as prepare and lm build read text)."""
    return {k: normalize_text(v) for k, v in texts.items()}


def score_warnings(
    refs: dict[str, str], hyps: dict[str, str], report: ScoreReport, already_normalized: bool = False
) -> list[str]:
    """What a WER alone would hide: hypotheses that share no id with the reference, and texts that differ mostly in
    case or punctuation (the normalised WER at most half the raw one)."""
    out = []
    if hyps and not refs.keys() & hyps.keys():
        out.append(
            f"the hypotheses share no id with the reference (e.g. {next(iter(hyps))!r} against {next(iter(refs))!r}): "
            "every reference word is scored as deleted"
        )
    elif not already_normalized and report.wer > 0:
        alike = score(normalized(refs), normalized(hyps))
        if alike.wer <= report.wer / 2:
            out.append(
                f"references and hypotheses differ mostly in case or punctuation: WER {_pct(report.wer)} as written, "
                f"{_pct(alike.wer)} with both normalised (--normalize)"
            )
    return out


def edit_distance(ref: Sequence[Any], hyp: Sequence[Any]) -> int:
    """Levenshtein distance between two token sequences (unit costs for sub/del/ins)."""
    ref, hyp = list(ref), list(hyp)
    if len(ref) < len(hyp):
        ref, hyp = hyp, ref  # distance is symmetric; keep the row short
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%" if math.isfinite(x) else "inf"


def format_report(report: ScoreReport) -> Table:
    """The scores as a two-column rich table (measure, value), one measure per row: narrow enough for an 80-column
    terminal and for logs, where a one-row table of twelve columns had to cut its own numbers ("1.5…").

    For phoneme references (space-separated phonemes) WER is the PER and the mean distance is the Kaggle metric.
    """
    t = Table(title="Scores", show_edge=True)
    t.add_column("measure", no_wrap=True)
    t.add_column("value", justify="right", no_wrap=True)
    rows = [
        ("WER", _pct(report.wer)),
        ("CER", _pct(report.cer)),
        (
            "substitutions / deletions / insertions",
            f"{report.substitutions} / {report.deletions} / {report.insertions}",
        ),
        ("reference words", str(report.ref_words)),
        ("SER (utterances with an error)", _pct(report.ser)),
        ("accuracy (exact match)", _pct(report.accuracy)),
        ("mean edit distance per utterance", f"{report.mean_edit_distance:.3f}"),
        ("utterances", str(report.n_utterances)),
        ("missing hypotheses", str(len(report.missing))),
        ("extra hypotheses", str(len(report.extra))),
    ]
    if report.frame_accuracy is not None:
        rows.append(("frame accuracy (position by position)", _pct(report.frame_accuracy)))
    for row in rows:
        t.add_row(*row)
    return t


def compare_hypotheses(
    refs: dict[str, str], hyps: dict[str, dict[str, str]], normalize: bool = False
) -> list[tuple[str, ScoreReport, list[str]]]:
    """(name, report, `score_warnings`) per named hypothesis set, all against the same references."""
    if normalize:
        refs = normalized(refs)
    rows = []
    for name, h in hyps.items():
        h = normalized(h) if normalize else h
        rep = score(refs, h)
        rows.append((name, rep, score_warnings(refs, h, rep, already_normalized=normalize)))
    return rows


def format_comparison(rows: list[tuple[str, ScoreReport, list[str]]], title: str = "Scores") -> Table:
    """Several hypothesis sets side by side: WER, CER, errors and utterances, one row each (fits 80 columns)."""
    t = Table(title=title, show_edge=True)
    t.add_column("hypotheses", overflow="fold")
    for c in ("WER", "CER", "S / D / I", "utts"):
        t.add_column(c, justify="right", no_wrap=True)
    for name, r, _ in rows:
        t.add_row(
            name, _pct(r.wer), _pct(r.cer), f"{r.substitutions} / {r.deletions} / {r.insertions}", str(r.n_utterances)
        )
    return t


def listed(ids: list[str], shown: int = 5) -> str:
    """'a, b, c, d, e and 345 more': a few ids and how many are left out."""
    more = len(ids) - shown
    return ", ".join(ids[:shown]) + (f" and {more} more" if more > 0 else "")


def format_details(report: ScoreReport, limit: int = 10) -> Text:
    """The `limit` worst utterances (most word errors) with their REF/HYP alignment, as plain rich Text."""
    worst = sorted((u for u in report.per_utterance if u.errors), key=lambda u: (-u.errors, -u.wer, u.id))
    out = Text()
    for u in worst[: max(limit, 0)]:
        tag = " (missing hypothesis)" if u.missing else ""
        out.append(
            f"{u.id}{tag}: S={u.substitutions} D={u.deletions} I={u.insertions} WER={_pct(u.wer)}\n", style="bold"
        )
        out.append(u.alignment() + "\n\n")
    if not worst:
        out.append("no utterance has word errors\n")
    elif len(worst) > limit:
        out.append(f"... {len(worst) - max(limit, 0)} more utterances with errors\n", style="dim")
    return out
