"""Imports sit at the top of their modules, where a reader sees what a module depends on.

An import inside a function is allowed only with a `# lazy: <why>` comment on its line. The reasons that count: the
import is on the path of `import asrkit` or `asrkit --help` and would load something heavy (the CLI imports each
subcommand's work inside the subcommand), an optional dependency, a module that exists on some platforms only, a
library that would multiply a light command's start-up for a feature it seldom uses (matplotlib in `asrkit score`).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "asrkit"

# parts of the package whose imports have not been moved to the top yet (paths under asrkit/); take an entry off
# once its modules pass, and the list is empty when the whole package does
PENDING: tuple[str, ...] = ()

LAZY = re.compile(r"#\s*lazy:\s*\S")

# what `import asrkit` and `asrkit --help` must not load: seconds of start-up between them
HEAVY = (
    "torch",
    "torchaudio",
    "numba",
    "scipy",
    "librosa",
    "matplotlib",
    "pyctcdecode",
    "kenlm",
    "onnx",
    "onnxruntime",
    "soundfile",
    "jiwer",
)


def unmarked_imports(source: str) -> list[tuple[int, str]]:
    """(line number, line) of each import inside a function or method body without a `# lazy:` reason on its line."""
    lines = source.splitlines()
    found = set()
    for fn in ast.walk(ast.parse(source)):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and not LAZY.search(lines[node.lineno - 1]):
                    found.add((node.lineno, lines[node.lineno - 1].strip()))
    return sorted(found)


def pending(path: Path) -> bool:
    rel = path.relative_to(PACKAGE).as_posix()
    return any(rel == p or rel.startswith(p) for p in PENDING)


def test_imports_inside_functions_say_why_they_are_lazy():
    bad = [
        f"asrkit/{path.relative_to(PACKAGE).as_posix()}:{line}: {text}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if not pending(path)
        for line, text in unmarked_imports(path.read_text(encoding="utf-8"))
    ]
    assert bad == [], (
        "move these imports to the top of their module, or give the reason on the line (# lazy: ...):\n"
        + "\n".join(bad)
    )


@pytest.mark.parametrize("entry", PENDING)
def test_pending_entries_still_have_imports_to_move(entry):
    paths = [PACKAGE / entry] if entry.endswith(".py") else sorted((PACKAGE / entry).rglob("*.py"))
    assert paths and all(p.is_file() for p in paths), f"asrkit/{entry} does not exist: take it off PENDING"
    left = sum(len(unmarked_imports(p.read_text(encoding="utf-8"))) for p in paths)
    assert left > 0, f"asrkit/{entry} has no unmarked function-level import left: take it off PENDING"


def test_the_check_sees_unmarked_imports_at_any_depth():
    source = (
        "import os\n"
        "def f():\n"
        "    import json\n"
        "    import torch  # lazy: keeps asrkit --help fast\n"
        "    def g():\n"
        "        from pathlib import Path\n"
        "class C:\n"
        "    def m(self):\n"
        "        from asrkit.text import (\n"
        "            normalize_text,\n"
        "        )\n"
        "    async def a(self):\n"
        "        import re  # lazy:\n"
    )
    assert unmarked_imports(source) == [
        (3, "import json"),
        (6, "from pathlib import Path"),
        (9, "from asrkit.text import ("),
        (13, "import re  # lazy:"),  # a reason is required, not just the word
    ]


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        ("asrkit", HEAVY),
        ("asrkit.cli", HEAVY),
        ("asrkit.commands.score", ("torch", "matplotlib")),
        ("asrkit.commands.decode", ("pyctcdecode", "kenlm", "rich", "matplotlib")),
    ],
)
def test_the_lazy_imports_keep_heavy_libraries_out(module, absent):
    """`import asrkit` and `asrkit --help` load none of HEAVY; `asrkit score` draws with matplotlib only for --confusion;
    `asrkit decode` loads the LM decoder only for --lm and rich only to draw a bar."""
    code = f"import sys, {module}; print(sorted(m for m in {absent!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
