"""`asrkit models`: the zoo sized for a recipe (its features, vocabulary and model sizes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from asrkit.config import Recipe, load_recipe, resolve_targets
from asrkit.features import CMVN_PER_RECORDING
from asrkit.models import zoo_table
from asrkit.text import CharTokenizer

# blank + a-z + apostrophe + <space>: the character set of an English CTC recipe before `prepare` has run
DEFAULT_TOKENS = 29


def recipe_outputs(recipe: Recipe) -> tuple[int, str]:
    """The model's output size: the prepared vocabulary when there is one, else the English character set."""
    vocab = recipe.data_dir / "vocab.txt"
    if vocab.is_file():
        if resolve_targets(recipe) in ("labels", "frames"):  # no blank: one output per class
            return len([s for s in vocab.read_text(encoding="utf-8").splitlines() if s]), f"{vocab}"
        return len(CharTokenizer.load(vocab)), f"{vocab}"
    if recipe.data.alphabet:
        n = len(set(recipe.data.alphabet) | {" "}) + 1
        return n, "data.alphabet + space + blank"
    return DEFAULT_TOKENS, f"{DEFAULT_TOKENS} outputs assumed: {vocab} is not prepared yet"


def recipe_stream_reason(recipe: Recipe) -> str | None:
    """Why no model this recipe trains can stream whatever its entry (its front-end, CMVN, head or features)."""
    if recipe.features.type == "precomputed":
        return "precomputed features"
    if recipe.model.head != "ctc":
        return f"{recipe.model.head} head"
    if recipe.model.frontend not in ("none", "stack"):
        return f"{recipe.model.frontend} front-end"
    if recipe.features.cmvn in CMVN_PER_RECORDING:
        return f"cmvn {recipe.features.cmvn}"
    return None


def describe_zoo(
    recipe_path: str | Path | None, overrides: list[str] | None = None
) -> tuple[list[dict[str, Any]], str]:
    """Rows of `zoo_table` for the recipe (or the defaults), with the recipe's own entry marked `selected`."""
    recipe = load_recipe(recipe_path, overrides) if recipe_path is not None else Recipe()
    n_out, source = recipe_outputs(recipe)
    cfg = recipe.to_dict()["model"]
    rows = zoo_table(cfg, recipe.features.n_mels, n_out)
    why_not = recipe_stream_reason(recipe)
    for r in rows:
        r["selected"] = r["name"] == recipe.model.name
        if r["streamable"] and why_not:  # the entry could stream, but not as this recipe trains it
            r["streamable"], r["stream_note"] = False, why_not
    m = recipe.model
    title = (
        f"model zoo for {recipe_path or 'the default recipe'}: {recipe.features.n_mels} features → {n_out} outputs ({source}); "
        f"{m.frontend} front-end, subsample {m.subsample}, hidden {m.hidden} × {m.layers} layers, head {m.head}; * = the recipe's model"
    )
    return rows, title
