"""The corpus contract (asrkit.data.corpus.Corpus): every registered corpus module defines each of its functions with
the protocol's exact signature, and `asrkit prepare` uses nothing of a corpus beyond the protocol."""

from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path

import pytest

from asrkit.data import corpus as contract
from asrkit.data.corpora import CORPORA, get_corpus
from asrkit.data.corpus import Corpus
from asrkit.errors import InputError

MEMBERS = sorted(n for n, v in vars(Corpus).items() if inspect.isfunction(v) and not n.startswith("_"))


def _signature(fn, namespace: dict, skip_self: bool = False) -> tuple[list[tuple], object]:
    """(name, kind, default, resolved type) per parameter, and the resolved return type."""
    hints = typing.get_type_hints(fn, namespace)
    params = list(inspect.signature(fn).parameters.values())[1 if skip_self else 0 :]
    return [(p.name, p.kind, p.default, hints.get(p.name)) for p in params], hints.get("return")


def _expected(name: str) -> tuple[list[tuple], object]:
    return _signature(getattr(Corpus, name), vars(contract), skip_self=True)


def test_the_protocol_has_the_five_functions() -> None:
    assert MEMBERS == ["count_work", "download", "load_features", "locate", "prepare"]


@pytest.mark.parametrize("corpus", CORPORA)
@pytest.mark.parametrize("member", MEMBERS)
def test_every_corpus_defines_the_protocol_with_its_signature(corpus: str, member: str) -> None:
    module = get_corpus(corpus)
    fn = getattr(module, member, None)
    assert inspect.isfunction(fn), f"asrkit.data.corpora.{corpus} has no function {member}()"
    assert _signature(fn, vars(module)) == _expected(member), (
        f"{corpus}.{member}: its signature differs from the Corpus protocol"
    )


def test_a_drifted_signature_is_caught() -> None:
    """The comparison above sees another order, another default and another type."""
    ns = {**vars(contract)}
    exec(  # noqa: S102 - fake corpus functions, written as a corpus module would write them
        "def order(output_dir: Path, corpus_dir: Path, recipe: Recipe, progress: Callable[[int], None] | None = None)"
        " -> Manifests: ...\n"
        "def default(corpus_dir: Path, output_dir: Path, recipe: Recipe, progress: Callable[[int], None] | None = print)"
        " -> Manifests: ...\n"
        "def kind(corpus_dir: str, output_dir: Path, recipe: Recipe, progress: Callable[[int], None] | None = None)"
        " -> Manifests: ...\n"
        "def same(corpus_dir: Path, output_dir: Path, recipe: Recipe, progress: Callable[[int], None] | None = None)"
        " -> Manifests: ...\n",
        ns,
    )
    want = _expected("prepare")
    assert _signature(ns["same"], ns) == want
    assert all(_signature(ns[k], ns) != want for k in ("order", "default", "kind"))


def test_prepare_uses_only_the_protocol() -> None:
    """Every attribute taken from a corpus in asrkit/data/prepare.py is a protocol function; no getattr probing."""
    import asrkit.data.prepare as prep

    tree = ast.parse(Path(prep.__file__).read_text(encoding="utf-8"))
    used = {
        n.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "corpus"
    }
    probes = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("getattr", "hasattr")
    ]
    assert used and used <= set(MEMBERS), used - set(MEMBERS)
    assert not [ast.unparse(p) for p in probes if "corpus" in ast.unparse(p)]


def test_kaldi_refuses_download_and_npy_features_need_a_file(tmp_path: Path) -> None:
    from asrkit.config import recipe_from_dict
    from asrkit.data.manifest import Utterance

    r = recipe_from_dict({"name": "t", "features": {"type": "precomputed", "n_mels": 3}})
    with pytest.raises(InputError, match="Kaldi data directory"):
        get_corpus("kaldi").download(tmp_path, r)
    with pytest.raises(InputError, match="no features file"):
        get_corpus("echo").load_features(Utterance("u1", "a.wav", 1.0, 16000, "x"), r)
