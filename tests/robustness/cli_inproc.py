"""Helpers for the robustness tests: run the CLI in-process, check one-line errors, build a tiny checkpoint."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    """Exit code and the captured streams of one in-process `asrkit` run."""

    code: int
    out: str
    err: str


def cli(*args: str) -> Result:
    """`asrkit ARGS` in this process (no interpreter start-up): the exit code main() returns and what it printed."""
    from asrkit.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return Result(code, out.getvalue(), err.getvalue())


def assert_one_line_error(r: Result, *needles: str, code: int = 2) -> str:
    """The run failed with `code`, printed exactly one stderr line containing every needle, and no traceback."""
    assert r.code == code, f"exit {r.code}, expected {code}; stderr: {r.err!r}"
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got: {r.err!r}"
    assert "Traceback" not in r.err and "Traceback" not in r.out
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"
    return lines[0]


def tiny_checkpoint_state(symbols: str = " abc") -> dict:
    """A valid, untrained asrkit checkpoint state: a 1-layer GRU over 16 log-mel bands, characters `symbols`."""
    from asrkit.config import FeatureConfig
    from asrkit.features import feature_settings
    from asrkit.models import build_model
    from asrkit.text import CharTokenizer

    tok = CharTokenizer(list(symbols))
    cfg = {
        "name": "gru",
        "hidden": 8,
        "layers": 1,
        "n_feats": 16,
        "n_tokens": len(tok),
        "frontend": "none",
        "subsample": 1,
    }
    feats = feature_settings(FeatureConfig(n_mels=16, specaugment=None), 16000)
    return {
        "model_config": cfg,
        "tokenizer": tok.to_dict(),
        "features": feats,
        "cmvn": None,
        "model": build_model(cfg).state_dict(),
    }


def write_wav(path: Path, seconds: float = 0.5, rate: int = 16000) -> Path:
    """A short noise recording."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    sf.write(str(path), (rng.standard_normal(int(seconds * rate)) * 0.1).astype("float32"), rate)
    return path
