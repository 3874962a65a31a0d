"""MODEL_CARD.md: data table from the manifests, the per-epoch results with the best marked, reproduce commands."""

from __future__ import annotations

import json
from pathlib import Path

from asrkit.config import load_recipe
from asrkit.train.card import model_card, write_model_card
from conftest import ROOT


def _run(tmp_path: Path) -> tuple[Path, Path]:
    data, exp = tmp_path / "data", tmp_path / "exp"
    data.mkdir()
    exp.mkdir()
    for split, durs in {"train": [1.5, 2.5, 3.6], "dev": [1.8]}.items():
        (data / f"{split}.jsonl").write_text(
            "".join(
                json.dumps({"id": f"{split}{i}", "audio": "x.wav", "duration": d}) + "\n" for i, d in enumerate(durs)
            )
        )
    rows = [
        {"epoch": 1, "train_loss": 2.5, "dev_loss": 2.0, "dev_wer": 0.9, "dev_cer": 0.5, "seconds": 60.0},
        {"epoch": 2, "train_loss": 1.5, "dev_loss": 1.0, "dev_wer": 0.25, "dev_cer": 0.1, "seconds": 62.0},
        {"epoch": 3, "train_loss": 1.0, "dev_loss": 1.1, "dev_wer": 0.3, "dev_cer": 0.12, "seconds": 58.0},
    ]
    (exp / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data, exp


def test_card_holds_data_results_and_commands(tmp_path: Path) -> None:
    data, exp = _run(tmp_path)
    r = load_recipe(ROOT / "recipes" / "digits.yaml", [f"data.out_dir={data}", f"train.exp_dir={exp}"])
    card = model_card(
        r, exp, 123456, "cpu", "wer", False, 1, ["asrkit", "train", "recipes/digits.yaml", "--set", "train.lr=0.01"]
    )
    assert "**123,456 parameters.**" in card and "Zoo entry `bigru`" in card
    assert "| train | 3 | 0.00 |" in card and "| dev | 1 | 0.00 |" in card
    assert "**Training time 3.0 min** on cpu" in card
    assert "best by dev wer: epoch 2" in card
    assert "| **2** | 1.500 | 1.000 | 25.00 % | 10.00 % | 62 |" in card  # the best epoch is marked, the others not
    assert "| 3 | 1.000 | 1.100 | 30.00 % | 12.00 % | 58 |" in card
    assert "asrkit train recipes/digits.yaml --set train.lr=0.01" in card
    assert f"asrkit train {exp / 'config.yaml'}" in card


def test_write_model_card_is_written_atomically_where_train_puts_it(tmp_path: Path) -> None:
    data, exp = _run(tmp_path)
    r = load_recipe(ROOT / "recipes" / "echo.yaml", [f"data.out_dir={data}", f"train.exp_dir={exp}"])
    path = write_model_card(r, exp, 42, "cpu", "accuracy", True)
    assert (
        path == exp / "MODEL_CARD.md" and "best by dev accuracy" not in path.read_text()
    )  # these rows have no accuracy
    assert not list(exp.glob(".*.tmp"))
