"""A unidirectional model run chunk by chunk: features in, per-frame log-probabilities out, state carried.

Streamable: `rnn`, `lstm`, `gru` (one direction) and `dnn` (its ±context frames become a look-ahead of
`context` output frames), with the `none` or `stack` front-end, and a normalisation that needs no future
(`features.cmvn` none or global). The outputs equal the whole-recording run's, frame for frame, up to float
rounding: the stacked front-end waits for a full group of frames, the recurrence starts from the state the
previous chunk ended in, and the DNN's window is zero beyond the recording's edges as offline.
"""

from __future__ import annotations

import torch

from asrkit.errors import InputError
from asrkit.features import CMVN_PER_RECORDING, OnlineCMVN, normalize
from asrkit.models.dnn import DNNModel, splice
from asrkit.models.frontend import Identity, StackSubsample
from asrkit.models.recurrent import RecurrentModel


TRAIN_ONE = (
    "train a streamable one: a unidirectional model (rnn, lstm, gru, dnn) with the none or stack front-end and "
    "features.cmvn online, global or none, as recipes/digits_stream.yaml does"
)


def streamable_reason(am) -> str | None:
    """Why `am` (an AcousticModel) cannot stream, or None when it can."""
    model, name = am.model, am.config.get("name")
    if not isinstance(model, torch.nn.Module):
        return "an exported model runs whole recordings only; stream the training checkpoint (.pt) instead"
    if am.precomputed:
        return "this model reads precomputed features, not audio"
    if am.task != "ctc":
        return f"streaming transcribes CTC models; this one has a {am.task} head"
    if isinstance(model, RecurrentModel) and model.bidirectional:
        return f"{name} reads each recording backwards too, so no output is final before the end; {TRAIN_ONE}"
    if not isinstance(model, (RecurrentModel, DNNModel)):
        return f"model {name} cannot stream; {TRAIN_ONE}"
    if not isinstance(model.frontend, (Identity, StackSubsample)):
        return f"the {am.config.get('frontend')} front-end convolves over future frames; {TRAIN_ONE}"
    cmvn = am.cmvn
    if cmvn in CMVN_PER_RECORDING:
        return f"this model normalises features over the whole recording ({am.cmvn_setting}: {cmvn}); {TRAIN_ONE}"
    return None


class StreamingEncoder:
    """Push normalised feature frames, get the log-prob frames that are final; `finish()` flushes the rest."""

    def __init__(self, am):
        why = streamable_reason(am)
        if why:
            raise InputError(f"cannot stream: {why}")
        self.am = am
        self.model = am.model.eval()
        self.device = am.device
        self.subsample = int(getattr(self.model.frontend, "subsample", 1))
        self.context = self.model.context if isinstance(self.model, DNNModel) else 0
        self.is_dnn = isinstance(self.model, DNNModel)
        self._pending = None  # feature frames waiting for a full front-end group
        self._state = None  # recurrent state after the last frame processed
        self._ctx = None  # DNN: front-end frames kept for the window (context on each side)
        self._emitted = 0  # DNN: front-end frames already turned into outputs
        self._ctx_start = 0  # DNN: the absolute index of the buffer's first frame

    @torch.inference_mode()
    def push(self, feats: torch.Tensor) -> torch.Tensor:
        """(n, n_feats) normalised frames → (m, vocab) log-probs of the output frames completed by them."""
        x = feats if self._pending is None else torch.cat([self._pending, feats])
        k = (x.shape[0] // self.subsample) * self.subsample
        self._pending = x[k:]
        if k == 0:
            return self._empty()
        return self._step(x[:k])

    @torch.inference_mode()
    def finish(self) -> torch.Tensor:
        """The remaining outputs: a last partial front-end group (zero-padded as offline) and the DNN's look-ahead."""
        out = []
        if self._pending is not None and self._pending.shape[0]:
            out.append(self._step(self._pending))
            self._pending = None
        if self.is_dnn and self._ctx is not None:
            out.append(self._dnn_outputs(final=True))
        return torch.cat(out) if out else self._empty()

    def _step(self, x: torch.Tensor) -> torch.Tensor:
        n = torch.tensor([x.shape[0]], device=self.device)
        h, hl = self.model.frontend(x[None].to(self.device), n)
        if self.is_dnn:
            self._ctx = h[0] if self._ctx is None else torch.cat([self._ctx, h[0]])
            return self._dnn_outputs(final=False)
        y, self._state = self.model.rnn(h, hl, self._state)
        lp, _ = self.model.head(self.model.dropout(y), hl)
        return lp[0].float().cpu()

    def _dnn_outputs(self, final: bool) -> torch.Tensor:
        """Outputs for the front-end frames whose ±context window is complete (all of them when `final`)."""
        c, buf = self.context, self._ctx
        start = self._emitted - self._ctx_start  # the first frame still to output, as a position in the buffer
        ready = buf.shape[0] - start - (0 if final else c)
        if ready <= 0:
            return self._empty()
        lo = max(0, start - c)
        left = c - (start - lo)  # zeros before the recording's first frame, as offline
        right = start + ready + c - buf.shape[0]  # zeros after its last (only when final)
        seg = torch.nn.functional.pad(buf[lo : start + ready + c], (0, 0, left, right))
        n = torch.tensor([seg.shape[0]], device=self.device)
        y = self.model.mlp(splice(seg[None], n, c))[:, c : c + ready]
        lp, _ = self.model.head(y, torch.tensor([ready], device=self.device))
        self._emitted += ready
        keep = max(0, self._emitted - c - self._ctx_start)  # older frames are outside every future window
        self._ctx, self._ctx_start = buf[keep:], self._ctx_start + keep
        return lp[0].float().cpu()

    def _empty(self) -> torch.Tensor:
        return torch.zeros(0, len(self.am.tokenizer))


def normalizer(am):
    """The chunk-by-chunk normalisation of `am`'s features (online, global or none): none needs future frames."""
    mode, stats = am.cmvn, am.cmvn_stats
    if mode == "online":
        return OnlineCMVN(stats).push  # running statistics carried from chunk to chunk
    return lambda f: normalize(f, mode, stats)
