"""`asrkit models`: the model zoo with parameter counts for a recipe's sizes, as a table or JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from asrkit.models.describe import describe_zoo


def models_command(recipe: Path | None, overrides: list[str] | None = None, as_json: bool = False) -> None:
    """Print the zoo: one row per model (* marks the recipe's), or one JSON object per model."""
    rows, title = describe_zoo(recipe, overrides)
    if as_json:
        for r in rows:
            print(json.dumps(r))
        return
    t = Table(title=title)
    for col in ("model", "parameters", "bidirectional", "streamable", "description"):
        t.add_column(col, justify="right" if col == "parameters" else "left")
    for r in rows:
        params = f"{r['parameters']:,}" if r["parameters"] is not None else r.get("error", "-")
        mark = " *" if r["selected"] else ""
        streams = "yes" if r["streamable"] else f"no ({r['stream_note']})" if r.get("stream_note") else "no"
        t.add_row(r["name"] + mark, params, "yes" if r["bidirectional"] else "no", streams, r["description"])
    Console().print(t)
