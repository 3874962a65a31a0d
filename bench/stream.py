"""Streaming decode of the connected-digit test set: final transcripts against offline, RTF and word latency.

Each test recording is fed in `--chunk-ms` chunks to the streaming recogniser of a unidirectional model
(default exp/digits_stream/best.pt: `asrkit prepare recipes/digits_stream.yaml && asrkit train recipes/digits_stream.yaml`).
Reported: how many final transcripts equal the offline decode of the same audio (the same model, whole
recording, same beam), the streaming real-time factor (compute seconds per audio second, the model and the
partial/final decoding, audio reading excluded), and the word-emission latency: for each final word, the
audio time from its end (its Viterbi alignment) to the first transcript that shows it whole. Writes
bench/results/stream.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from datetime import date
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "exp/digits_stream/best.pt"))
    ap.add_argument("--manifest", default=str(ROOT / "data/digits_stream/test.jsonl"))
    ap.add_argument("--chunk-ms", type=float, default=100.0)
    ap.add_argument("--beam", type=int, default=10)
    ap.add_argument("--n", type=int, default=0, help="at most this many utterances (0: all)")
    ap.add_argument("--out", default=str(ROOT / "bench/results/stream.json"))
    args = ap.parse_args()

    from asrkit.audio import load_audio
    from asrkit.data.manifest import read_manifest
    from asrkit.decode.beam import prefix_beam_search
    from asrkit.models import count_parameters
    from asrkit.models.acoustic import AcousticModel
    from asrkit.score import score
    from asrkit.stream import StreamingRecognizer
    from asrkit.stream.sources import file_chunks

    torch.set_num_threads(1)  # one stream, one core: what a server would give each client
    am = AcousticModel.load(args.model, "cpu")
    utts = read_manifest(args.manifest)[: args.n or None]
    same, refs, hyps_stream, hyps_offline, latencies = 0, {}, {}, {}, []
    compute, audio = 0.0, 0.0
    for u in utts:
        rec = StreamingRecognizer(am, args.beam)
        for chunk in file_chunks(u.audio, am.sample_rate, args.chunk_ms / 1000):
            rec.push(chunk)
        res = rec.finish()
        compute += res.compute_seconds
        audio += res.audio_seconds
        lp = am.log_probs([am.features(load_audio(u.audio, am.sample_rate))])[0]
        offline = am.tokenizer.decode(prefix_beam_search(lp.numpy(), args.beam, am.tokenizer.blank)[0].tokens).strip()
        same += offline == res.hypothesis.text
        refs[u.id], hyps_stream[u.id], hyps_offline[u.id] = u.text, res.hypothesis.text, offline
        latencies += res.word_latencies()
    s_stream, s_offline = score(refs, hyps_stream), score(refs, hyps_offline)
    cfg = am.config
    result = {
        "benchmark": "streaming decode, connected-digit test set: finals vs offline, real-time factor, word-emission latency",
        "date": date.today().isoformat(),
        "command": "python bench/stream.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, 1 torch thread, Python {platform.python_version()}, torch {torch.__version__}",
        "model": f"{cfg['name']} {cfg['layers']} x {cfg['hidden']}, {cfg['frontend']} front-end, subsample {cfg['subsample']}, "
        f"{count_parameters(am.model):,} parameters ({args.model})",
        "chunk_ms": args.chunk_ms,
        "beam": args.beam,
        "utterances": len(utts),
        "audio_seconds": round(audio, 1),
        "finals_equal_to_offline": same,
        "wer_streaming": round(s_stream.wer, 4),
        "wer_offline": round(s_offline.wer, 4),
        "rtf": round(compute / max(audio, 1e-9), 4),
        "words": len(latencies),
        "word_latency_mean_s": round(statistics.mean(latencies), 3) if latencies else None,
        "word_latency_median_s": round(statistics.median(latencies), 3) if latencies else None,
        "word_latency_p90_s": round(statistics.quantiles(latencies, n=10)[-1], 3) if len(latencies) > 1 else None,
        "latency_definition": "audio time from a final word's end (Viterbi alignment of the final transcript) to the first "
        "transcript, partial or final, that shows the word whole; a chunk's transcript is shown when the chunk has arrived",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if same == len(utts) else 1


if __name__ == "__main__":
    sys.exit(main())
