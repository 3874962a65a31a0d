"""Training throughput: the asrkit engine against a classroom-notebook loop, same model, same utterances, same run.

The engine trains the digits recipe with its model set to the BiLSTM (as the issue asks) from cached features in
duration-bucketed batches, padding-exact without packing (packed LSTMs are 2-6x slower on CPU).
The naive loop is the usual notebook: a shuffled DataLoader of audio files, log-mel features, CMVN and SpecAugment
computed in the collate function for every batch, batches padded to their longest utterance, the LSTM run over the
padding. Both train the same model (same layers, dropout, augmentation, optimizer).
Both see the same utterances for one epoch with the same optimizer; we report audio-seconds per wall-second
and the padding overhead (padded frames / real frames - 1). Writes bench/results/train.json.
On CPUs with native bf16 (AVX512-BF16/AMX) the engine is also run with `train.precision=bf16`, its mixed
precision, against the same fp32 notebook loop; `speedup` stays the like-for-like fp32 ratio.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import soundfile as sf
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]


def subset_data_dir(src: Path, dst: Path, n: int, seed: int) -> None:
    """A data dir with `n` random training utterances (manifest + cached features); dev is kept whole."""
    from asrkit.data.featstore import write_store
    from asrkit.data.manifest import read_manifest, write_manifest
    from asrkit.data.prepared import load_split

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("feats", "train.jsonl"))
    utts = read_manifest(src / "train.jsonl")
    random.Random(seed).shuffle(utts)
    utts = utts[:n]
    for u in utts:  # manifests hold audio paths relative to themselves: make them absolute for the copy
        if u.audio and not Path(u.audio).is_absolute():
            u.audio = str((src / u.audio).resolve())
    write_manifest(dst / "train.jsonl", utts)
    (dst / "feats").mkdir()
    _, feats = load_split(src, "train")
    write_store(dst / "feats" / "train", {u.id: feats[u.id] for u in utts})
    _, dev = load_split(src, "dev")
    write_store(dst / "feats" / "dev", {k: dev[k] for k in dev})


def padding_overhead(batches: list[list[int]], frames: list[int]) -> float:
    padded = sum(max(frames[i] for i in b) * len(b) for b in batches)
    return padded / sum(frames[i] for b in batches for i in b) - 1


class NotebookBiLSTM(nn.Module):
    """The recipe's architecture written the notebook way: no packing, the LSTM runs over the padding.

    Same layers and dropout as the zoo's BiLSTM (between the LSTM layers and before the output layer).
    """

    def __init__(self, n_feats: int, n_tokens: int, hidden: int, layers: int, subsample: int, dropout: float):
        super().__init__()
        self.s = subsample
        self.proj = nn.Linear(n_feats * subsample, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.rnn = nn.LSTM(hidden, hidden, num_layers=layers, batch_first=True, bidirectional=True, dropout=dropout)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden, n_tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = (-x.shape[1]) % self.s
        x = nn.functional.pad(x, (0, 0, 0, pad))
        b, t, f = x.shape
        y, _ = self.rnn(self.norm(self.proj(x.reshape(b, t // self.s, self.s * f))))
        return self.head(self.drop(y)).log_softmax(-1)


def naive_epoch(recipe, utts, tok, batch_size: int, seed: int) -> dict:
    import torchaudio

    sr = recipe.data.sample_rate
    fc = recipe.features
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=sr,
        n_fft=int(sr * fc.win_ms / 1000),
        hop_length=int(sr * fc.hop_ms / 1000),
        n_mels=fc.n_mels,
        f_min=fc.f_min,
        f_max=fc.f_max,
    )

    class AudioDataset(torch.utils.data.Dataset):
        def __len__(self):
            return len(utts)

        def __getitem__(self, i):
            u = utts[i]
            wav, file_sr = sf.read(u.audio, dtype="float32")
            wav = torch.from_numpy(wav)
            if file_sr != sr:
                wav = torchaudio.functional.resample(wav, file_sr, sr)
            return wav, tok.encode(u.text, u.id)

    sa = fc.specaugment
    masks = [torchaudio.transforms.FrequencyMasking(sa.freq_width)] * sa.freq_masks if sa else []

    def collate(items):
        feats = []
        for wav, _ in items:  # features for every batch, every epoch; SpecAugment per utterance, as notebooks do
            x = (mel(wav) + 1e-6).log().T
            x = ((x - x.mean(0)) / x.std(0).clamp(min=0.1)).T[None]
            for m in masks:
                x = m(x)
            for _ in range(sa.time_masks if sa else 0):
                x = torchaudio.transforms.TimeMasking(max(1, int(sa.time_width * x.shape[-1])))(x)
            feats.append(x[0].T)
        lengths = torch.tensor([f.shape[0] for f in feats])
        targets = [torch.tensor(t) for _, t in items]
        return (
            nn.utils.rnn.pad_sequence(feats, batch_first=True),
            lengths,
            torch.cat(targets),
            torch.tensor([len(t) for t in targets]),
        )

    torch.manual_seed(seed)
    m = recipe.model
    model = NotebookBiLSTM(fc.n_mels, len(tok), m.hidden, m.layers, m.subsample, m.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.train.lr)
    loader = torch.utils.data.DataLoader(AudioDataset(), batch_size=batch_size, shuffle=True, collate_fn=collate)
    audio, padded, real = 0.0, 0, 0
    t0 = time.perf_counter()
    for x, lengths, targets, tl in loader:
        lp = model(x)
        out_len = torch.div(lengths + m.subsample - 1, m.subsample, rounding_mode="floor")
        loss = nn.functional.ctc_loss(lp.transpose(0, 1), targets, out_len, tl, zero_infinity=True)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), recipe.train.clip)
        opt.step()
        audio += float(lengths.sum()) * fc.hop_ms / 1000
        padded += int(lengths.max()) * len(lengths)
        real += int(lengths.sum())
    seconds = time.perf_counter() - t0
    return {
        "audio_seconds": round(audio, 1),
        "seconds": round(seconds, 2),
        "audio_seconds_per_second": round(audio / seconds, 1),
        "padding_overhead": round(padded / real - 1, 4),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default=str(ROOT / "recipes/digits.yaml"))
    ap.add_argument("--utts", type=int, default=1000, help="training utterances used by both loops")
    ap.add_argument("--repeats", type=int, default=7, help="epochs of each loop, alternating; medians are reported")
    ap.add_argument("--out", default=str(ROOT / "bench/results/train.json"))
    args = ap.parse_args()

    from asrkit.config import load_recipe
    from asrkit.data.manifest import read_manifest
    from asrkit.data.featstore import FeatureStore
    from asrkit.data.loader import BucketBatchSampler
    from asrkit.data.prepare import prepare
    from asrkit.text import CharTokenizer
    from asrkit.train.trainer import cpu_bf16_supported, train

    recipe = load_recipe(args.recipe)
    if not (recipe.data_dir / "prepare.json").is_file():
        prepare(recipe, quiet=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        subset_data_dir(recipe.data_dir, data, args.utts, seed=0)
        sets = [
            f"data.out_dir={data}",
            f"train.exp_dir={tmp}/exp",
            "train.epochs=1",
            "train.sortagrad=false",
            "train.save_every=0",
            "model.name=bilstm",
        ]
        sub = load_recipe(args.recipe, sets)
        utts = read_manifest(data / "train.jsonl")
        tok = CharTokenizer.load(data / "vocab.txt")
        feats = FeatureStore(data / "feats" / "train")
        frames = [feats.frames(u.id) for u in utts]
        sampler = BucketBatchSampler(
            frames, int(sub.train.batch_seconds / (sub.features.hop_ms / 1000)), seed=sub.train.seed
        )
        sampler.set_epoch(0)
        batches = sampler.batches()
        mean_batch = len(utts) / len(batches)

        # the engine's bf16 autocast runs on CPUs with native bf16 only; elsewhere that row is left out
        bf16 = load_recipe(args.recipe, [*sets, "train.precision=bf16"]) if cpu_bf16_supported() else None

        def engine_epoch(r) -> float:
            shutil.rmtree(Path(tmp) / "exp", ignore_errors=True)
            train(r, quiet=True)
            return json.loads((Path(tmp) / "exp" / "metrics.jsonl").read_text().splitlines()[0])[
                "train_audio_seconds_per_second"
            ]

        engine_runs, bf16_runs, naive_runs = [], [], []
        for k in range(args.repeats):  # alternate the loops so that machine noise hits all alike
            engine_runs.append(engine_epoch(sub))
            if bf16 is not None:
                bf16_runs.append(engine_epoch(bf16))
            naive_runs.append(naive_epoch(sub, utts, tok, batch_size=max(1, round(mean_batch)), seed=k))
        engine = {
            "audio_seconds_per_second": statistics.median(engine_runs),
            "runs": engine_runs,
            "padding_overhead": round(padding_overhead(batches, frames), 4),
            "batches": len(batches),
            "mean_utterances_per_batch": round(mean_batch, 1),
        }
        naive = {
            "audio_seconds_per_second": statistics.median(r["audio_seconds_per_second"] for r in naive_runs),
            "runs": [r["audio_seconds_per_second"] for r in naive_runs],
            "padding_overhead": naive_runs[0]["padding_overhead"],
            "batch_size": max(1, round(mean_batch)),
        }

    # each engine run against the notebook run right after it: machine drift hits a pair alike
    paired = [round(e / n["audio_seconds_per_second"], 2) for e, n in zip(engine_runs, naive_runs)]
    ratio = statistics.median(paired)
    paired_bf16 = [round(e / n["audio_seconds_per_second"], 2) for e, n in zip(bf16_runs, naive_runs)]
    ratio_bf16 = statistics.median(paired_bf16) if paired_bf16 else None
    best = max(ratio, ratio_bf16 or 0.0)
    result = {
        "benchmark": "training throughput, audio-seconds per wall-second of the batch loop; alternating one-epoch runs; speedup = median of the paired ratios",
        "date": date.today().isoformat(),
        "command": "make bench (python bench/train_throughput.py)",
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, {platform.python_version()}, torch {torch.__version__}",
        "model": f"{sub.model.name} hidden {sub.model.hidden} x {sub.model.layers} layers, {sub.model.frontend} front-end, subsample {sub.model.subsample}",
        "utterances": args.utts,
        "engine": engine,
        "naive_notebook_loop": naive,
        "speedup": round(ratio, 2),
        "paired_speedups": paired,
        "engine_bf16": None
        if ratio_bf16 is None
        else {
            "precision": "train.precision=bf16 (CPU autocast, native bf16); the notebook loop stays fp32",
            "audio_seconds_per_second": statistics.median(bf16_runs),
            "runs": bf16_runs,
            "speedup": round(ratio_bf16, 2),
            "paired_speedups": paired_bf16,
        },
        "targets": {"speedup_at_least": 3.0, "engine_padding_overhead_at_most": 0.10},
        "meets_targets_fp32": bool(ratio >= 3.0 and engine["padding_overhead"] <= 0.10),
        "meets_targets": bool(best >= 3.0 and engine["padding_overhead"] <= 0.10),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if math.isfinite(ratio) else 1


if __name__ == "__main__":
    sys.exit(main())
