"""Fuzz the readers (hypothesis): manifest lines and files, recipes (dicts, YAML text, --set), score's hyp/ref files and
LibriSpeech transcripts. Only InputError may escape; anything else is a bug.

A short pass runs by default; the long pass is `pytest -m fuzz tests/robustness` (make fuzz). Each target prints its
example count and time (run with -s to see them).
"""

from __future__ import annotations

import dataclasses
import json
import os
import string
import tempfile
import time
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asrkit.config import Recipe, load_recipe, recipe_from_dict, validate
from asrkit.data.corpora.librispeech import read_transcripts as read_trans_txt
from asrkit.data.manifest import Utterance, parse_line, read_manifest
from asrkit.errors import InputError
from asrkit.score import read_transcripts

SHORT = 60  # examples per target in the default run (the whole file: a few seconds)
LONG = int(os.environ.get("ASRKIT_FUZZ_EXAMPLES", "3000"))  # per target in the fuzz pass (-m fuzz)

_TMP = Path(tempfile.mkdtemp(prefix="asrkit-fuzz-"))


def _recipe_keys(cls: type = Recipe) -> list[str]:
    """Every field name of the recipe dataclasses, at any depth (so random dicts hit real keys)."""
    names: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        names.append(f.name)
        tp = hints[f.name]
        for a in (tp, *typing.get_args(tp)):
            if dataclasses.is_dataclass(a):
                names += _recipe_keys(a)
    return sorted(set(names))


KEYS = _recipe_keys()
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["ctc", "gru", "logmel", "all", "12", "1e-3", "yes", "official", "speakers"]),
)
_json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.floats(allow_nan=False), st.text(max_size=12)
)
_key = st.one_of(st.sampled_from(KEYS), st.text(max_size=8))


def _nested(leaves: st.SearchStrategy, keys: st.SearchStrategy) -> st.SearchStrategy:
    return st.recursive(
        leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5), max_leaves=20
    )


_MANIFEST_KEYS = st.sampled_from([*(f.name for f in dataclasses.fields(Utterance)), "id", "audio", "x"]) | st.text(
    max_size=6
)
_manifest_obj = st.dictionaries(_MANIFEST_KEYS, _nested(_json_scalars, st.text(max_size=5)), max_size=8)
_manifest_line = st.one_of(
    st.text(max_size=80),
    _manifest_obj.map(json.dumps),
    st.fixed_dictionaries(
        {"id": st.text(max_size=5), "audio": st.text(max_size=5)},
        optional={
            "duration": _json_scalars,
            "sample_rate": _json_scalars,
            "text": _json_scalars,
            "phonemes": _nested(_json_scalars, st.text(max_size=3)),
            "features": _json_scalars,
            "speaker": _json_scalars,
            "label": _json_scalars,
        },
    ).map(json.dumps),
    st.sampled_from(
        [
            "NaN",
            '{"id": "a", "audio": "x", "duration": NaN}',
            '{"id": "a", "audio": "x", "duration": -Infinity}',
            "[" * 5000,
        ]
    ),
)
_bytes_or_lines = st.one_of(
    st.binary(max_size=300),
    st.lists(_manifest_line, max_size=6).map(lambda ls: "\n".join(ls).encode("utf-8", "surrogatepass")),
)
_trans_line = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda a, b, c, t: f"{a}-{b}-{c} {t}",
        st.integers(0, 99),
        st.integers(0, 99),
        st.integers(0, 9),
        st.text(max_size=20),
    ),
)
_trans_file = st.one_of(
    st.binary(max_size=300),
    st.lists(_trans_line, max_size=6).map(lambda ls: "\n".join(ls).encode("utf-8", "surrogatepass")),
)
_hyp_line = st.one_of(
    st.text(max_size=40),
    st.builds(lambda i, t: f"{i}\t{t}", st.text(max_size=6), st.text(max_size=20)),
    _manifest_obj.map(json.dumps),
    st.fixed_dictionaries(
        {"id": _json_scalars, "text": _json_scalars},
        optional={"label": _json_scalars, "phonemes": _nested(_json_scalars, st.text(max_size=3))},
    ).map(json.dumps),
)
_hyp_file = st.one_of(
    st.binary(max_size=300),
    st.lists(_hyp_line, max_size=6).map(lambda ls: "\n".join(ls).encode("utf-8", "surrogatepass")),
)
_recipe_dict = st.dictionaries(_key, _nested(_scalars, _key), max_size=6)
_yaml_text = st.one_of(
    st.text(max_size=120),
    st.lists(
        st.builds(
            lambda i, k, v: " " * i + f"{k}: {v}",
            st.integers(0, 4),
            _key,
            st.text(max_size=10)
            | st.sampled_from(
                ["", "[1, 2]", "{a: 1}", "-3", "1e999", "2024-13-45", "&a [*a]", "!!python/object:os.system", ".nan"]
            ),
        ),
        max_size=8,
    ).map("\n".join),
)
_override = st.one_of(
    st.text(max_size=20),
    st.builds(lambda k, v: f"{k}={v}", st.lists(_key, min_size=1, max_size=3).map(".".join), st.text(max_size=10)),
)


