"""Digits test WER with a word LM: beam 10 without an LM against LMDecoder over a grid of alpha and beta.

The LM is an ARPA file built from the training texts (`asrkit lm build data/digits/train.jsonl -o ... --order 3`).
Posteriors come from the trained model once; every decoder reads the same ones. Writes bench/results/lm_wer.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rel(p: str | Path) -> str:
    """A path as written in the results: relative to the repository when inside it."""
    q = Path(p).resolve()
    return str(q.relative_to(ROOT)) if q.is_relative_to(ROOT) else str(p)


def model_posteriors(model: str | Path, manifest: str | Path, batch: int = 32) -> tuple:
    """(AcousticModel, ids, references, float32 log-prob arrays) for every utterance of a manifest."""
    from asrkit.data.inputs import collect_inputs
    from asrkit.models.acoustic import AcousticModel

    am = AcousticModel.load(model)
    items = collect_inputs([manifest])
    lps = []
    for i in range(0, len(items), batch):
        chunk = items[i : i + batch]
        lps += [lp.numpy() for lp in am.log_probs([am.item_features(it.audio, it.features) for it in chunk])]
    return am, [it.id for it in items], {it.id: it.text or "" for it in items}, lps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "exp/digits/best.pt"))
    ap.add_argument("--test", default=str(ROOT / "data/digits/test.jsonl"))
    ap.add_argument("--lm", default=str(ROOT / "exp/digits/lm.arpa"))
    ap.add_argument("--beam", type=int, default=10)
    ap.add_argument("--alphas", default="0.3,0.5,1.0,2.0")
    ap.add_argument("--betas", default="0,1,2")
    ap.add_argument("--out", default=str(ROOT / "bench/results/lm_wer.json"))
    args = ap.parse_args()
    for p in (args.model, args.test, args.lm):
        if not Path(p).is_file():
            print(
                f"bench: {p} not found (run `make digits`, then `asrkit lm build data/digits/train.jsonl -o {args.lm}`)",
                file=sys.stderr,
            )
            return 2

    from asrkit.decode import prefix_beam_search
    from asrkit.decode.lm import LMDecoder
    from asrkit.score import score

    am, ids, refs, lps = model_posteriors(args.model, args.test)
    tok = am.tokenizer

    def wer(texts: list[str]) -> dict:
        rep = score(refs, dict(zip(ids, texts)))
        return {"wer": round(rep.wer, 5), "cer": round(rep.cer, 5), "sentence_errors": rep.sentence_errors}

    rows: dict[str, dict] = {}
    rows["asrkit_beam_no_lm"] = wer(
        [tok.decode(prefix_beam_search(lp, args.beam, tok.blank)[0].tokens).strip() for lp in lps]
    )
    rows["pyctcdecode_no_lm"] = wer([h[0].text for h in LMDecoder(tok, None, beam_size=args.beam).decode_batch(lps)])
    grid = []
    for a in (float(x) for x in args.alphas.split(",")):
        for b in (float(x) for x in args.betas.split(",")):
            t0 = time.perf_counter()
            dec = LMDecoder(tok, args.lm, alpha=a, beta=b, beam_size=args.beam)
            r = wer([h[0].text for h in dec.decode_batch(lps)])
            grid.append({"alpha": a, "beta": b, **r, "seconds": round(time.perf_counter() - t0, 2)})
            print(f"alpha {a:4} beta {b:4}  WER {r['wer']:.4%}  CER {r['cer']:.4%}", flush=True)
    best = min(grid, key=lambda r: (r["wer"], r["cer"]))
    out = {
        "model": rel(args.model),
        "test": rel(args.test),
        "utterances": len(ids),
        "lm": rel(args.lm),
        "beam": args.beam,
        "baselines": rows,
        "grid": grid,
        "best": best,
        "lm_lowers_or_keeps_wer": best["wer"] <= rows["asrkit_beam_no_lm"]["wer"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(rows), "best:", json.dumps(best))
    return 0


if __name__ == "__main__":
    sys.exit(main())
