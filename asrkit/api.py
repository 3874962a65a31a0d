"""The Python API: `asrkit.load(checkpoint)` gives a `Recognizer` that transcribes, aligns and classifies.

>>> import asrkit
>>> rec = asrkit.load(checkpoint)                      # a checkpoint written by `asrkit train`
>>> hyp = rec.transcribe(wav, sample_rate=8000)        # a file path, or samples with their rate
>>> hyp.text == " ".join(w.label for w in hyp.words)   # word timestamps in seconds come with it
True
>>> all(0 <= w.start < w.end <= len(wav) / 8000 + rec.frame_shift for w in hyp.words)
True

The Recognizer is a thin wrapper: its search is `asrkit.decode.search.Decoder`, which `asrkit decode` and streaming
run too, so a transcript from Python equals the command's; its settings are one `DecodeOptions`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from asrkit.align.timing import Span, spans_from_frames
from asrkit.align.utt import align_utterance, encode_transcript
from asrkit.audio import check_samples, resample
from asrkit.config import DecodeOptions
from asrkit.decode.chunked import batch_log_probs
from asrkit.decode.ctc import Hypothesis
from asrkit.decode.search import Decoder, rank_labels
from asrkit.errors import InputError
from asrkit.models.acoustic import AcousticModel
from asrkit.models.choice import pick_model

Audio = Union[str, Path, np.ndarray, torch.Tensor]
"""A file path (any format soundfile reads; resampled to the model's rate), or mono samples with their rate."""


@dataclass
class Classification:
    """The best label of a classifier, its probability, and the `top` labels with theirs (best first)."""

    label: str
    probability: float
    top: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Alignment:
    """A forced alignment: the transcript's tokens and words with start/end seconds and confidences."""

    text: str
    tokens: list[Span]
    words: list[Span]
    log_likelihood: float

    @property
    def feasible(self) -> bool:
        """False when the audio is too short to hold the transcript (no path exists)."""
        return math.isfinite(self.log_likelihood)


class Recognizer:
    """A trained model with its tokenizer, features and decoders, loaded from one checkpoint.

    >>> rec = asrkit.load(checkpoint)
    >>> rec.task, rec.sample_rate
    ('ctc', 8000)
    >>> lp = rec.log_probs(wav, sample_rate=8000)        # (frames, vocabulary) log-probabilities
    >>> lp.shape[1] == len(rec.tokenizer)
    True
    """

    def __init__(self, model, path: str | Path | None = None):
        if not isinstance(model, AcousticModel):
            raise TypeError("Recognizer wraps an asrkit.models.acoustic.AcousticModel; use asrkit.load(path)")
        self.model = model
        self.path = Path(path) if path is not None else None
        self.decoder = Decoder(model.tokenizer, model.frame_shift)  # the search, with the LMs and lexicons it has built

    def __repr__(self) -> str:
        return f"Recognizer({self.path or 'in memory'}, task={self.task!r}, vocabulary={len(self.tokenizer)})"

    @property
    def tokenizer(self):
        return self.model.tokenizer

    @property
    def task(self) -> str:
        """`ctc`, `classifier` or `frame` (the model's head)."""
        return self.model.task

    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate

    @property
    def frame_shift(self) -> float:
        """Seconds per output frame (the feature hop times the model's subsampling)."""
        return self.model.frame_shift

    # ---- inputs ------------------------------------------------------------------------------------------

    def features(self, audio: Audio, sample_rate: int | None = None, cmvn: str | None = None) -> torch.Tensor:
        """Normalised (frames, dims) features of one input: a path, or mono samples at `sample_rate`; `cmvn`: another
        normalisation than the model's (a features.cmvn mode)."""
        if isinstance(audio, (str, Path)):
            if sample_rate is not None:
                raise InputError("sample_rate is for sample arrays; a file says its own rate")
            p = Path(audio)
            if p.is_dir():
                raise InputError(
                    f"{p} is a folder: give one audio file or samples, a list of them, "
                    f"or decode the folder with `asrkit decode {p}`"
                )
            if p.suffix == ".npy":
                return self.model.item_features(None, str(p), cmvn)
            return self.model.item_features(str(p), None, cmvn)
        return self.model.features(self._samples(audio, sample_rate), cmvn)

    def _samples(self, audio: np.ndarray | torch.Tensor, sample_rate: int | None) -> torch.Tensor:
        if sample_rate is None:
            raise InputError("give the sample_rate of a sample array (asrkit resamples to the model's rate)")
        if sample_rate <= 0:
            raise InputError(f"sample_rate must be positive, got {sample_rate}")
        wav = torch.as_tensor(
            np.asarray(audio, dtype=np.float32) if not isinstance(audio, torch.Tensor) else audio
        ).float()
        if wav.ndim == 2:  # (samples, channels) as soundfile reads, or (channels, samples) as torchaudio does
            wav = wav.mean(1) if wav.shape[0] > wav.shape[1] else wav.mean(0)
        if wav.ndim != 1:
            raise InputError(f"audio samples must be 1-D (or 2-D with channels), got shape {tuple(wav.shape)}")
        if wav.numel() == 0:
            raise InputError("the audio holds no samples")
        check_samples(wav.detach().cpu().numpy(), int(sample_rate), "the audio")
        return resample(wav, int(sample_rate), self.sample_rate) if sample_rate != self.sample_rate else wav

    def log_probs(
        self, audio: Audio, sample_rate: int | None = None, chunk_seconds: float = DecodeOptions.chunk_seconds
    ) -> torch.Tensor:
        """(frames, vocabulary) log-probabilities of one input; long inputs run in overlapping windows."""
        return self.log_probs_features([self.features(audio, sample_rate)], chunk_seconds)[0]

    def log_probs_features(
        self, feats: Sequence[torch.Tensor], chunk_seconds: float = DecodeOptions.chunk_seconds, vtln: bool = False
    ) -> list[torch.Tensor]:
        """Per-input log-probabilities of normalised features, as one batch; a long input runs chunked.
        `vtln`: each input read under its most probable frequency warp (`asrkit.decode.vtln`)."""
        return batch_log_probs(self.model, feats, chunk_seconds, vtln)

    # ---- transcribe --------------------------------------------------------------------------------------

    def transcribe(
        self,
        audio: Audio | Sequence[Audio],
        sample_rate: int | None = None,
        beam: int | None = None,
        lm: str | Path | None = None,
        alpha: float | None = None,
        beta: float | None = None,
        lexicon: str | Path | None = None,
        nbest: int | None = None,
        vtln: bool | None = None,
        options: DecodeOptions | None = None,
    ) -> Hypothesis | list[Hypothesis]:
        """Transcribe one input (→ a `Hypothesis`) or a list of inputs (→ a list, decoded as one batch).

        The hypothesis carries `tokens`, `text`, `score` (log), `timesteps` (each token's emission frame)
        and `words`: `Span(label, start, end, conf)` with times in seconds. `beam` 1 is greedy;
        `lm` fuses a word n-gram (ARPA or KenLM binary) with weight `alpha` and word bonus `beta`;
        `lexicon` (a word list or manifest) restricts the words. `nbest` > 1 returns, per input, the
        list of the best `nbest` hypotheses instead. `vtln`: read each input under its most probable
        frequency warp (for voices the model never heard; one model pass per warp, `asrkit.decode.vtln`).
        `options`: all the settings as one `DecodeOptions` (the keywords given take precedence; the rest
        default as `DecodeOptions()` does).

        >>> best = rec.transcribe(wav, sample_rate=8000, beam=10)
        >>> greedy = rec.transcribe(wav, sample_rate=8000, beam=1)
        >>> best.score >= greedy.score                     # the beam never scores below the greedy path
        True
        """
        if self.task != "ctc":
            raise InputError(f"transcribe() decodes CTC models; this one has a {self.task} head (use classify())")
        o = (options or DecodeOptions()).override(
            beam=beam, lm=lm, alpha=alpha, beta=beta, lexicon=lexicon, nbest=nbest, vtln=vtln
        )
        o.check()
        many = isinstance(audio, (list, tuple))
        items = list(audio) if many else [audio]
        feats = [self.features(a, sample_rate, o.cmvn) for a in items]
        nbests = self.decoder.decode(
            self.log_probs_features(feats, o.chunk_seconds, o.vtln), with_times=True, options=o
        )
        out = [h[: max(1, o.nbest)] if o.nbest > 1 else h[0] for h in nbests]
        return out if many else out[0]

    def decode_features(
        self,
        feats: Sequence[torch.Tensor],
        options: DecodeOptions | None = None,
        with_times: bool = False,
        log_probs: Sequence[torch.Tensor] | None = None,
        **settings: Any,
    ) -> list[list[Hypothesis]]:
        """N-best lists (best first, with text) for a batch of normalised features; `with_times` adds word spans.

        `log_probs`: the model's outputs when already computed (then `feats` is not run again); `settings`: fields of
        `DecodeOptions` (beam=..., lexicon=...) in place of `options`'. The search is `asrkit.decode.search.Decoder`'s,
        which `asrkit decode` and streaming run too.
        """
        o = (options or DecodeOptions()).override(**settings).check()
        lps = list(log_probs) if log_probs is not None else self.log_probs_features(feats, o.chunk_seconds, o.vtln)
        return self.decoder.decode(lps, with_times, o)

    # ---- align ---------------------------------------------------------------------------------------------

    def align(self, audio: Audio, text: str, sample_rate: int | None = None) -> Alignment:
        """Force-align `text` to the audio: its tokens and words with times (seconds) and confidences.

        >>> hyp = rec.transcribe(wav, sample_rate=8000)
        >>> a = rec.align(wav, hyp.text, sample_rate=8000)   # the transcript the model itself gave
        >>> [w.label for w in a.words] == hyp.text.split()
        True
        """
        return self.align_features(self.features(audio, sample_rate), text)

    def align_features(self, feats: torch.Tensor, text: str, utt_id: str = "input") -> Alignment:
        """`align` on normalised features (what `asrkit align` runs per utterance)."""
        if self.task != "ctc":
            raise InputError(f"align() needs a CTC model; this one has a {self.task} head")
        norm, tokens = encode_transcript(self.tokenizer, text, utt_id)
        ua = align_utterance(self.model, utt_id, tokens, feats, norm)
        if not ua.feasible:
            return Alignment(norm, [], [], float("-inf"))
        tok = self.tokenizer
        lp = ua.log_probs if ua.log_probs is not None else self.log_probs_features([feats])[0]
        toks, words = spans_from_frames(lp, tokens, ua.token_frames(), tok.symbols, self.frame_shift, tok.space)
        return Alignment(norm, toks, words, float(ua.loglik))

    # ---- classify ------------------------------------------------------------------------------------------

    def classify(
        self, audio: Audio | Sequence[Audio], sample_rate: int | None = None, top: int = 5
    ) -> Classification | list[Classification]:
        """The label of one input (→ `Classification`) or of a list of inputs (→ a list), from a classifier model."""
        if self.task != "classifier":
            raise InputError(f"classify() needs a classifier model; this one has a {self.task} head (use transcribe())")
        many = isinstance(audio, (list, tuple))
        items = list(audio) if many else [audio]
        out = []
        for ranked in self.classify_features([self.features(a, sample_rate) for a in items], top):
            probs = [(label, math.exp(lp)) for label, lp in ranked]
            out.append(Classification(probs[0][0], probs[0][1], probs))
        return out if many else out[0]

    def classify_features(self, feats: Sequence[torch.Tensor], top: int = 5) -> list[list[tuple[str, float]]]:
        """Per input, the `top` (label, log-probability) pairs, best first, for normalised features (one batch)."""
        if self.task != "classifier":
            raise InputError(f"classify() needs a classifier model; this one has a {self.task} head (use transcribe())")
        return rank_labels(self.model, feats, top)


def load(path: str | Path | None = None, device: str | None = None) -> Recognizer:
    """A `Recognizer` for a checkpoint of `asrkit train` (None: $ASRKIT_MODEL, else the newest exp/*/best.pt of a run
    that is not still training; it says which on stderr).

    `device`: "cpu", "cuda", ...; by default CUDA when present.
    """
    p, why, am = pick_model(path, reads_audio=False, device=device)
    if why:
        print(f"asrkit.load: using {p} ({why})", file=sys.stderr)
    return Recognizer(am, p)
