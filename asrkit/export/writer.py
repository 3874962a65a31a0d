"""`export_model`: trace a checkpoint's network into ONNX or TorchScript and store the decoding settings beside it.

The traced graph takes (B, T, F) float32 features and (B,) int64 lengths and returns (log-probs, output lengths)
exactly as the PyTorch model does, with one condition: T must be a multiple of the model's subsampling (the
front-ends' `pad to a multiple` is Python control flow that tracing would freeze). The runtime
(`asrkit.models.runtime`) zero-pads every batch to such a T, which changes no output: the front-ends zero the
padding anyway and the lengths stay those of the real frames. ONNX has no projected LSTM: those layers are exported
as an equivalent loop (`asrkit.export.graph`).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from asrkit.errors import InputError, WorkError
from asrkit.export.graph import onnx_ready
from asrkit.fsutil import atomic_write, check_writable
from asrkit.models.acoustic import AcousticModel
from asrkit.models.checkpoint import load_checkpoint
from asrkit.models.exported import build_metadata, pack

FORMATS = ("onnx", "torchscript")
ONNX_OPSET = 17  # LayerNormalization is a native op from 17 on
INPUT_NAMES = ["features", "lengths"]
OUTPUT_NAMES = ["log_probs", "out_lengths"]


def _load(checkpoint: str | Path) -> tuple[dict[str, Any], Any]:
    """The checkpoint's state and its model (eval mode, CPU), or InputError for a missing or foreign file."""
    state = load_checkpoint(checkpoint, "cpu")
    missing = [k for k in ("tokenizer", "features") if k not in state]
    if missing:
        raise InputError(f"{checkpoint} has no {' or '.join(missing)}: it is not a decodable asrkit checkpoint")
    return state, AcousticModel(state, "cpu")


def example_inputs(n_feats: int, subsample: int) -> tuple[Any, Any]:
    """A traced batch: two utterances of different lengths, T a multiple of `subsample`."""
    g = torch.Generator().manual_seed(0)
    t = 8 * subsample
    return torch.randn(2, t, n_feats, generator=g), torch.tensor([t, t - subsample - 1], dtype=torch.int64)


def _dynamic_axes(task: str) -> dict[str, dict[int, str]]:
    """Batch and time axes left free in the ONNX graph (a classifier's output has no time axis)."""
    out = {0: "batch"} if task == "classifier" else {0: "batch", 1: "frames_out"}
    return {
        "features": {0: "batch", 1: "frames"},
        "lengths": {0: "batch"},
        "log_probs": out,
        "out_lengths": {0: "batch"},
    }


def _onnx_bytes(model: Any, inputs: tuple[Any, Any], task: str, meta: dict[str, Any]) -> bytes:
    """The model as an ONNX protobuf (legacy TorchScript-based exporter) with `meta` in its metadata_props."""
    try:
        import onnx  # lazy: optional dependency (pip install 'asrkit[export]')
    except ImportError:
        raise InputError("ONNX export needs the onnx package: pip install 'asrkit[export]'") from None
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # deprecation notes (legacy exporter, torch.jit.trace), TracerWarnings on the front-end's pad and nn.RNN's
        # argument checks, "RNN batch size other than 1": tests/test_export.py checks other batches and lengths
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            inputs,
            buf,
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=INPUT_NAMES,
            output_names=OUTPUT_NAMES,
            dynamic_axes=_dynamic_axes(task),
        )
    proto = onnx.load_from_string(buf.getvalue())
    for key, value in pack(meta).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "asrkit"
    proto.producer_version = str(meta["asrkit_version"])
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _first_line(e: BaseException) -> str:
    """An exception's first line (exporter errors carry the whole traced graph after it)."""
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:300]


def _torchscript_writer(model: Any, inputs: tuple[Any, Any], meta: dict[str, Any]) -> Callable[[str], None]:
    """A `write(tmp)` that saves the traced model with `meta` as its extra files."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about shape-dependent Python values: see the module docstring
        traced = torch.jit.trace(model, inputs, check_trace=False)
    extra = pack(meta)

    def write(tmp: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", DeprecationWarning
            )  # torch.jit.save is deprecated in favour of torch.export
            torch.jit.save(traced, tmp, _extra_files=extra)

    return write


def export_model(checkpoint: str | Path, fmt: str, output: str | Path) -> Path:
    """Export `checkpoint` as `fmt` ("onnx" | "torchscript") to `output` (written atomically); returns the path."""
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    out = Path(output)
    check_writable(out)  # before the seconds-long export
    state, am = _load(checkpoint)
    model = am.model.cpu().eval()
    meta = build_metadata(state, am.task, am.subsample)
    n_feats = int(am.config.get("n_feats") or am.feature_settings["n_mels"])
    inputs = example_inputs(n_feats, am.subsample)
    try:
        with torch.no_grad():
            if fmt == "onnx":
                data = _onnx_bytes(onnx_ready(model), inputs, am.task, meta)
                atomic_write(out, lambda tmp: Path(tmp).write_bytes(data))
            else:
                atomic_write(out, _torchscript_writer(model, inputs, meta))
    except OSError as e:
        raise InputError(f"cannot write {out}: {e.strerror or e}") from None
    except (InputError, WorkError):
        raise
    except (
        Exception
    ) as e:  # the exporters' own errors (SymbolicValueError, TracingCheckError, onnx ValidationError, ...)
        raise WorkError(f"{fmt} export of {checkpoint} failed: {_first_line(e)}") from None
    return out
