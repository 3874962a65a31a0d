"""Every function in asrkit/ fits on a screen: at most MAX_LINES lines from its `def` to its last line.

The NumPy reference (asrkit/reference) counts too: it is read beside the handout's equations.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "asrkit"
MAX_LINES = 100


def long_functions(source: str, limit: int = MAX_LINES) -> list[tuple[str, int]]:
    """(name, lines) of each function or method in `source` longer than `limit` lines, decorators excluded."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            if lines > limit:
                out.append((node.name, lines))
    return out


def test_every_function_fits_on_a_screen():
    too_long = [
        f"{path.relative_to(PACKAGE.parent)}:{name} ({lines} lines)"
        for path in sorted(PACKAGE.rglob("*.py"))
        for name, lines in long_functions(path.read_text(encoding="utf-8"))
    ]
    assert not too_long, f"functions over {MAX_LINES} lines: " + ", ".join(too_long)


def test_the_check_sees_a_long_function_and_a_long_method():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    src = f"def f():\n{body}\n\nclass C:\n    def m(self):\n    {body.replace(chr(10), chr(10) + '    ')}\n"
    assert long_functions(src) == [("f", MAX_LINES + 1), ("m", MAX_LINES + 1)]
    assert long_functions("def g():\n    return 1\n") == []
