"""Token and word timestamps from the Viterbi path, and CTM lines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asrkit.align.timing import Span, ctm_lines, timestamps, token_frames

SYMBOLS = ["<b>", " ", "a", "b", "c"]
BLANK, SPACE, A, B, C = range(5)


def peaky(path: list[int], peak: float = 0.9) -> torch.Tensor:
    """(T, 5) log-probs whose arg-max per frame is `path`."""
    p = np.full((len(path), len(SYMBOLS)), (1 - peak) / (len(SYMBOLS) - 1))
    p[np.arange(len(path)), path] = peak
    return torch.from_numpy(np.log(p).astype(np.float32))


def test_token_frames_follow_the_path():
    # 'a' fires on frames 1-2, 'b' on 4, the space on 6, 'c' on 7-9, 'a' on 11
    path = [BLANK, A, A, BLANK, B, BLANK, SPACE, C, C, C, BLANK, A]
    lp = peaky(path)
    assert token_frames(lp, [A, B, SPACE, C, A], BLANK) == [(1, 3), (4, 5), (6, 7), (7, 10), (11, 12)]


def test_repeated_tokens_get_separate_spans():
    lp = peaky([A, A, BLANK, A, BLANK])
    assert token_frames(lp, [A, A], BLANK) == [(0, 2), (3, 4)]


def test_words_in_seconds_with_confidence():
    path = [BLANK, A, A, BLANK, B, BLANK, SPACE, C, C, C, BLANK, A]
    toks, words = timestamps(peaky(path), [A, B, SPACE, C, A], SYMBOLS, BLANK, 0.02, SPACE)
    assert [t.label for t in toks] == ["a", "b", " ", "c", "a"]
    assert [(w.label, w.start, w.end) for w in words] == [
        ("ab", 0.02, 0.1),
        ("ca", pytest.approx(0.14), pytest.approx(0.24)),
    ]
    assert all(w.conf == pytest.approx(0.9, abs=1e-5) for w in words)
    # a less certain token lowers its word's confidence
    lp = peaky(path)
    lp[4] = torch.log(torch.tensor([0.3, 0.1, 0.1, 0.4, 0.1]))
    _, words = timestamps(lp, [A, B, SPACE, C, A], SYMBOLS, BLANK, 0.02, SPACE)
    assert words[0].conf == pytest.approx(0.4, abs=1e-5) and words[1].conf == pytest.approx(0.9, abs=1e-5)


def test_tokens_that_do_not_fit_give_no_times():
    lp = peaky([A, BLANK])
    assert timestamps(lp, [A, B, C], SYMBOLS, BLANK, 0.01, SPACE) == ([], [])
    assert timestamps(lp, [], SYMBOLS, BLANK, 0.01, SPACE) == ([], [])


def test_ctm_lines():
    words = [Span("ab", 0.02, 0.1, 0.91234), Span("c", 0.5, 0.5, 1.0)]
    assert ctm_lines("utt1", words) == ["utt1 1 0.020 0.080 ab 0.912", "utt1 1 0.500 0.000 c 1.000"]


def test_long_inputs_align_in_pieces_with_the_same_spans():
    # 40 words "ab" / "ca" separated by pauses of blanks: aligned whole and in pieces of <= 60 frames
    # cut in the pauses, the spans are the same
    rng = np.random.default_rng(0)
    path, tokens, anchors = [], [], []
    for w in range(40):
        word = [A, B] if w % 2 == 0 else [C, A]
        if w:
            path += [BLANK] * int(rng.integers(3, 9)) + [SPACE, BLANK]
            tokens.append(SPACE)
            anchors.append(len(path) - 2)
        for k in word:
            path += [k] * int(rng.integers(1, 3)) + [BLANK]
            tokens.append(k)
            anchors.append(len(path) - 2)
    lp = peaky(path, 0.7)
    whole = token_frames(lp, tokens, BLANK)
    assert len(whole) == len(tokens) and len(path) > 300
    pieces = token_frames(lp, tokens, BLANK, anchors=anchors, max_frames=60)
    assert pieces == whole
    # without anchors, the long input is aligned whole
    assert token_frames(lp, tokens, BLANK, max_frames=60) == whole
