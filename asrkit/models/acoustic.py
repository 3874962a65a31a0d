"""A trained acoustic model loaded from a self-contained checkpoint: audio in, log-probabilities out."""

from __future__ import annotations

from pathlib import Path

import torch

from asrkit.audio import load_audio
from asrkit.data.featfile import read_npy_features
from asrkit.errors import InputError
from asrkit.features import CMVN_WITH_STATS, make_extractor, normalize
from asrkit.models import build_model
from asrkit.models.checkpoint import load_checkpoint
from asrkit.text import tokenizer_from_dict


class AcousticModel:
    """Model + tokenizer + feature pipeline + CMVN, all from one checkpoint."""

    def __init__(self, state: dict, device: torch.device | str = "cpu"):
        self._read_settings(state, device)
        n_out = self.config.get("n_tokens")
        if n_out != len(self.tokenizer):
            raise InputError(
                f"its vocabulary has {len(self.tokenizer)} symbols but its model has {n_out} outputs; it mixes two runs"
            )
        self.model = build_model(self.config)
        # the front-end knows its true rate (`none` never subsamples, whatever the config says)
        self.subsample = int(
            getattr(getattr(self.model, "frontend", None), "subsample", self.config.get("subsample", 1))
        )
        self.frame_shift = self.feature_settings["hop_ms"] / 1000 * self.subsample
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as e:
            raise InputError(f"checkpoint weights do not fit its model config: {str(e).splitlines()[0]}") from None
        self.model.to(self.device).eval()
        self.task: str = getattr(self.model, "task", "ctc")

    def _read_settings(self, meta: dict, device: torch.device | str) -> None:
        """What every acoustic model takes from its checkpoint or export metadata: device, model config, vocabulary,
        feature settings (and the extractor they make), CMVN statistics."""
        self.device = torch.device(device)
        self.config = meta["model_config"]
        self.tokenizer = tokenizer_from_dict(meta["tokenizer"])
        self.feature_settings = meta["features"]
        self.cmvn_stats = meta.get("cmvn")
        self.recipe: dict = (
            meta.get("recipe") or {}
        )  # the recipe it was trained with (its `decode:` section: decoding's defaults)
        # how inputs are read: the trained recipe's `decode.cmvn` where it names one, else as the model was trained
        read = (self.recipe.get("decode") or {}).get("cmvn")
        self.cmvn: str = read or self.feature_settings["cmvn"]
        self.cmvn_setting = "decode.cmvn" if read else "features.cmvn"  # the recipe setting that names `cmvn`
        self.sample_rate = int(self.feature_settings["sample_rate"])
        self.precomputed = self.feature_settings.get("type") == "precomputed"
        self.extractor = None if self.precomputed else make_extractor(self.feature_settings)

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> AcousticModel:
        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        state = load_checkpoint(path, "cpu")
        try:
            return cls(state, dev)
        except InputError as e:
            raise InputError(f"{path}: {e}") from None
        except (
            KeyError,
            TypeError,
            ValueError,
            AttributeError,
        ) as e:  # a model config, vocabulary or feature settings asrkit did not write
            raise InputError(
                f"{path}: the checkpoint's model config, vocabulary or feature settings are incomplete ({type(e).__name__}: {e})"
            ) from None

    def check_cmvn(self, cmvn: str | None) -> str:
        """The normalisation to read inputs with: `cmvn`, or None for the model's own (`self.cmvn`); refused where the
        checkpoint lacks the training statistics it needs."""
        mode = cmvn or self.cmvn
        if mode in CMVN_WITH_STATS and self.cmvn_stats is None:
            raise InputError(
                f"cmvn {mode} needs the training set's statistics; this model was trained with cmvn "
                f"{self.feature_settings['cmvn']} and has none"
            )
        return mode

    def features(self, wav: torch.Tensor, cmvn: str | None = None) -> torch.Tensor:
        """(samples,) at the model's rate → normalised (frames, n_mels); `cmvn`: another normalisation than the model's."""
        if self.extractor is None:
            raise InputError(
                "this model was trained on precomputed features: give it .npy features or a feature manifest, not audio"
            )
        mode = self.check_cmvn(cmvn)
        with torch.inference_mode():
            return normalize(self.extractor(wav), mode, self.cmvn_stats)

    def item_features(self, audio: str | None, features: str | None, cmvn: str | None = None) -> torch.Tensor:
        """Normalised features of one input: computed from its audio, or read from its precomputed .npy."""
        if features is not None and (self.precomputed or audio is None):
            mode = self.check_cmvn(cmvn)
            with torch.inference_mode():
                f = read_npy_features(features, int(self.feature_settings["n_mels"]))
                return normalize(f, mode, self.cmvn_stats)
        if audio is None:
            raise InputError("an input has features but this model computes its own from audio")

        return self.features(load_audio(audio, self.sample_rate), cmvn)

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
