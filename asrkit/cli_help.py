"""Plain metavars in `--help`: flags show no value, options show INTEGER / NUMBER / TEXT / PATH, arguments NAME....

typer 0.2x prints Python types (`<bool>`, `<list[str]>`, `<int range>`, `{inputs}`), which make plain flags look as if
they took a value. Where those hooks exist they are replaced; an older typer, which prints click's metavars, is left be.
"""

from __future__ import annotations

import typing
from typing import Any

from typer.core import TyperArgument, TyperOption

_NAMES = {int: "INTEGER", float: "NUMBER", str: "TEXT"}


def plain_metavar(param: Any) -> str | None:
    """What `--help` shows after an option: None for a flag, else its metavar or a click-style type name."""
    if getattr(param, "is_flag", False):
        return None
    if getattr(param, "metavar", None):
        return param.metavar
    desc = getattr(param, "type_descriptor", None)
    if desc is None:
        return None
    if getattr(desc, "is_choice", False):
        return "|".join(str(getattr(c, "value", c)) for c in desc.choices or ())
    if getattr(desc, "is_path", False):
        return "PATH"
    annotation = desc.annotation
    if typing.get_origin(annotation) is list:  # a repeatable option: each occurrence takes one value
        (annotation,) = typing.get_args(annotation) or (str,)
    return _NAMES.get(annotation, "VALUE")


def _usage_name(param: Any) -> str:
    name = (param.metavar or param.name or "").upper()
    name = name if param.required else f"[{name}]"
    return name + ("..." if param.nargs != 1 else "")


def install() -> None:
    """Replace typer's type display with `plain_metavar` (a no-op for a typer without these hooks)."""
    if hasattr(TyperOption, "display_type_rich"):
        TyperOption.display_type_rich = lambda self, ctx: plain_metavar(self)
    if hasattr(TyperArgument, "display_type_rich"):
        TyperArgument.display_type_rich = lambda self, ctx: None  # the argument's name already says what it is
    if hasattr(TyperArgument, "_usage_display_name"):
        TyperArgument._usage_display_name = _usage_name
