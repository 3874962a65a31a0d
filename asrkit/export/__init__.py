"""Model export: a training checkpoint → a self-contained ONNX or TorchScript file, and a runtime that decodes from it.

>>> export_model("exp/digits/best.pt", "onnx", "digits.onnx")  # doctest: +SKIP
>>> am = load_acoustic_model("digits.onnx")                      # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module

__all__ = ["FORMATS", "OnnxAcousticModel", "TorchScriptAcousticModel", "export_model", "load_acoustic_model"]

_WHERE = {
    "FORMATS": "asrkit.export.writer",
    "export_model": "asrkit.export.writer",
    # reading an exported file is model loading, which lives with the models (every decoder and aligner needs it)
    "OnnxAcousticModel": "asrkit.models.runtime",
    "TorchScriptAcousticModel": "asrkit.models.runtime",
    "load_acoustic_model": "asrkit.models.runtime",
}


def __getattr__(name: str):
    # lazy: `import asrkit.export` must not pay for torch until a name is used
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'asrkit.export' has no attribute {name!r}")
