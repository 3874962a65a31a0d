"""Tests for asrkit.score: transcripts reader, WER/CER report, alignments, edit distance."""

from __future__ import annotations

import io
import json
import math
import random

import jiwer
import pytest
from rich.console import Console

from asrkit.errors import InputError
from conftest import run_cli
from asrkit.score import _pct, edit_distance, format_details, format_report, read_transcripts, score


def _write(tmp_path, text, name="t.txt"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# ---- read_transcripts -------------------------------------------------------------------------


def test_read_basic_empty_text_and_blank_lines(tmp_path):
    p = _write(tmp_path, "a\thello world\n\nb\t\nc\n   \nd\t  spaced  out \n")
    assert read_transcripts(p) == {"a": "hello world", "b": "", "c": "", "d": "spaced  out"}


def test_read_kaldi_style_space_separated(tmp_path):
    p = _write(tmp_path, "u1 the cat\nu2\n")
    assert read_transcripts(str(p)) == {"u1": "the cat", "u2": ""}


def test_read_duplicate_id_names_file_and_line(tmp_path):
    p = _write(tmp_path, "a\tx\nb\ty\n\na\tz\n")
    with pytest.raises(InputError) as e:
        read_transcripts(p)
    msg = str(e.value)
    assert f"{p}:4" in msg and "'a'" in msg and "line 1" in msg and "\n" not in msg


def test_read_missing_id_line(tmp_path):
    p = _write(tmp_path, "a\tx\n\tno id here\n")
    with pytest.raises(InputError, match=r":2: line has no utterance id"):
        read_transcripts(p)


def test_read_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_transcripts(tmp_path / "nope.txt")


# ---- score ------------------------------------------------------------------------------------


def test_known_example_sub_and_del():
    r = score({"u": "one two three four"}, {"u": "one too three"})
    assert (r.substitutions, r.deletions, r.insertions, r.hits) == (1, 1, 0, 2)
    assert r.ref_words == 4 and r.wer == pytest.approx(0.5)
    u = r.per_utterance[0]
    assert u.ops == [("OK", "one", "one"), ("SUB", "two", "too"), ("OK", "three", "three"), ("DEL", "four", "")]
    lines = u.alignment().splitlines()
    assert lines[0].split() == ["REF:", "one", "two", "three", "four"]
    assert lines[1].split() == ["HYP:", "one", "too", "three", "****"]
    assert lines[2].split() == ["S", "D"]
    assert lines[2].index("S") == lines[0].index("two") and lines[2].index("D") == lines[0].index("four")


def test_insertion_and_corpus_totals():
    refs = {"a": "the cat sat", "b": "hello"}
    hyps = {"a": "the cat sat down", "b": "hello"}
    r = score(refs, hyps)
    assert (r.substitutions, r.deletions, r.insertions) == (0, 0, 1)
    assert r.wer == pytest.approx(1 / 4)
    assert r.sentence_errors == 1 and r.n_utterances == 2 and r.ser == pytest.approx(0.5)
    assert r.per_utterance[0].ops[-1] == ("INS", "", "down")


def test_cer_known_pair_counts_spaces():
    # "ab cd" -> "ab ce": 1 substitution over 5 chars (space counted)
    r = score({"u": "ab cd"}, {"u": "ab ce"})
    assert r.ref_chars == 5 and r.char_substitutions == 1 and r.cer == pytest.approx(0.2)
    # deleting the space: "abcd" vs "ab cd" -> 1 deletion
    r = score({"u": "ab cd"}, {"u": "abcd"})
    assert (r.char_substitutions, r.char_deletions, r.char_insertions) == (0, 1, 0)
    assert r.wer == pytest.approx(1.0)  # 1 sub + 1 del over 2 words


def test_whitespace_is_normalised():
    r = score({"u": "  ab   cd "}, {"u": "ab cd"})
    assert r.wer == 0 and r.cer == 0 and r.ref_chars == 5


def test_matches_jiwer_on_corpus():
    refs = {"1": "a b c d e", "2": "the quick brown fox", "3": "x"}
    hyps = {"1": "a c d f e g", "2": "quick brown box", "3": "y z"}
    r = score(refs, hyps)
    assert r.wer == pytest.approx(jiwer.wer(list(refs.values()), list(hyps.values())))
    assert r.cer == pytest.approx(jiwer.cer(list(refs.values()), list(hyps.values())))


def test_missing_and_extra_ids():
    refs = {"a": "one two", "b": "three four five", "c": "six"}
    hyps = {"a": "one two", "c": "six", "z": "bogus words"}
    r = score(refs, hyps)
    assert r.missing == ["b"] and r.extra == ["z"]
    assert r.n_utterances == 3  # missing one scored, extra one not
    assert (r.deletions, r.substitutions, r.insertions) == (3, 0, 0)
    assert r.wer == pytest.approx(3 / 6)
    ub = next(u for u in r.per_utterance if u.id == "b")
    assert ub.missing and ub.hyp == "" and ub.deletions == 3
    assert all(u.id != "z" for u in r.per_utterance)


def test_empty_references():
    r = score({"a": "", "b": "hi"}, {"a": "", "b": "hi"})
    assert r.wer == 0 and r.cer == 0 and r.sentence_errors == 0
    r = score({"a": "", "b": "hi"}, {"a": "x y", "b": "hi"})
    assert r.insertions == 2 and r.wer == pytest.approx(2.0)
    assert r.char_insertions == 3 and r.cer == pytest.approx(3 / 2)
    assert r.per_utterance[0].ops == [("INS", "", "x"), ("INS", "", "y")]


def test_all_references_empty_with_errors_is_inf_and_json_null():
    r = score({"a": ""}, {"a": "x"})
    assert math.isinf(r.wer)
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["wer"] is None and d["insertions"] == 1
    assert score({}, {}).wer == 0.0


def test_to_dict_json_round_trip():
    r = score({"a": "one two three four", "b": "x"}, {"a": "one too three", "q": "y"})
    d = r.to_dict()
    back = json.loads(json.dumps(d, allow_nan=False))
    assert back == d
    assert back["wer"] == pytest.approx(r.wer) and back["cer"] == pytest.approx(r.cer)
    assert 0 <= back["wer"] <= 1.5 and back["missing"] == ["b"] and back["extra"] == ["q"]
    pa = back["per_utterance"][0]
    assert pa["id"] == "a" and ["SUB", "two", "too"] in pa["ops"] and "REF:" in pa["alignment"]


def test_format_report_and_details():
    r = score({"a": "one two three four", "b": "ok", "c": "[x] y"}, {"a": "one too three", "b": "ok", "c": "[x] z"})
    con = Console(width=200, record=True, color_system=None)
    con.print(format_report(r))
    con.print(format_details(r, limit=1))
    out = con.export_text()
    assert "50.00%" in out and "WER" in out and "missing hypotheses" in out
    assert "a: S=1 D=1 I=0" in out and "HYP: one too three ****" in out
    assert "1 more utterances" in out
    full = str(format_details(r, limit=5))
    assert "[x]" in full  # no rich markup interpretation
    assert full.index("a:") < full.index("c:")  # worst first
    assert "no utterance" in str(format_details(score({"a": "x"}, {"a": "x"})))


@pytest.mark.parametrize("width", [80, 60])
def test_score_table_shows_every_number_whole_at_80_columns_and_in_a_pipe(width):
    refs = {f"u{i}": "one two three four five six" for i in range(40)}
    hyps = {f"u{i}": "one two tree four five" for i in range(37)}  # 3 missing: 100 % of their words deleted
    r = score(refs, hyps)
    con = Console(width=width, file=io.StringIO(), color_system=None)  # a pipe: no terminal, rich's default 80 columns
    con.print(format_report(r))
    out = con.file.getvalue()
    assert "…" not in out and max(len(line) for line in out.splitlines()) <= width
    for number in (
        _pct(r.wer),
        _pct(r.cer),
        _pct(r.ser),
        _pct(r.accuracy),
        f"{r.mean_edit_distance:.3f}",
        "37 / 55 / 0",
        "240",
    ):
        assert number in out, number


def test_score_warns_of_no_shared_ids_and_of_case_only_differences(tmp_path):
    ref, hyp, other = tmp_path / "ref.txt", tmp_path / "hyp.txt", tmp_path / "other.txt"
    ref.write_text("a\tHELLO, WORLD.\nb\tONE TWO THREE\n")
    hyp.write_text("a\thello world\nb\tone too three\n")
    other.write_text("x\thello world\n")
    res = run_cli("score", "--ref", str(ref), "--hyp", str(hyp), "--json")
    assert json.loads(res.stdout)["wer"] == 1.0
    assert (
        "differ mostly in case or punctuation: WER 100.00% as written, 20.00% with both normalised (--normalize)"
        in res.stderr
    )
    norm = run_cli("score", "--ref", str(ref), "--hyp", str(hyp), "--json", "--normalize")
    assert json.loads(norm.stdout)["wer"] == pytest.approx(0.2) and "warning" not in norm.stderr
    none = run_cli("score", "--ref", str(ref), "--hyp", str(other), "--json")
    assert "share no id with the reference" in none.stderr
    same = run_cli("score", "--ref", str(hyp), "--hyp", str(hyp), "--json")
    assert "warning" not in same.stderr


def test_several_hypothesis_files_make_one_comparison_table(tmp_path):
    ref, a, b = tmp_path / "ref.txt", tmp_path / "open.hyp", tmp_path / "lm.hyp"
    ref.write_text("u1\tone two three\nu2\tfour five\n")
    a.write_text("u1\tone too three\nu2\tfour\n")
    b.write_text("u1\tone two three\nu2\tfour five\n")
    res = run_cli(
        "score", "--ref", "ref.txt", "--hyp", "open.hyp", "--hyp", "lm.hyp", env={"COLUMNS": "80"}, cwd=tmp_path
    )
    rows = {line.split("│")[1].strip(): line for line in res.stdout.splitlines() if line.startswith("│")}
    assert "40.00%" in rows["open.hyp"] and "1 / 1 / 0" in rows["open.hyp"] and "0.00%" in rows["lm.hyp"], res.stdout
    js = [
        json.loads(x)
        for x in run_cli("score", "--ref", str(ref), "--hyp", str(a), "--hyp", str(b), "--json").stdout.splitlines()
    ]
    assert [(j["hyp"], j["wer"]) for j in js] == [(str(a), 0.4), (str(b), 0.0)]
    bad = run_cli("score", "--ref", str(ref), "--hyp", str(a), "--hyp", str(b), "--details", "2", check=False)
    assert bad.returncode == 2 and "score one --hyp" in bad.stderr


def test_listed_says_how_many_ids_it_leaves_out():
    from asrkit.score import listed

    assert listed(["a", "b"]) == "a, b"
    assert listed([f"u{i}" for i in range(350)]) == "u0, u1, u2, u3, u4 and 345 more"


# ---- edit_distance ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref,hyp,dist",
    [
        ([], [], 0),
        (["a"], [], 1),
        ([], ["a", "b"], 2),
        (list("kitten"), list("sitting"), 3),
        (list("flaw"), list("lawn"), 2),
        (["AH", "B", "K"], ["AH", "B", "K"], 0),
        (["a", "b", "c"], ["c", "b", "a"], 2),
        ([1, 2, 3, 4], [2, 3, 4, 5], 2),
    ],
)
def test_edit_distance_known(ref, hyp, dist):
    assert edit_distance(ref, hyp) == dist
    assert edit_distance(hyp, ref) == dist


def test_edit_distance_matches_jiwer_random():
    rng = random.Random(1234)
    vocab = ["a", "b", "c", "d", "e"]
    for _ in range(300):
        ref = [rng.choice(vocab) for _ in range(rng.randint(1, 12))]
        hyp = [rng.choice(vocab) for _ in range(rng.randint(0, 12))]
        o = jiwer.process_words(" ".join(ref), " ".join(hyp))
        assert edit_distance(ref, hyp) == o.substitutions + o.deletions + o.insertions, (ref, hyp)
