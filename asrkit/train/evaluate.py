"""Validation: dev loss and error rates with greedy decoding; which way each metric improves."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from asrkit.data.loader import BucketBatchSampler, FeatureDataset
from asrkit.score import score
from asrkit.text import CharTokenizer

HIGHER_IS_BETTER = {"wer": False, "cer": False, "loss": False, "accuracy": True}


def resolve_metric(name: str, head: str = "ctc") -> str:
    """`auto` → the task's natural metric: WER for CTC, accuracy for classifier and frame heads."""
    if name != "auto":
        return name
    return "wer" if head == "ctc" else "accuracy"


def better(a: float, b: float, metric: str) -> bool:
    """Whether metric value `a` is strictly better than `b`."""
    return a > b if HIGHER_IS_BETTER[metric] else a < b


def greedy_batch(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int = 0) -> list[list[int]]:
    """Best-path decoding of a padded batch: arg-max per frame, repeats collapsed, blanks dropped."""
    best = log_probs.argmax(-1).cpu()
    out = []
    for row, n in zip(best, lengths.tolist()):
        r = row[:n]
        keep = torch.ones_like(r, dtype=torch.bool)
        keep[1:] = r[1:] != r[:-1]
        r = r[keep]
        out.append(r[r != blank].tolist())
    return out


def _frame_nll(
    log_probs: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame negative log-likelihood of the targets (B, T') and the mask of valid frames. The features may be
    padded further than the targets (loader.PAD_FRAMES): the frames past the longest target are padding."""
    t = min(log_probs.shape[1], targets.shape[1])
    valid = torch.arange(t, device=lengths.device)[None, :] < lengths[:, None]
    return -log_probs[:, :t].float().gather(-1, targets[:, :t, None]).squeeze(-1), valid


def frame_loss(
    log_probs: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Cross-entropy over the valid frames of a padded batch (frame head); targets (B, T) padded."""
    nll, valid = _frame_nll(log_probs, lengths, targets)
    total = nll[valid].sum()
    return total / valid.sum().clamp(min=1) if reduction == "mean" else total


def evaluate(model: torch.nn.Module, ds: FeatureDataset, tok, device: torch.device, max_frames: int) -> dict:
    """The dev figures for the model's head: CTC → loss, WER, CER, accuracy; classifier → loss, accuracy; frame → loss, accuracy."""
    task = getattr(model, "task", "ctc")
    if task == "classifier":
        return evaluate_classifier(model, ds, device, max_frames)
    if task == "frame":
        return evaluate_frames(model, ds, device, max_frames)
    return evaluate_ctc(model, ds, tok, device, max_frames)


def _dev_batches(model: torch.nn.Module, ds: FeatureDataset, device: torch.device, max_frames: int) -> Iterator[tuple]:
    """(utterance indices, batch, model output, output lengths) over the dataset, in eval mode without gradients."""
    was_training = model.training
    model.eval()
    sampler = BucketBatchSampler(ds.frame_counts(), max_frames, shuffle=False)
    try:
        with torch.inference_mode():
            for idx in sampler:
                b = ds.padded(idx).to(device)
                out, out_len = model(b.feats, b.lengths)
                yield idx, b, out, out_len
    finally:
        model.train(was_training)


def evaluate_frames(model: torch.nn.Module, ds: FeatureDataset, device: torch.device, max_frames: int) -> dict:
    """Mean per-frame cross-entropy and per-frame accuracy over the dev utterances."""
    total, correct, n = 0.0, 0, 0
    for _, b, lp, out_len in _dev_batches(model, ds, device, max_frames):
        nll, valid = _frame_nll(lp, out_len, b.targets)
        total += float(nll[valid].sum())
        t = valid.shape[1]
        correct += int(((lp[:, :t].argmax(-1) == b.targets[:, :t]) & valid).sum())
        n += int(valid.sum())
    return {"loss": total / max(n, 1), "accuracy": correct / max(n, 1)}


def evaluate_classifier(model: torch.nn.Module, ds: FeatureDataset, device: torch.device, max_frames: int) -> dict:
    """Mean cross-entropy and accuracy over the dev utterances."""
    total, correct, n = 0.0, 0, 0
    for idx, b, lp, _ in _dev_batches(model, ds, device, max_frames):
        y = b.targets[:, 0]
        total += float(torch.nn.functional.nll_loss(lp.float(), y, reduction="sum"))
        correct += int((lp.argmax(-1) == y).sum())
        n += len(idx)
    return {"loss": total / max(n, 1), "accuracy": correct / max(n, 1)}


def evaluate_ctc(
    model: torch.nn.Module, ds: FeatureDataset, tok: CharTokenizer, device: torch.device, max_frames: int
) -> dict:
    """Dev loss (per label, as in training), WER, CER and sentence accuracy with greedy decoding."""
    refs, hyps, total, n = {}, {}, 0.0, 0
    for idx, b, lp, out_len in _dev_batches(model, ds, device, max_frames):
        loss = torch.nn.functional.ctc_loss(
            lp.float().transpose(0, 1),
            b.targets,
            out_len,
            b.target_lengths,
            blank=tok.blank,
            reduction="none",
            zero_infinity=True,
        )
        total += float((loss / b.target_lengths.clamp(min=1)).sum())  # per label, like the training loss
        n += len(idx)
        for uid, ids, t in zip(b.ids, greedy_batch(lp, out_len, tok.blank), idx):
            hyps[uid] = tok.decode(ids)
            refs[uid] = tok.decode(ds.targets[t])  # phonemes: space-separated, so WER is the PER
    rep = score(refs, hyps)
    exact = sum(" ".join(refs[k].split()) == " ".join(hyps[k].split()) for k in refs)
    return {"loss": total / max(n, 1), "wer": rep.wer, "cer": rep.cer, "accuracy": exact / max(len(refs), 1)}
