"""Rough edges of the outputs: the confusion matrix of open-vocabulary output, the space token's label in the alignment
heatmaps, and the progress bar's rate and silence when stderr is not a terminal."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest

import asrkit.progress as progress
from asrkit.align import plots
from asrkit.align.core import extend_with_blanks
from asrkit.align.utt import UttAlignment
from asrkit.confusion import class_order, classes_of, confusion_matrix, write_confusion
from asrkit.text import CharTokenizer
from conftest import ROOT

DIGITS = "zero one two three four five six seven eight nine".split()

# ---------------------------------------------------------------- confusion matrix


def test_confusion_of_open_vocabulary_output(tmp_path):
    """Misspelled and empty hypotheses land in one "other" column, never in rows of their own."""
    refs = {f"{w}_{i}": w for w in ("four", "one", "nine", "zero") for i in range(3)}
    hyps = dict(refs)
    hyps |= {"four_1": "feue", "four_2": "fo", "one_2": "", "nine_0": "one", "zero_2": "zerro"}
    del hyps["nine_2"]  # no hypothesis: left out, as before
    png = tmp_path / "cm.png"
    m, labels = write_confusion(refs, hyps, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert labels == ["zero", "one", "four", "nine"]  # natural order, not alphabetical
    assert m.shape == (4, 5)  # rows: the classes; columns: the classes, then "other"
    assert m.tolist() == [
        # zero one four nine other
        [2, 0, 0, 0, 1],  # zero: zero_2 → "zerro"
        [0, 2, 0, 0, 1],  # one: one_2 → ""
        [0, 0, 1, 0, 2],  # four: "feue", "fo"
        [0, 1, 0, 1, 0],  # nine: nine_0 → "one"; nine_2 has no hypothesis
    ]
    assert np.diag(m[:, :4]).tolist() == [2, 2, 1, 1]  # the diagonal is the correct answers
    assert m.sum() == len(hyps)


def test_class_order():
    assert class_order(reversed(DIGITS)) == DIGITS
    assert class_order(["10", "9", "1", "2"]) == ["1", "2", "9", "10"]
    assert class_order(["yes", "two", "_silence_", "no", "one"]) == ["one", "two", "_silence_", "no", "yes"]
    assert classes_of({"a": "no", "b": "yes", "c": "no"}) == ["no", "yes"]


def test_other_column_of_a_class_called_other():
    m = confusion_matrix({"a": "other", "b": "cat"}, {"a": "dog", "b": "other"}, ["cat", "other"])
    assert m.tolist() == [[0, 1, 0], [0, 0, 1]]


# ---------------------------------------------------------------- alignment heatmaps


def _utterance(text: str) -> UttAlignment:
    tok = CharTokenizer.build([text])
    ids = tok.encode(text)
    states, _ = extend_with_blanks(ids, tok.blank)
    labels = [tok.label(int(s)) for s in states]
    n = len(labels)
    post = np.full((2 * n, n), 1.0 / n, dtype=np.float32)
    return UttAlignment("u1", ids, labels, post, np.arange(2 * n) // 2, 0.02, -1.0, text)


def test_space_label_cannot_pass_for_a_letter(tmp_path, monkeypatch):
    ua = _utterance("four five")
    assert "␣" in ua.state_labels  # what the tokenizer prints; the plots must not show it
    drawn = []
    monkeypatch.setattr(plots, "_save", lambda fig, path, dpi=100: drawn.append(fig))
    plots.plot_utterance(tmp_path / "u.png", ua)
    plots.plot_comparison(tmp_path / "c.png", [("a", ua), ("b", ua)])
    axes = [ax for fig in drawn for ax in fig.axes if ax.get_images()]  # the heatmaps, not their colour bars
    assert len(axes) == 4  # two panels of the utterance, one per model of the comparison
    for ax in axes:
        shown = [t.get_text() for t in ax.get_yticklabels()]
        assert not any("␣" in s for s in shown)
        assert shown == ["f", "o", "u", "r", "sp", "f", "i", "v", "e"]
        assert "sp" not in set("four five")  # the space label is none of the letters
    assert plots.tick_labels(["∅", "sp", "∅", "␣"]) == ["∅", "sp", "∅", "<sp>"]  # never the same as a token


# ---------------------------------------------------------------- progress bar


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TtyStderr(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_rate_is_completed_over_elapsed(monkeypatch):
    """A burst of completions after a long wait shows the average rate, not rich's per-update speed."""
    clock = FakeClock()
    monkeypatch.setattr(
        progress, "monotonic", clock, raising=False
    )  # a module without this clock must fail on the rate, not here
    monkeypatch.setattr(sys, "stderr", TtyStderr())
    with progress.Progress() as prog:
        task = prog.add("decode", total=200, unit="utt")
        clock.now += 0.5
        prog.advance(task, 10)
        assert prog._p.tasks[task].fields["rate"] == ""  # under a second: no rate yet
        clock.now += 4.5  # 5 s since the start
        for _ in range(190):
            prog.advance(task)
        fields = prog._p.tasks[task].fields
        assert fields["rate"] == "40.0 utt/s"
        assert fields["left"] == "0:00:00"
        assert prog.rate(task) == pytest.approx(40.0)


def test_nothing_but_log_lines_when_stderr_is_not_a_terminal(capsys):
    with progress.Progress() as prog:
        task = prog.add("decode", total=3, unit="utt")
        prog.advance(task)
        prog.log("skipped a [1]")
        prog.advance(task, 2)
        prog.log("done")
    assert capsys.readouterr() == ("", "skipped a [1]\ndone\n")
    with progress.Progress(quiet=True) as prog:
        prog.log("hidden")
    assert capsys.readouterr() == ("", "")


def test_piped_stderr_gets_only_the_log_lines():
    script = (
        "from asrkit.progress import Progress\n"
        "with Progress() as p:\n"
        "    t = p.add('decode', total=2, unit='utt')\n"
        "    p.advance(t); p.log('one'); p.advance(t)\n"
        "    p.log('two')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout, proc.stderr) == ("", "one\ntwo\n")


def test_work_done_before_a_resume_is_shown_but_not_counted_in_the_rate(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(progress, "monotonic", clock, raising=False)
    monkeypatch.setattr(sys, "stderr", TtyStderr())
    with progress.Progress() as prog:
        task = prog.add("epoch 3/14", total=1000, unit="audio-s", completed=600)  # a run resumed mid-epoch
        assert prog._p.tasks[task].completed == 600
        clock.now += 2.0
        prog.advance(task, 100)
        assert prog.rate(task) == pytest.approx(50.0)  # 100 audio-s in 2 s, not 700
        assert prog._p.tasks[task].fields["left"] == "0:00:06"
