"""The Python API: `asrkit.load(checkpoint)` gives a `Recognizer` that transcribes, aligns and classifies.

>>> import asrkit
>>> rec = asrkit.load(checkpoint)                      # a checkpoint written by `asrkit train`
>>> hyp = rec.transcribe(wav, sample_rate=8000)        # a file path, or samples with their rate
>>> hyp.text == " ".join(w.label for w in hyp.words)   # word timestamps in seconds come with it
True
>>> all(0 <= w.start < w.end <= len(wav) / 8000 + rec.frame_shift for w in hyp.words)
True

The CLI's `asrkit decode` and `asrkit align` run on the same functions (`Recognizer.decode_features`,
`Recognizer.align_features`), so a transcript from Python equals the command's.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np
import torch

from asrkit.decode.ctc import Hypothesis, Lexicon
from asrkit.align.timing import Span
from asrkit.errors import InputError

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
        from asrkit.models.acoustic import AcousticModel

        if not isinstance(model, AcousticModel):
            raise TypeError("Recognizer wraps an asrkit.models.acoustic.AcousticModel; use asrkit.load(path)")
        self.model = model
        self.path = Path(path) if path is not None else None
        self._lm_cache: dict[tuple, object] = {}
        self._lexicon_cache: dict[str, Lexicon] = {}

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

    def features(self, audio: Audio, sample_rate: int | None = None) -> torch.Tensor:
        """Normalised (frames, dims) features of one input: a path, or mono samples at `sample_rate`."""
        if isinstance(audio, (str, Path)):
            if sample_rate is not None:
                raise InputError("sample_rate is for sample arrays; a file says its own rate")
            p = Path(audio)
            if p.is_dir():
                raise InputError(f"{p} is a folder: give one audio file or samples, a list of them, "
                                 f"or decode the folder with `asrkit decode {p}`")
            if p.suffix == ".npy":
                return self.model.item_features(None, str(p))
            return self.model.item_features(str(p), None)
        return self.model.features(self._samples(audio, sample_rate))

    def _samples(self, audio: np.ndarray | torch.Tensor, sample_rate: int | None) -> torch.Tensor:
        from asrkit.audio import check_samples, resample

        if sample_rate is None:
            raise InputError("give the sample_rate of a sample array (asrkit resamples to the model's rate)")
        if sample_rate <= 0:
            raise InputError(f"sample_rate must be positive, got {sample_rate}")
        wav = torch.as_tensor(np.asarray(audio, dtype=np.float32) if not isinstance(audio, torch.Tensor) else audio).float()
        if wav.ndim == 2:  # (samples, channels) as soundfile reads, or (channels, samples) as torchaudio does
            wav = wav.mean(1) if wav.shape[0] > wav.shape[1] else wav.mean(0)
        if wav.ndim != 1:
            raise InputError(f"audio samples must be 1-D (or 2-D with channels), got shape {tuple(wav.shape)}")
        if wav.numel() == 0:
            raise InputError("the audio holds no samples")
        check_samples(wav.detach().cpu().numpy(), int(sample_rate), "the audio")
        return resample(wav, int(sample_rate), self.sample_rate) if sample_rate != self.sample_rate else wav

    def log_probs(self, audio: Audio, sample_rate: int | None = None, chunk_seconds: float = 20.0) -> torch.Tensor:
        """(frames, vocabulary) log-probabilities of one input; long inputs run in overlapping windows."""
        return self.log_probs_features([self.features(audio, sample_rate)], chunk_seconds)[0]

    def log_probs_features(self, feats: Sequence[torch.Tensor], chunk_seconds: float = 20.0, vtln: bool = False) -> list[torch.Tensor]:
        """Per-input log-probabilities of normalised features, as one batch; a long input runs chunked.
        `vtln`: each input read under its most probable frequency warp (`asrkit.decode.vtln`)."""
        from asrkit.decode.chunked import chunked_log_probs

        if vtln:
            from asrkit.decode.vtln import vtln_log_probs

            return vtln_log_probs(lambda f: self.log_probs_features(f, chunk_seconds), feats, self.model.feature_settings)[0]
        hop = self.model.feature_settings["hop_ms"] / 1000
        if any(f.shape[0] * hop > chunk_seconds for f in feats):
            # a long recording: overlapping windows through the model, their centres stitched (bounded memory)
            return [chunked_log_probs(self.model, f, chunk_seconds, min(2.0, chunk_seconds / 8)) for f in feats]
        return self.model.log_probs(list(feats))

    # ---- transcribe --------------------------------------------------------------------------------------

    def transcribe(
        self,
        audio: Audio | Sequence[Audio],
        sample_rate: int | None = None,
        beam: int = 10,
        lm: str | Path | None = None,
        alpha: float = 0.5,
        beta: float = 1.0,
        lexicon: str | Path | None = None,
        nbest: int = 1,
        vtln: bool = False,
    ) -> Hypothesis | list[Hypothesis]:
        """Transcribe one input (→ a `Hypothesis`) or a list of inputs (→ a list, decoded as one batch).

        The hypothesis carries `tokens`, `text`, `score` (log), `timesteps` (each token's emission frame)
        and `words`: `Span(label, start, end, conf)` with times in seconds. `beam` 1 is greedy;
        `lm` fuses a word n-gram (ARPA or KenLM binary) with weight `alpha` and word bonus `beta`;
        `lexicon` (a word list or manifest) restricts the words. `nbest` > 1 returns, per input, the
        list of the best `nbest` hypotheses instead. `vtln`: read each input under its most probable
        frequency warp (for voices the model never heard; one model pass per warp, `asrkit.decode.vtln`).

        >>> best = rec.transcribe(wav, sample_rate=8000, beam=10)
        >>> greedy = rec.transcribe(wav, sample_rate=8000, beam=1)
        >>> best.score >= greedy.score                     # the beam never scores below the greedy path
        True
        """
        if self.task != "ctc":
            raise InputError(f"transcribe() decodes CTC models; this one has a {self.task} head (use classify())")
        many = isinstance(audio, (list, tuple))
        items = list(audio) if many else [audio]
        feats = [self.features(a, sample_rate) for a in items]
        nbests = self.decode_features(feats, beam=beam, lm=lm, alpha=alpha, beta=beta, lexicon=lexicon, with_times=True, vtln=vtln)
        out = [h[: max(1, nbest)] if nbest > 1 else h[0] for h in nbests]
        return out if many else out[0]

    def decode_features(
        self,
        feats: Sequence[torch.Tensor],
        beam: int = 10,
        lm: str | Path | None = None,
        alpha: float = 0.5,
        beta: float = 1.0,
        lexicon: str | Path | Lexicon | None = None,
        with_times: bool = False,
        log_probs: Sequence[torch.Tensor] | None = None,
        hotwords: Sequence[str] | None = None,
        hotword_weight: float = 10.0,
        workers: int = 0,
        vtln: bool = False,
    ) -> list[list[Hypothesis]]:
        """N-best lists (best first, with text) for a batch of normalised features; `with_times` adds word spans.

        `log_probs`: the model's outputs when already computed (then `feats` is not run again); `hotwords`,
        `hotword_weight` and `workers` (processes) go to the LM beam search; `vtln` as in `transcribe`.
        """
        from asrkit.align.timing import timestamps

        if lm is not None and lexicon is not None:
            raise InputError("an LM and a lexicon both restrict the words: give one of them")
        lps = list(log_probs) if log_probs is not None else self.log_probs_features(feats, vtln=vtln)
        if not lps:
            return []
        tok = self.tokenizer
        if lm is not None:
            nbests = self._lm(lm, alpha, beta, beam, tuple(hotwords or ()), hotword_weight).decode_batch([lp.numpy() for lp in lps], workers)
        else:
            nbests = self._beam(lps, beam, self._lexicon(lexicon))
        space = getattr(tok, "index", {}).get(" ")
        for lp, hyps in zip(lps, nbests):
            for h in hyps:
                if lm is None:  # the LM's hypotheses come with their text
                    h.text = tok.decode(h.tokens).strip()
            if with_times:
                best = hyps[0]
                best.token_spans, best.words = timestamps(lp, best.tokens, tok.symbols, tok.blank, self.frame_shift, space, best.timesteps)
        return nbests

    def _beam(self, lps: list[torch.Tensor], beam: int, lex: Lexicon | None) -> list[list[Hypothesis]]:
        from asrkit.decode.beam import prefix_beam_search_batch

        if beam < 1:
            raise InputError(f"beam must be at least 1, got {beam}")
        V = lps[0].shape[1]
        lengths = np.array([lp.shape[0] for lp in lps], np.int64)
        padded = np.zeros((len(lps), int(lengths.max()), V), np.float32)
        for i, lp in enumerate(lps):
            padded[i, : lp.shape[0]] = lp.numpy()
        # greedy decoding cannot honour a lexicon: beam 1 searches with beam 2 then
        return prefix_beam_search_batch(padded, lengths, max(beam, 2) if lex is not None else beam, self.tokenizer.blank, lexicon=lex)

    def _lexicon(self, lexicon: str | Path | Lexicon | None) -> Lexicon | None:
        if lexicon is None or isinstance(lexicon, Lexicon):
            return lexicon
        key = str(lexicon)
        if key not in self._lexicon_cache:
            from asrkit.decode.lexicon import load_lexicon

            self._lexicon_cache[key] = load_lexicon(lexicon, self.tokenizer)
        return self._lexicon_cache[key]

    def _lm(self, lm: str | Path, alpha: float, beta: float, beam: int, hotwords: tuple[str, ...] = (), hotword_weight: float = 10.0):
        key = (str(lm), alpha, beta, beam, hotwords, hotword_weight)
        if key not in self._lm_cache:
            from asrkit.decode.lm import LMDecoder

            if self.task != "ctc":
                raise InputError(f"an LM decodes CTC outputs; this model has a {self.task} head")
            if not Path(lm).is_file():
                raise InputError(f"language model {lm} not found")
            words = list(hotwords) or None
            self._lm_cache[key] = LMDecoder(self.tokenizer, lm, alpha, beta, words, hotword_weight, max(beam, 1), self.tokenizer.blank)
        return self._lm_cache[key]

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
        from asrkit.align.utt import align_utterance, encode_transcript
        from asrkit.align.timing import spans_from_frames

        if self.task != "ctc":
            raise InputError(f"align() needs a CTC model; this one has a {self.task} head")
        norm, tokens = encode_transcript(self.tokenizer, text, utt_id)
        ua = align_utterance(self.model, utt_id, tokens, feats, norm)
        if not ua.feasible:
            return Alignment(norm, [], [], float("-inf"))
        tok = self.tokenizer
        lp = ua.log_probs if ua.log_probs is not None else self.log_probs_features([feats])[0]
        toks, words = spans_from_frames(lp, tokens, ua.token_frames(), tok.symbols, self.frame_shift, getattr(tok, "index", {}).get(" "))
        return Alignment(norm, toks, words, float(ua.loglik))

    # ---- classify ------------------------------------------------------------------------------------------

    def classify(self, audio: Audio | Sequence[Audio], sample_rate: int | None = None, top: int = 5) -> Classification | list[Classification]:
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
        out = []
        for lp in self.model.classify(list(feats)):
            order = lp.argsort(descending=True)[: max(1, top)].tolist()
            out.append([(self.tokenizer.symbols[k], float(lp[k])) for k in order])
        return out


def load(path: str | Path | None = None, device: str | None = None) -> Recognizer:
    """A `Recognizer` for a checkpoint of `asrkit train` (None: $ASRKIT_MODEL, else the newest exp/*/best.pt of a run
    that is not still training; it says which on stderr).

    `device`: "cpu", "cuda", ...; by default CUDA when present.
    """
    from asrkit.models.choice import pick_model

    p, why, am = pick_model(path, reads_audio=False, device=device)
    if why:
        print(f"asrkit.load: using {p} ({why})", file=sys.stderr)
    return Recognizer(am, p)
