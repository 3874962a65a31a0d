"""asrkit.data.loader: the feature dataset, the duration-bucketing batch sampler, and the padding collate."""

from __future__ import annotations

import random

import pytest
import torch

from asrkit.config import SpecAugmentConfig
from asrkit.data.loader import BucketBatchSampler, FeatureDataset, collate, padded_width
from asrkit.data.manifest import Utterance
from asrkit.errors import InputError
from asrkit.features import utterance_cmvn
from asrkit.text import CharTokenizer


def _lengths(n: int = 200, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(20, 600) for _ in range(n)]


@pytest.mark.parametrize("max_frames", [600, 1500, 5000])
@pytest.mark.parametrize("shuffle", [True, False])
def test_every_index_once_and_padded_size_bounded(max_frames, shuffle):
    lengths = _lengths()
    s = BucketBatchSampler(lengths, max_frames=max_frames, shuffle=shuffle, seed=3)
    for epoch in range(3):
        s.set_epoch(epoch)
        batches = list(s)
        flat = [i for b in batches for i in b]
        assert sorted(flat) == list(range(len(lengths)))
        assert len(s) == len(batches)
        for b in batches:
            assert b
            if len(b) > 1:
                assert max(lengths[i] for i in b) * len(b) <= max_frames


def test_items_longer_than_budget_go_alone():
    lengths = [10, 10, 500, 10, 700]
    batches = list(BucketBatchSampler(lengths, max_frames=100, shuffle=False))
    assert [2] in batches and [4] in batches
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3, 4]
    assert sorted(sorted(b) for b in batches if len(b) > 1) == [[0, 1, 3]]


def test_batches_group_similar_lengths():
    lengths = [100] * 10 + [10] * 10
    batches = list(BucketBatchSampler(lengths, max_frames=200, seed=0))
    for b in batches:
        assert len({lengths[i] for i in b}) == 1  # no mixing of short and long
    assert sorted(len(b) for b in batches) == [2, 2, 2, 2, 2, 10]


def test_unshuffled_order_is_by_length():
    lengths = _lengths(50)
    batches = list(BucketBatchSampler(lengths, max_frames=2000, shuffle=False))
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat)


def test_epochs_differ_same_epoch_repeats():
    lengths = _lengths()
    s = BucketBatchSampler(lengths, max_frames=1500, seed=7)
    s.set_epoch(0)
    e0 = list(s)
    assert list(s) == e0  # iterating twice in the same epoch gives the same order
    s.set_epoch(1)
    e1 = list(s)
    assert e1 != e0
    s.set_epoch(0)
    assert list(s) == e0
    # a fresh sampler with the same seed and epoch agrees (resume reproduces the order)
    t = BucketBatchSampler(lengths, max_frames=1500, seed=7)
    t.set_epoch(1)
    assert list(t) == e1
    # another seed gives another order
    u = BucketBatchSampler(lengths, max_frames=1500, seed=8)
    assert list(u) != e0


def test_collate_pads_and_lengths():
    a = torch.arange(12, dtype=torch.float32).reshape(3, 4) + 1
    b = torch.arange(20, dtype=torch.float32).reshape(5, 4) + 1
    c = torch.ones(1, 4)
    batch = collate([(a, [1, 2], "a"), (b, [3, 4, 5, 6], "b"), (c, [7], "c")])
    assert batch.feats.shape == (3, 5, 4)
    assert batch.lengths.tolist() == [3, 5, 1]
    assert torch.equal(batch.feats[0, :3], a) and torch.equal(batch.feats[0, 3:], torch.zeros(2, 4))
    assert torch.equal(batch.feats[1], b)
    assert torch.equal(batch.feats[2, :1], c) and not batch.feats[2, 1:].any()
    assert batch.target_lengths.tolist() == [2, 4, 1]
    assert batch.targets.dtype == torch.long
    assert batch.targets.tolist() == [[1, 2, 0, 0], [3, 4, 5, 6], [7, 0, 0, 0]]
    assert batch.ids == ["a", "b", "c"]
    moved = batch.to(torch.device("cpu"))
    assert torch.equal(moved.targets, batch.targets) and moved.ids == batch.ids


def test_collate_empty_targets():
    batch = collate([(torch.zeros(2, 3), [], "x")])
    assert batch.targets.shape == (1, 1)
    assert batch.target_lengths.tolist() == [0]


