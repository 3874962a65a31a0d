"""A trained acoustic model loaded from a self-contained checkpoint: audio in, log-probabilities out."""

from __future__ import annotations

from pathlib import Path

import torch

from asrkit.features import make_extractor, normalize
from asrkit.models import build_model
from asrkit.text import tokenizer_from_dict


class AcousticModel:
    """Model + tokenizer + feature pipeline + CMVN, all from one checkpoint."""

    def __init__(self, state: dict, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.config = state["model_config"]
        self.tokenizer = tokenizer_from_dict(state["tokenizer"])
        self.feature_settings = state["features"]
        self.cmvn_stats = state.get("cmvn")
        self.sample_rate = int(self.feature_settings["sample_rate"])
        self.frame_shift = self.feature_settings["hop_ms"] / 1000 * self.config.get("subsample", 1)
        self.model = build_model(self.config)
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as e:
            from asrkit.errors import InputError

            raise InputError(f"checkpoint weights do not fit its model config: {str(e).splitlines()[0]}") from None
        self.model.to(self.device).eval()
        self.task: str = getattr(self.model, "task", "ctc")
        self.extractor = make_extractor(self.feature_settings)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> AcousticModel:
        from asrkit.train.checkpoint import load_checkpoint

        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return cls(load_checkpoint(path, "cpu"), dev)

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        """(samples,) at the model's rate → normalised (frames, n_mels)."""
        with torch.inference_mode():
            return normalize(self.extractor(wav), self.feature_settings["cmvn"], self.cmvn_stats)

    @torch.inference_mode()
    def log_probs(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per-utterance (frames', vocab) log-probabilities for a list of feature matrices, run as one batch."""
        if not feats:
            return []
        x = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True).to(self.device)
        lengths = torch.tensor([f.shape[0] for f in feats], device=self.device)
        lp, out_len = self.model(x, lengths)
        lp = lp.float().cpu()
        return [lp[i, : int(n)] for i, n in enumerate(out_len.tolist())]

    @torch.inference_mode()
    def classify(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per-utterance class log-probabilities (V,) from a classifier checkpoint, run as one batch."""
        if self.task != "classifier":
            raise ValueError("classify() needs a classifier checkpoint")
        if not feats:
            return []
        x = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True).to(self.device)
        lengths = torch.tensor([f.shape[0] for f in feats], device=self.device)
        lp, _ = self.model(x, lengths)
        return list(lp.float().cpu())
