"""A streaming recogniser: audio chunks in, partial transcripts as they change, the final one at the end.

Partials are the greedy reading of the frames so far (cheap, updated per chunk); the final transcript is
the same beam search `asrkit decode` runs, over the same log-probabilities, so it equals the offline one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from asrkit.config import DecodeOptions
from asrkit.decode.ctc import Hypothesis
from asrkit.decode.search import Decoder
from asrkit.stream.encoder import StreamingEncoder, normalizer
from asrkit.stream.features import StreamingLogMel


@dataclass
class StreamEvent:
    """A transcript at `audio_seconds` of audio received: a partial one, or the final one."""

    audio_seconds: float
    text: str
    final: bool = False


@dataclass
class StreamResult:
    """The final hypothesis (with word times), every event, and the processing time."""

    hypothesis: Hypothesis
    events: list[StreamEvent] = field(default_factory=list)
    audio_seconds: float = 0.0
    compute_seconds: float = 0.0

    @property
    def rtf(self) -> float:
        """Compute time per second of audio."""
        return self.compute_seconds / max(self.audio_seconds, 1e-9)

    def word_latencies(self) -> list[float]:
        """Per final word: audio time from the word's end to the first transcript that shows it whole (seconds)."""
        out = []
        for k, w in enumerate(self.hypothesis.words):
            for ev in self.events:
                got = ev.text.split()
                if ev.final or (len(got) > k and got[k] == w.label):
                    out.append(ev.audio_seconds - w.end)
                    break
        return out


class StreamingRecognizer:
    """Feed audio with `push(samples)` (the model's rate, mono); `finish()` returns the final hypothesis."""

    def __init__(self, am, beam: int | None = None, search: dict | None = None, options: DecodeOptions | None = None):
        """`options`: the final search's (beam, LM, lexicon, hotwords), checked and built here, before any audio; `beam`
        and `search` (fields of DecodeOptions) stand in for the settings they name. The partials are greedy."""
        self.am = am
        self.options = (options or DecodeOptions()).override(beam=beam, **(search or {}))
        self.decoder = Decoder(am.tokenizer, am.frame_shift, self.options)
        self.features = StreamingLogMel(am.extractor)
        self.norm = normalizer(am)
        self.encoder = StreamingEncoder(am)
        self.tok = am.tokenizer
        self._lps: list[torch.Tensor] = []
        self._tokens: list[int] = []
        self._last = self.tok.blank
        self._samples = 0
        self._compute = 0.0
        self.events: list[StreamEvent] = []

    @property
    def audio_seconds(self) -> float:
        return self._samples / self.am.sample_rate

    def push(self, samples: np.ndarray | torch.Tensor) -> StreamEvent | None:
        """Add samples; returns a partial event when the transcript changed."""
        t0 = time.perf_counter()
        x = torch.as_tensor(np.asarray(samples, dtype=np.float32)).reshape(-1)
        self._samples += x.numel()
        f = self.features.push(x)
        changed = False
        if f.shape[0]:
            changed = self._add(self.encoder.push(self.norm(f)))
        self._compute += time.perf_counter() - t0
        if not changed:
            return None
        ev = StreamEvent(self.audio_seconds, self.partial_text())
        self.events.append(ev)
        return ev

    def partial_text(self) -> str:
        return self.tok.decode(self._tokens).strip()

    def _add(self, lp: torch.Tensor) -> bool:
        if not lp.shape[0]:
            return False
        self._lps.append(lp)
        before = len(self._tokens)
        for k in lp.argmax(-1).tolist():
            if k != self._last and k != self.tok.blank:
                self._tokens.append(k)
            self._last = k
        return len(self._tokens) != before

    def finish(self) -> StreamResult:
        """Flush the features and the model, run the beam search over all frames, time the words."""
        t0 = time.perf_counter()
        f = self.features.finish()
        self._add(self.encoder.push(self.norm(f)) if f.shape[0] else torch.zeros(0, len(self.tok)))
        self._add(self.encoder.finish())
        lp = torch.cat(self._lps) if self._lps else torch.zeros(0, len(self.tok))
        if lp.shape[0]:  # the search, text and word times of `asrkit decode`, on the frames the stream gave
            best = self.decoder.decode([lp], with_times=True)[0][0]
        else:
            best = Hypothesis([], "", 0.0, [])
        self._compute += time.perf_counter() - t0
        self.events.append(StreamEvent(self.audio_seconds, best.text, final=True))
        self.log_probs = lp
        return StreamResult(best, list(self.events), self.audio_seconds, self._compute)
