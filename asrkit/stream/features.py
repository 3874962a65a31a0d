"""Log-mel features computed chunk by chunk, frame for frame equal to the whole-recording extractor.

The offline extractor (asrkit.features.LogMel, torchaudio's centred STFT) reflects n_fft/2 samples at
each end of the recording. The left reflection is known once n_fft/2 + 1 samples have arrived, so each
frame is computed as soon as its window has arrived; the last few frames wait for the end of the stream,
where the right reflection is applied. Only the samples a future frame still needs are kept.
"""

from __future__ import annotations

import torch

from asrkit.features import LOG_FLOOR, LogMel


class StreamingLogMel:
    """Push samples, get the log-mel frames whose windows are complete; `finish()` gives the rest."""

    def __init__(self, extractor: LogMel):
        spec = extractor.mel.spectrogram
        self.extractor = extractor
        self.n_fft, self.hop = spec.n_fft, spec.hop_length
        self.half = self.n_fft // 2
        self._spec = spec
        self._mel_scale = extractor.mel.mel_scale
        self._buf = torch.zeros(0)  # the reflect-padded signal from frame `_next`'s first sample on
        self._head: torch.Tensor | None = None  # the first samples, until the left reflection can be built
        self._next = 0  # index of the next frame to compute
        self._seen = 0  # samples received
        self._last = torch.zeros(0)  # the last n_fft/2 + 1 samples received: the right reflection's source

    def _frames(self, padded: torch.Tensor, n: int) -> torch.Tensor:
        """Log-mels of the first `n` frames of an already padded signal (no centring: padding is explicit)."""
        s = self._spec
        x = padded[: (n - 1) * self.hop + self.n_fft]
        spec = (
            torch.stft(
                x,
                self.n_fft,
                self.hop,
                s.win_length,
                s.window,
                center=False,
                normalized=False,
                onesided=True,
                return_complex=True,
            )
            .abs()
            .pow(2.0)
        )
        return self.extractor.smooth(torch.log(self._mel_scale(spec) + LOG_FLOOR).transpose(-1, -2))

    def push(self, samples: torch.Tensor) -> torch.Tensor:
        """(n,) new samples → (frames, n_mels) features ready now (possibly none)."""
        samples = samples.float().reshape(-1)
        self._seen += samples.numel()
        self._last = torch.cat([self._last, samples])[-(self.half + 1) :]
        if self._head is not None or self._next == 0 and self._buf.numel() == 0:
            head = samples if self._head is None else torch.cat([self._head, samples])
            if head.numel() <= self.half:  # the left reflection needs n_fft/2 + 1 samples
                self._head = head
                return self._empty()
            self._head = None
            self._buf = torch.cat([head[1 : self.half + 1].flip(0), head])
        else:
            self._buf = torch.cat([self._buf, samples])
        n = (self._buf.numel() - self.n_fft) // self.hop + 1 if self._buf.numel() >= self.n_fft else 0
        if n <= 0:
            return self._empty()
        out = self._frames(self._buf, n)
        self._next += n
        self._buf = self._buf[n * self.hop :]
        return out

    def finish(self) -> torch.Tensor:
        """The frames that needed the end of the recording (its right reflection); the stream is then done."""
        total = self._seen // self.hop + 1  # the centred STFT's frame count
        if self._head is not None or self._next == 0 and self._buf.numel() == 0:
            # a recording of at most n_fft/2 samples: the offline extractor's own rules apply to all of it
            head = self._head if self._head is not None else torch.zeros(0)
            self._head = None
            return self.extractor(head) if head.numel() else self._empty()
        left = total - self._next
        if left <= 0:
            return self._empty()
        # the right reflection: the n_fft/2 samples before the last one, mirrored (torch.stft's reflect pad)
        padded = torch.cat([self._buf, self._last[:-1].flip(0)])
        out = self._frames(padded, left)
        self._next += left
        self._buf = torch.zeros(0)
        return out

    def _empty(self) -> torch.Tensor:
        return torch.zeros(0, self._mel_scale.fb.shape[1])
