"""The package's layers, lowest first, and the rule that imports only go down (docs/architecture.md):

    core → data → models → decode / align / stream → train / export → api → commands → cli

Every import of an asrkit module counts, at the top of a module or inside a function. A module may import its own
layer or a lower one; among decode, align and stream the imports must not go round in a circle; no module imports
itself back through others. An import that had to run up would be listed in RUNS_UP with why; there are none, and
MAX_RUNS_UP keeps it so.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "asrkit"

LAYERS = ("core", "data", "models", "kernels", "train/export", "api", "commands", "cli")
CORE = {
    "errors",
    "config",
    "text",
    "audio",
    "phonemes",
    "score",
    "fsutil",
    "progress",
    "features",
    "confusion",
    "version",
    "jsonlines",
    "assets",
    "reference",
}
SUBPACKAGES = {
    "data": "data",
    "models": "models",
    "decode": "kernels",
    "align": "kernels",
    "stream": "kernels",
    "train": "train/export",
    "export": "train/export",
    "api": "api",
    "commands": "commands",
}
CLI = {"cli", "cli_help", "__main__"}

# (importer, imported): the imports that still run up a layer, each with why it is allowed (none today)
RUNS_UP: dict[tuple[str, str], str] = {}
MAX_RUNS_UP = 0


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "api"  # the package itself: `asrkit.load`, the facade over everything
    if parts[1] in CORE:
        return "core"
    if parts[1] in CLI:
        return "cli"
    if parts[1] in SUBPACKAGES:
        return SUBPACKAGES[parts[1]]
    raise AssertionError(f"{module}: not in any layer; add it to tests/test_layers.py and docs/architecture.md")


def modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        name = ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = p
    return out


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module → the asrkit modules it imports (a `from package import submodule` counts as the submodule)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.ImportFrom)
                and node.level == 0
                and node.module
                and node.module.split(".")[0] == "asrkit"
            ):
                subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in mods]
                targets = subs if len(subs) == len(node.names) else [node.module, *subs]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.split(".")[0] == "asrkit"]
            else:
                continue
            edges[name].update(t for t in targets if t in mods and t != name)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def runs_up(edges: dict[str, set[str]]) -> set[tuple[str, str]]:
    rank = {name: i for i, name in enumerate(LAYERS)}
    return {(a, b) for a, bs in edges.items() for b in bs if rank[layer_of(b)] > rank[layer_of(a)]}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(modules())


def test_every_module_has_a_layer():
    for name in modules():
        assert layer_of(name) in LAYERS


def test_no_module_imports_itself_back(graph):
    assert cycles(graph) == []


def test_decode_align_and_stream_import_one_way(graph):
    """Packages of one layer: the package-to-package imports form no circle (today: stream → decode → align)."""
    packages: dict[str, set[str]] = defaultdict(set)
    for a, bs in graph.items():
        for b in bs:
            pa, pb = a.split(".")[:2], b.split(".")[:2]
            if len(pa) == len(pb) == 2 and pa != pb and layer_of(a) == layer_of(b) == "kernels":
                packages[".".join(pa)].add(".".join(pb))
    assert cycles(packages) == []


def test_imports_run_down_but_for_the_listed_few(graph):
    up = runs_up(graph)
    assert up <= set(RUNS_UP), f"imports that run up a layer: {sorted(up - set(RUNS_UP))} (docs/architecture.md)"
    assert len(RUNS_UP) <= MAX_RUNS_UP
    assert set(RUNS_UP) <= up, f"no longer needed, take them off RUNS_UP: {sorted(set(RUNS_UP) - up)}"


def test_the_checks_see_a_circle_and_an_import_that_runs_up():
    """The checks on a made-up graph: they would fail the package if it had either."""
    made_up = {
        "asrkit.models.a": {"asrkit.train.b"},
        "asrkit.train.b": {"asrkit.models.a"},
        "asrkit.text": {"asrkit.data.x"},
    }
    assert cycles(made_up) == [["asrkit.models.a", "asrkit.train.b"]]
    assert runs_up(made_up) == {("asrkit.models.a", "asrkit.train.b"), ("asrkit.text", "asrkit.data.x")}
    with pytest.raises(AssertionError, match="not in any layer"):
        layer_of("asrkit.newthing")