def _dataset(**kw) -> FeatureDataset:
    g = torch.Generator().manual_seed(0)
    utts = [Utterance("u1", "a.wav", text="ab a"), Utterance("u2", "b.wav", text="ba")]
    feats = {"u1": (torch.randn(40, 8, generator=g) * 3 + 2).half(), "u2": torch.randn(7, 8, generator=g).half()}
    tok = CharTokenizer.build(u.text for u in utts)
    return FeatureDataset(utts, feats, tok, **kw)


def test_dataset_items():
    ds = _dataset()
    assert len(ds) == 2
    assert [ds.frames(i) for i in range(2)] == [40, 7]
    x, t, uid = ds[0]
    assert uid == "u1"
    assert x.dtype == torch.float32 and x.shape == (40, 8)
    raw = _dataset(cmvn="none")[0][0]
    torch.testing.assert_close(x, utterance_cmvn(raw), atol=4e-3, rtol=1e-3)  # normalised once, kept in fp16
    tok = CharTokenizer.build(["ab a", "ba"])
    assert t == tok.encode("ab a")
    # collate works on dataset items directly
    batch = collate([ds[0], ds[1]])
    assert batch.lengths.tolist() == [40, 7] and batch.target_lengths.tolist() == [4, 2]


@pytest.mark.parametrize("order", [[0, 1], [1, 0], [1]])
def test_dataset_batch_equals_collate_of_its_items_also_after_keep(order):
    ds = _dataset()
    for kept in (None, [1, 0]):
        if kept:
            ds.keep(kept)  # the second round runs on the reordered dataset
            assert [u.id for u in ds.utts] == ["u2", "u1"] and ds.frames(0) == 7
        got, want = ds.batch(order), collate([ds[i] for i in order])
        t = want.feats.shape[1]
        assert got.feats.shape[1] == padded_width(t) >= t
        assert torch.equal(got.feats[:, :t], want.feats) and not got.feats[:, t:].any()  # padded further, with zeros
        for field in ("lengths", "targets", "target_lengths"):
            assert torch.equal(getattr(got, field), getattr(want, field)), field
        assert got.ids == want.ids


def test_dataset_batch_augment_is_seeded_and_per_utterance():
    cfg = SpecAugmentConfig(freq_masks=1, freq_width=4, time_masks=1, time_width=0.3)
    a = [_dataset(augment=cfg, seed=1).batch([0, 1]).feats for _ in range(2)]
    assert torch.equal(a[0], a[1])
    plain = _dataset().batch([0, 1]).feats
    ds = _dataset(augment=cfg, seed=1)
    draws = [ds.batch([0, 1]).feats for _ in range(8)]
    assert any(not torch.equal(d, plain) for d in draws)
    assert len({d.sum().item() for d in draws}) > 1  # the generator advances: a new mask each batch
    # items themselves are never augmented; the batch holds exactly the normalised items where unmasked
    x0 = ds[0][0]
    assert torch.equal(x0, plain[0, :40])
    d = draws[0][0, :40]
    masked = d == 0
    assert torch.equal(d[~masked], x0[~masked])
    # masks are drawn per utterance: two identical utterances in one batch get different masks
    utts = [Utterance("u1", "a.wav", text="ab"), Utterance("u2", "b.wav", text="ab")]
    same = torch.randn(50, 8).half()
    twin = FeatureDataset(utts, {"u1": same, "u2": same}, CharTokenizer.build(["ab"]), augment=cfg, seed=3)
    differ = [not torch.equal(b.feats[0], b.feats[1]) for b in (twin.batch([0, 1]) for _ in range(5))]
    assert any(differ)


def test_dataset_rejects_unknown_characters():
    utts = [Utterance("bad", "a.wav", text="xyz")]
    with pytest.raises(InputError, match="'bad'"):
        FeatureDataset(utts, {"bad": torch.zeros(3, 2)}, CharTokenizer(["a"]))


def test_padded_widths_are_few_and_close():
    """16 widths per octave, never more than 1/16 over: 31 → 31, 33 → 34, 101 → 104, 1000 → 1024, 3000 → 3072."""
    assert [padded_width(n) for n in (0, 1, 31, 32, 33, 101, 1000, 3000)] == [0, 1, 31, 32, 34, 104, 1024, 3072]
    widths = {padded_width(n) for n in range(1000, 4000)}
    assert len(widths) <= 40 and all(n <= padded_width(n) <= n * 17 / 16 for n in range(1, 5000))
