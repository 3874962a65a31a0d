"""CTC beam search speed: asrkit's compiled prefix beam search against the decoders people use.

The input: beam 10, no LM, V = 29 (blank, space, a-z, apostrophe), T = 500,
40 utterances of CTC-like log-posteriors. Peers, measured in the same run: pyctcdecode with its
defaults, torchaudio's flashlight-text `ctc_decoder` (lexicon-free, no LM) with its defaults and
with `beam_size_token=10`, and the NumPy reference beam decoder when asrkit.reference has one.
Every figure is a median over `--repeats` passes over the 40 utterances (ms per utterance).

Writes bench/results/beam.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["", " "] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["'"]  # blank first


def ctc_like(n: int, T: int, V: int, seed: int = 0, peak: float = 5.0) -> tuple[np.ndarray, list[str]]:
    """Log-posteriors shaped like an acoustic model's: a hidden transcript, each label firing for
    one or two frames between runs of blank, on top of N(0, 1) logit noise (so rivals stay alive)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, T, V), np.float32)
    texts = []
    for i in range(n):
        path: list[int] = []
        labels: list[int] = []
        while len(path) < T:
            # about one space per five letters, never two in a row or first
            k = 1 if labels and labels[-1] != 1 and rng.random() < 0.2 else int(rng.integers(2, V))
            if labels and labels[-1] == k:
                path.append(0)
            labels.append(k)
            path += [k] * int(rng.integers(1, 3)) + [0] * int(rng.integers(1, 4))
        path = path[:T]
        logits = rng.normal(size=(T, V))
        logits[np.arange(T), path] += peak
        logits -= logits.max(axis=1, keepdims=True)
        out[i] = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        texts.append("".join(LABELS[k] for k in labels))
    return out, texts


