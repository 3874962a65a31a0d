"""Decoding from an exported file: `OnnxAcousticModel` and `TorchScriptAcousticModel` behave as `AcousticModel`.

`load_acoustic_model(path)` picks the class from the file's content, so a caller of `AcousticModel.load(path)`
changes one line to accept ONNX and TorchScript exports as well as training checkpoints.
Feature extraction (log-mel + CMVN) is the same code as `AcousticModel`'s and still uses torch/torchaudio;
with ONNX only the network runs elsewhere (onnxruntime, on numpy arrays).
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asrkit.errors import InputError
from asrkit.models.exported import ALL_FIELDS, PREFIX, unpack
from asrkit.models.acoustic import AcousticModel


def pad_batch(feats: list[torch.Tensor], multiple: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, T, F) float32 zeros-padded batch with T a multiple of `multiple` (what the exported graph needs), (B,) int64 lengths."""
    lengths = np.array([f.shape[0] for f in feats], dtype=np.int64)
    t = max(int(lengths.max()), 1)
    t = -(-t // multiple) * multiple
    x = np.zeros((len(feats), t, feats[0].shape[1]), dtype=np.float32)
    for i, f in enumerate(feats):
        x[i, : f.shape[0]] = f.detach().cpu().numpy()
    return x, lengths


class ExportedAcousticModel(AcousticModel):
    """An `AcousticModel` whose settings come from an export's metadata and whose network is `_forward`.

    A subclass so that code checking `isinstance(m, AcousticModel)` (e.g. `asrkit.api.Recognizer`) takes it;
    `features` and `item_features` are inherited unchanged, `log_probs` and `classify` run `_forward`.
    """

    format = "exported"

    def __init__(self, meta: dict[str, Any], path: str | Path, device: torch.device | str = "cpu"):
        # deliberately no super().__init__(): that would build and load the PyTorch network
        self.path = Path(path)
        self.metadata = meta
        self._read_settings(meta, device)
        self.subsample = int(meta["subsample"])
        self.frame_shift = float(meta["frame_shift"])
        self.task: str = meta["task"]
        self.model = None  # no PyTorch network: see `_forward`

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, task={self.task!r})"

    def _forward(self, x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The exported network on a padded batch: (log-probs, output lengths) as numpy arrays."""
        raise NotImplementedError

    def log_probs(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per-utterance (frames', vocab) log-probabilities for a list of feature matrices, run as one batch."""
        if not feats:
            return []
        lp, out_len = self._forward(*pad_batch(feats, self.subsample))
        lp_t = torch.from_numpy(np.ascontiguousarray(lp, dtype=np.float32))
        return [lp_t[i, : int(n)] for i, n in enumerate(out_len.tolist())]

    def classify(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per-utterance class log-probabilities (V,) from a classifier export, run as one batch."""
        if self.task != "classifier":
            raise ValueError("classify() needs a classifier checkpoint")
        if not feats:
            return []
        lp, _ = self._forward(*pad_batch(feats, self.subsample))
        return list(torch.from_numpy(np.ascontiguousarray(lp, dtype=np.float32)))


class OnnxAcousticModel(ExportedAcousticModel):
    """An ONNX export run by onnxruntime: no PyTorch module anywhere in `log_probs` / `classify`."""

    format = "onnx"

    def __init__(self, path: str | Path, device: str | None = None):
        try:
            import onnxruntime as ort  # lazy: optional dependency (pip install 'asrkit[export]')
        except ImportError:
            raise InputError("ONNX models need onnxruntime: pip install 'asrkit[export]'") from None
        providers = ["CPUExecutionProvider"]
        if (
            device is not None
            and str(device).startswith("cuda")
            and "CUDAExecutionProvider" in ort.get_available_providers()
        ):
            providers.insert(0, "CUDAExecutionProvider")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only: the legacy exporter's graphs draw harmless shape-inference notes
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise InputError(f"cannot load ONNX model {path}: {reason[:200]}") from None
        meta = unpack(dict(self.session.get_modelmeta().custom_metadata_map), str(path))
        used = self.session.get_providers()[0]
        super().__init__(meta, path, "cuda" if used == "CUDAExecutionProvider" else "cpu")

    def _forward(self, x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lp, out_len = self.session.run(["log_probs", "out_lengths"], {"features": x, "lengths": lengths})
        return lp, out_len


class TorchScriptAcousticModel(ExportedAcousticModel):
    """A TorchScript export (traced on CPU) run by torch.jit: no asrkit model code is needed to run it."""

    format = "torchscript"

    def __init__(self, path: str | Path, device: str | None = None):
        files = {PREFIX + k: "" for k in ALL_FIELDS}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated in favour of torch.export
                self.module = torch.jit.load(str(path), map_location="cpu", _extra_files=files)
        except Exception as e:  # torch.jit raises RuntimeError/ValueError/... for damaged archives
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise InputError(f"cannot load TorchScript model {path}: {reason[:200]}") from None
        meta = unpack({k: (v.decode() if isinstance(v, bytes) else v) for k, v in files.items()}, str(path))
        # traced on CPU: device-bound constants (arange in the masks) make CPU the one place it is known to run
        super().__init__(meta, path, "cpu")
        self.module.eval()

    def _forward(self, x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            lp, out_len = self.module(torch.from_numpy(x), torch.from_numpy(lengths))
        return lp.float().numpy(), out_len.numpy()


def model_kind(path: str | Path) -> str:
    """ "onnx", "torchscript" or "checkpoint", from the file's content (and the .onnx suffix)."""
    p = Path(path)
    if zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as z:
            names = z.namelist()
        # torch.jit.save archives hold code/ and constants.pkl; torch.save checkpoints only data.pkl + data/
        if any("/code/" in n or n.endswith("/constants.pkl") for n in names):
            return "torchscript"
        return "checkpoint"
    if p.suffix.lower() == ".onnx":
        return "onnx"
    with open(p, "rb") as f:
        head = f.read(2)
    # an ONNX ModelProto starts with field 1 (ir_version, varint): tag byte 0x08; a pickle starts with 0x80
    return "onnx" if head[:1] == b"\x08" else "checkpoint"


def load_acoustic_model(path: str | Path, device: str | None = None) -> AcousticModel:
    """The model in `path`: an ONNX or TorchScript export of `asrkit export`, or a training checkpoint."""
    p = Path(path)
    if not p.is_file():  # a directory or a missing file: the checkpoint loader says which, in its words
        return AcousticModel.load(p, device)
    kind = model_kind(p)
    if kind == "onnx":
        return OnnxAcousticModel(p, device)
    if kind == "torchscript":
        return TorchScriptAcousticModel(p, device)
    return AcousticModel.load(p, device)
