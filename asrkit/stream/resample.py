"""Resampling a stream chunk by chunk with the same result as resampling the whole recording at once."""

from __future__ import annotations

import math

import numpy as np
import torch
import torchaudio

LOWPASS_WIDTH = 6  # torchaudio's default `lowpass_filter_width`, which bounds how far its sinc kernel reaches
ROLLOFF = 0.99  # torchaudio's default


class StreamResampler:
    """`torchaudio.functional.resample` of a stream, one chunk at a time: the concatenated outputs equal the whole
    recording's resampling (up to float rounding), at a delay of about `LOWPASS_WIDTH` input periods.

    torchaudio computes output block m (of `new // gcd` samples) from the input samples around m·(orig // gcd); a
    block is emitted once the input to its right edge has arrived, from a window with enough input to its left that
    its zero padding is never used except at the true start. `flush()` ends the stream as the whole-file resampling
    does (zeros beyond the end, `ceil(new · n / orig)` samples in all).
    """

    def __init__(self, orig: int, new: int, dtype: type = np.float32):
        g = math.gcd(orig, new)
        self.a, self.b = orig // g, new // g
        width = math.ceil(LOWPASS_WIDTH * self.a / (min(self.a, self.b) * ROLLOFF))
        self.reach = width + self.a  # input samples beyond a block's start that it reads
        self.context = math.ceil(width / self.a) * self.a  # input kept before the next block (a whole number of blocks)
        self._resample = torchaudio.transforms.Resample(
            orig, new, dtype=torch.float64 if dtype == np.float64 else torch.float32
        )
        self.buf = np.zeros(0, dtype=dtype)
        self.start = 0  # the global index of buf[0], always a multiple of a
        self.seen = 0  # input samples pushed
        self.next_block = 0

    def _blocks(self, end_block: int, final: bool) -> np.ndarray:
        first = self.next_block - self.start // self.a  # in the window's own block numbering
        y = self._resample(torch.from_numpy(self.buf)[None])[0].numpy()
        out = y[first * self.b : (end_block - self.start // self.a) * self.b] if not final else y[first * self.b :]
        self.next_block = end_block
        drop = max(0, end_block * self.a - self.context - self.start)
        self.buf, self.start = self.buf[drop:], self.start + drop
        return out

    def push(self, x: np.ndarray) -> np.ndarray:
        """Take the next chunk; return the output samples it completes (possibly none)."""
        self.buf = np.concatenate([self.buf, np.asarray(x, dtype=self.buf.dtype)])
        self.seen += len(x)
        ready = (self.seen - self.reach) // self.a + 1  # blocks whose whole input has arrived
        if ready <= self.next_block:
            return self.buf[:0]
        return self._blocks(ready, final=False)

    def flush(self) -> np.ndarray:
        """The rest of the output, the stream having ended."""
        total = math.ceil(self.b * self.seen / self.a)
        done = self.next_block * self.b
        if total <= done or not len(self.buf):
            return self.buf[:0]
        return self._blocks(self.next_block, final=True)[: total - done]