def median_ms(fn, repeats: int, n: int) -> float:
    """Median over `repeats` runs of fn(), in ms per utterance (n utterances per run)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3 / n


def agreement(model: str, manifest: str, beam: int) -> dict:
    """Best hypothesis of asrkit vs pyctcdecode (no LM, same beam) on a test set's real posteriors."""
    from pyctcdecode import build_ctcdecoder

    from asrkit.data.inputs import collect_inputs
    from asrkit.decode import prefix_beam_search
    from asrkit.models.acoustic import AcousticModel

    am = AcousticModel.load(model, "cpu")
    tok = am.tokenizer
    labels = ["" if i == tok.blank else s for i, s in enumerate(tok.symbols)]
    dec = build_ctcdecoder(labels)
    diffs = []
    items = collect_inputs([manifest])
    for it in items:
        lp = am.log_probs([am.item_features(it.audio, it.features)])[0].numpy()
        ours = " ".join(tok.decode(prefix_beam_search(lp, beam, tok.blank)[0].tokens).split())
        theirs = " ".join(dec.decode(lp, beam_width=beam).split())
        if ours != theirs:
            diffs.append({"id": it.id, "asrkit": ours, "pyctcdecode": theirs, "ref": it.text})
    same = 1 - len(diffs) / max(len(items), 1)
    return {"model": model, "manifest": manifest, "utterances": len(items), "same": same, "differences": diffs}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--frames", type=int, default=500)
    ap.add_argument("--beam", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", default=str(ROOT / "bench/results/beam.json"))
    ap.add_argument(
        "--model",
        default=str(ROOT / "exp/digits/best.pt"),
        help="for the agreement with pyctcdecode on real posteriors",
    )
    ap.add_argument("--test", default=str(ROOT / "data/digits/test.jsonl"))
    args = ap.parse_args()

    from asrkit.decode import prefix_beam_search, prefix_beam_search_batch

    V = len(LABELS)
    lp, _ = ctc_like(args.n, args.frames, V)
    utts = list(lp)
    K, n, R = args.beam, args.n, args.repeats

    t0 = time.perf_counter()
    prefix_beam_search(utts[0], K)  # the compiled kernel's first call (from numba's cache when warm)
    first_call_s = time.perf_counter() - t0
    prefix_beam_search_batch(lp[:2], None, K)

    def text(ids) -> str:
        return " ".join("".join(LABELS[k] for k in ids).split())

    res: dict[str, dict] = {}
    ours = [text(prefix_beam_search(u, K)[0].tokens) for u in utts]
    res["asrkit"] = {"ms_per_utt": median_ms(lambda: [prefix_beam_search(u, K) for u in utts], R, n)}
    batch_best = [text(h[0].tokens) for h in prefix_beam_search_batch(lp, None, K)]
    res["asrkit_batch"] = {"ms_per_utt": median_ms(lambda: prefix_beam_search_batch(lp, None, K), R, n)}
    assert batch_best == ours, "batched and per-utterance results differ"
    res["asrkit_greedy"] = {"ms_per_utt": median_ms(lambda: [prefix_beam_search(u, 1) for u in utts], R, n)}

    from pyctcdecode import build_ctcdecoder

    pyctc = build_ctcdecoder(LABELS)
    pyctc.decode(utts[0], beam_width=K)
    theirs = [" ".join(pyctc.decode(u, beam_width=K).split()) for u in utts]
    res["pyctcdecode"] = {
        "ms_per_utt": median_ms(lambda: [pyctc.decode(u, beam_width=K) for u in utts], max(3, R // 2), n),
        "same_best_as_asrkit": sum(a == b for a, b in zip(ours, theirs)) / n,
    }

    try:
        import torch
        from torchaudio.models.decoder import ctc_decoder
    except Exception as e:  # flashlight-text is a bench extra
        res["flashlight"] = {"skipped": f"torchaudio ctc_decoder unavailable: {e}"}
    else:
        fl_tokens = ["-", "|"] + LABELS[2:]
        em = torch.from_numpy(lp)
        for name, kw in (("flashlight", {}), ("flashlight_token10", {"beam_size_token": 10})):
            dec = ctc_decoder(
                lexicon=None, tokens=fl_tokens, lm=None, beam_size=K, blank_token="-", sil_token="|", **kw
            )
            dec(em[:1])
            best = []
            for i in range(n):
                h = dec(em[i : i + 1])[0][0]
                best.append("".join(fl_tokens[k] for k in h.tokens.tolist() if k != 0).replace("|", " ").strip())
            res[name] = {
                "ms_per_utt": median_ms(lambda: [dec(em[i : i + 1]) for i in range(n)], R, n),
                "same_best_as_asrkit": sum(a == " ".join(b.split()) for a, b in zip(ours, best)) / n,
                "options": {"beam_size": K, **kw},
            }

    from asrkit.reference import (
        PrefixBeamSearchDecoder,
    )  # the same search as asrkit's (the handout's lecture search differs)

    # the NumPy reference is slow: 4 utterances, 3 repeats; it must find the same best path
    ref = PrefixBeamSearchDecoder(LABELS[1:], K)
    probs = [np.exp(u.astype(np.float64)).T[:, :, None] for u in utts[:4]]
    same = sum(" ".join(ref.decode(p)[0].split()) == o for p, o in zip(probs, ours[:4]))
    res["reference"] = {
        "ms_per_utt": median_ms(lambda: [ref.decode(p) for p in probs], 3, 4),
        "same_best_as_asrkit": same / 4,
    }

    if Path(args.model).is_file() and Path(args.test).is_file():
        res["digits_agreement"] = agreement(args.model, args.test, K)
    else:
        res["digits_agreement"] = {"skipped": f"{args.model} or {args.test} missing (run `make digits`)"}

    a = res["asrkit"]["ms_per_utt"]
    ratios = {
        "pyctcdecode_over_asrkit": res["pyctcdecode"]["ms_per_utt"] / a,
        "per_utt_over_batch": a / res["asrkit_batch"]["ms_per_utt"],
    }
    fl = [res[k]["ms_per_utt"] for k in ("flashlight", "flashlight_token10") if "ms_per_utt" in res.get(k, {})]
    if fl:
        ratios["faster_flashlight_over_asrkit"] = min(fl) / a
    if "ms_per_utt" in res["reference"]:
        ratios["reference_over_asrkit"] = res["reference"]["ms_per_utt"] / a
    targets = {
        "pyctcdecode_over_asrkit >= 50": ratios["pyctcdecode_over_asrkit"] >= 50,
        "per_utt_over_batch >= 2": ratios["per_utt_over_batch"] >= 2,
    }
    if fl:
        targets["faster_flashlight_over_asrkit >= 10"] = ratios["faster_flashlight_over_asrkit"] >= 10
    out = {
        "input": {
            "utterances": n,
            "frames": args.frames,
            "vocab": V,
            "beam": K,
            "kind": "CTC-like (peak 5 over N(0,1) logits)",
        },
        "repeats": R,
        "first_call_s": round(first_call_s, 3),
        "results": res,
        "ratios": {k: round(v, 2) for k, v in ratios.items()},
        "targets_met": targets,
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    for k, v in res.items():
        if "ms_per_utt" in v:
            print(f"{k:20s} {v['ms_per_utt']:8.3f} ms/utt  {v.get('same_best_as_asrkit', '')}")
    agree = res["digits_agreement"]
    print("digits agreement with pyctcdecode:", agree.get("same", agree.get("skipped")))
    print(json.dumps(out["ratios"]), json.dumps(targets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