def _only_input_error(fn: Callable[[Any], Any]) -> Callable[[Any], None]:
    """Call fn; an InputError is the expected refusal, any other exception fails the test."""

    def check(x: Any) -> None:
        try:
            fn(x)
        except InputError as e:
            assert str(e) and "\n" not in str(e).strip(), f"an InputError message must be one line: {e!r}"

    return check


def _file(data: bytes, suffix: str) -> Path:
    p = _TMP / f"f{suffix}"
    p.write_bytes(data)
    return p


def _parse_line(line: str) -> None:
    u = parse_line(line, "m.jsonl:1")
    assert isinstance(u, Utterance) and isinstance(u.id, str) and isinstance(u.duration, float)


def _read_manifest(data: bytes) -> None:
    for u in read_manifest(_file(data, ".jsonl")):
        assert isinstance(u, Utterance)


def _recipe_from_dict(d: dict) -> None:
    validate(recipe_from_dict(d))


def _load_recipe_text(text: str) -> None:
    p = _TMP / "r.yaml"
    p.write_text(text, encoding="utf-8", errors="surrogatepass")
    load_recipe(p)


def _load_recipe_dump(d: dict) -> None:
    import yaml

    p = _TMP / "r.yaml"
    p.write_text(yaml.safe_dump(d), encoding="utf-8")
    load_recipe(p)


def _overrides(sets: list[str]) -> None:
    p = _TMP / "base.yaml"
    if not p.exists():
        p.write_text("data:\n  corpus: digits\n")
    load_recipe(p, sets)


def _score_txt(data: bytes) -> None:
    out = read_transcripts(_file(data, ".txt"))
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in out.items())


def _score_jsonl(data: bytes) -> None:
    out = read_transcripts(_file(data, ".jsonl"))
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in out.items())


def _librispeech(data: bytes) -> None:
    out = read_trans_txt(_file(data, ".trans.txt"))
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in out.items())


TARGETS: dict[str, tuple[st.SearchStrategy, Callable[[Any], None]]] = {
    "manifest_line": (_manifest_line, _parse_line),
    "manifest_file": (_bytes_or_lines, _read_manifest),
    "recipe_dict": (_recipe_dict, _recipe_from_dict),
    "recipe_yaml_text": (_yaml_text, _load_recipe_text),
    "recipe_yaml_dump": (_recipe_dict, _load_recipe_dump),
    "recipe_set_overrides": (st.lists(_override, max_size=4), _overrides),
    "score_tsv": (_hyp_file, _score_txt),
    "score_jsonl": (_hyp_file, _score_jsonl),
    "librispeech_trans": (_trans_file, _librispeech),
}


def _run(name: str, examples: int) -> tuple[int, float]:
    """Run one target's hypothesis search; returns (examples run, seconds)."""
    strategy, fn = TARGETS[name]
    check = _only_input_error(fn)
    count = [0]

    def body(x: Any) -> None:
        count[0] += 1
        check(x)

    t0 = time.perf_counter()
    test = settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))(
        given(strategy)(body)
    )
    test()
    return count[0], time.perf_counter() - t0


@pytest.mark.parametrize("name", list(TARGETS))
def test_fuzz_short_pass_only_input_error(name: str) -> None:
    n, secs = _run(name, SHORT)
    assert n > 0
    print(f"fuzz {name}: {n} examples in {secs:.1f} s")


@pytest.mark.fuzz
@pytest.mark.parametrize("name", list(TARGETS))
def test_fuzz_long_pass_only_input_error(name: str) -> None:
    n, secs = _run(name, LONG)
    assert n > 0
    print(f"fuzz {name}: {n} examples in {secs:.1f} s")


def test_fuzz_target_catches_a_non_input_error() -> None:
    """The harness itself can fail: an exception other than InputError escapes it."""

    def broken(_: Any) -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        _only_input_error(broken)(None)
    _only_input_error(lambda _: (_ for _ in ()).throw(InputError("fine")))(None)
    assert set(string.ascii_lowercase) & set("".join(KEYS))  # the key pool holds real recipe keys
