"""One input convention for decoding and alignment: torch or NumPy, any strides, InputError for a bad shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asrkit.align import ctc_posteriors, forced_align
from asrkit.align.inputs import as_lengths, as_log_probs, frames_needed
from asrkit.align.timing import timestamps
from asrkit.decode import ctc_sequence_logprob, greedy_decode, prefix_beam_search, prefix_beam_search_batch
from asrkit.errors import InputError


def _log_probs(T: int, V: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(T, V, generator=g) * 3).log_softmax(-1)


def test_numpy_and_torch_decode_alike():
    lp = _log_probs(30, 6, seed=1)
    arr = lp.numpy()
    assert greedy_decode(arr) == greedy_decode(lp)
    assert prefix_beam_search(arr, 5) == prefix_beam_search(lp, 5)
    assert prefix_beam_search_batch(arr[None], np.array([20]), 5) == prefix_beam_search_batch(
        lp[None], torch.tensor([20]), 5
    )
    assert ctc_sequence_logprob(arr, [1, 2]) == ctc_sequence_logprob(lp, [1, 2])


def test_numpy_and_torch_align_alike():
    lp = _log_probs(30, 6, seed=2)
    targets = [1, 2, 2, 5]
    ll_t, g_t = ctc_posteriors(lp, targets)
    ll_n, g_n = ctc_posteriors(lp.numpy(), targets)
    assert torch.equal(ll_t, ll_n) and torch.equal(g_t, g_n)
    for a, b in zip(forced_align(lp, targets), forced_align(lp.numpy(), targets)):
        assert torch.equal(a, b)
    symbols = ["-", "a", "b", " ", "c", "d"]
    assert timestamps(lp.numpy(), targets, symbols, 0, 0.02, space=3) == timestamps(
        lp, targets, symbols, 0, 0.02, space=3
    )


def test_non_contiguous_inputs_align_and_decode_like_contiguous_ones():
    lp = _log_probs(40, 6, seed=3)
    transposed = lp.t().contiguous().t()  # same values, column-major
    assert not transposed.is_contiguous()
    targets = [1, 3, 3, 2]
    for a, b in zip(forced_align(transposed, targets), forced_align(lp, targets)):
        assert torch.equal(a, b)
    assert torch.equal(ctc_posteriors(transposed, targets)[1], ctc_posteriors(lp, targets)[1])
    reversed_np = np.ascontiguousarray(lp.numpy()[::-1])[::-1]  # negative strides
    assert reversed_np.strides[0] < 0
    assert prefix_beam_search(reversed_np, 4) == prefix_beam_search(lp, 4)
    assert torch.equal(forced_align(reversed_np, targets)[0], forced_align(lp, targets)[0])


@pytest.mark.parametrize(
    "call",
    [
        lambda x: forced_align(x, [1]),
        lambda x: ctc_posteriors(x, [1]),
        lambda x: prefix_beam_search(x),
        lambda x: greedy_decode(x),
    ],
)
def test_bad_shape_is_one_line_input_error(call):
    with pytest.raises(InputError) as info:
        call(np.zeros(7, np.float32))
    message = str(info.value)
    assert "got shape (7,)" in message and "\n" not in message
    assert isinstance(info.value, ValueError)  # callers' `except ValueError` keeps working


def test_as_log_probs_and_as_lengths_reject_what_they_cannot_read():
    assert as_log_probs(np.zeros((2, 3), np.int64)).dtype == torch.float32
    with pytest.raises(InputError, match="numbers"):
        as_log_probs(np.array([["a", "b"]]))
    with pytest.raises(InputError, match=r"must lie in \[0, 5\]"):
        as_lengths([6], 1, 5)
    with pytest.raises(InputError, match="integers"):
        as_lengths([1.5], 1, 5)


def test_frames_needed_counts_a_blank_between_repeats():
    assert int(frames_needed(torch.tensor([1, 1, 2, 2, 2]))) == 8
    assert int(frames_needed(torch.tensor([], dtype=torch.int64))) == 0
    padded = torch.tensor([[1, 1, 0], [2, 3, 3]])
    assert frames_needed(padded, torch.tensor([1, 3])).tolist() == [1, 4]
    with pytest.raises(InputError, match="cannot align"):
        forced_align(_log_probs(3, 4, seed=4), [1, 1, 2])
    assert ctc_posteriors(_log_probs(3, 4, seed=4), [1, 1, 2])[0].item() == float("-inf")
