"""Speaker robustness of the digits recipe: leave one FSDD speaker out, train on everything else, test on the unseen one.

Each fold runs the real CLI: `asrkit prepare` and `asrkit train` with data.test_speakers=[<speaker>], then decodes the held-out
speaker's connected-digit and isolated-digit test sets with beam 10: open vocabulary, open vocabulary with test-time
VTLN (`--vtln`), and with a word trigram of the fold's training texts (alpha 1); with a recipe that decodes with
another normalisation than it trains with (`decode.cmvn`), also open vocabulary read as trained (`--cmvn`,
open_as_trained). The synthetic voices are rendered
once into a cache shared by the folds.
Writes bench/results/speakers.json: WER per fold and the mean, the training sources with their hours and voices,
the time of each stage, and a check that the held-out speaker is absent from the fold's training and dev material.

    python bench/speakers.py                      # the four folds (about 25 min on 2 cores)
    python bench/speakers.py --speakers george --set data.digits.sources=[fsdd] --out /tmp/ablation.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from asrkit.models.acoustic import AcousticModel

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ("george", "jackson", "nicolas", "yweweler")


def run(*args: str) -> str:
    exe = str(Path(sys.executable).parent / "asrkit")
    proc = subprocess.run([exe, *args], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        raise SystemExit(f"asrkit {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc.stdout


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def sources(manifest: Path) -> dict:
    """Hours, utterances and distinct voices per source of a prepared manifest."""
    hours: dict[str, float] = defaultdict(float)
    utts: dict[str, int] = defaultdict(int)
    voices: dict[str, set] = defaultdict(set)
    for u in read_jsonl(manifest):
        src = u.get("source", "fsdd")
        hours[src] += u["duration"] / 3600
        utts[src] += 1
        voices[src].add(u.get("speaker"))
    return {
        s: {"hours": round(hours[s], 4), "utterances": utts[s], "voices": len(voices[s] - {"sc-mixed"})}
        for s in sorted(hours)
    }


def decodings(exp: Path) -> list[tuple[str, list[str]]]:
    """Decodings of each test set: open vocabulary; open vocabulary read under the surest of 7 frequency warps
    (`--vtln`, test-time VTLN); the fold's word trigram; and, where the recipe decodes with another normalisation than
    it trains with (`decode.cmvn`), open vocabulary read as trained (the ablation of that setting)."""
    out = [("open", []), ("open_vtln", ["--vtln"]), ("lm", ["--lm", str(exp / "lm.arpa"), "--alpha", "1.0"])]
    am = AcousticModel.load(exp / "best.pt", "cpu")
    trained = am.feature_settings["cmvn"]
    if am.cmvn != trained:
        out.append(("open_as_trained", ["--cmvn", trained]))
    return out


def fold(recipe: str, speaker: str, extra: list[str], work: Path, tts_cache: Path) -> dict:
    data, exp = work / "data" / speaker, work / "exp" / speaker
    sets = [
        "--set",
        f"data.test_speakers=[{speaker}]",
        "--set",
        f"data.out_dir={data}",
        "--set",
        f"train.exp_dir={exp}",
        "--set",
        f"data.digits.tts.cache={tts_cache}",
    ]
    for e in extra:
        sets += ["--set", e]
    t0 = time.time()
    run("prepare", recipe, "--quiet", *sets)
    t1 = time.time()
    run("train", recipe, "--quiet", "--fresh", *sets)
    t2 = time.time()
    trained = read_jsonl(data / "train.jsonl") + read_jsonl(data / "dev.jsonl")
    heard = sorted({u.get("speaker") for u in trained if str(u.get("speaker", "")).lower() == speaker})
    if heard or any(f"_{speaker}_" in u["id"] for u in trained):
        raise SystemExit(f"fold {speaker}: the held-out speaker is in the training or dev material")
    out = {
        "held_out": speaker,
        "prepare_seconds": round(t1 - t0, 1),
        "train_seconds": round(t2 - t1, 1),
        "sources": {"train": sources(data / "train.jsonl"), "dev": sources(data / "dev.jsonl")},
        "held_out_absent_from_train_and_dev": True,
    }
    run("lm", "build", str(data / "train.jsonl"), "-o", str(exp / "lm.arpa"), "--order", "3")
    for split in (
        "test",
        "test_isolated",
        "test_unseen",
    ):  # test_unseen: Speech Commands testing-list clips, when a source
        if not (data / f"{split}.jsonl").is_file():
            continue
        for mode, extra_args in decodings(exp):
            hyp = exp / f"{split}.{mode}.hyp"
            run(
                "decode",
                "--model",
                str(exp / "best.pt"),
                "--beam",
                "10",
                "--quiet",
                *extra_args,
                "-o",
                str(hyp),
                str(data / f"{split}.jsonl"),
            )
            rep = json.loads(run("score", "--ref", str(data / f"{split}.jsonl"), "--hyp", str(hyp), "--json"))
            out.setdefault(split, {})[mode] = {"wer": rep["wer"], "cer": rep["cer"], "utterances": rep["n_utterances"]}
    out["decode_seconds"] = round(time.time() - t2, 1)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="recipes/digits.yaml")
    ap.add_argument("--speakers", nargs="*", default=list(SPEAKERS))
    ap.add_argument("--set", dest="sets", action="append", default=[], help="extra recipe overrides for every fold")
    ap.add_argument("--work", default="bench/work/speakers", help="where the folds' data and experiments go")
    ap.add_argument(
        "--tts-cache", default="data/tts-cache", help="rendered synthetic voices, shared by the folds and recipes"
    )
    ap.add_argument("--out", default=str(ROOT / "bench/results/speakers.json"))
    args = ap.parse_args()
    work, cache = ROOT / args.work, ROOT / args.tts_cache
    t0 = time.time()
    folds = []
    for spk in args.speakers:
        folds.append(fold(args.recipe, spk, args.sets, work, cache))
        print(json.dumps(folds[-1]), flush=True)
    mean = {
        split: {mode: sum(f[split][mode]["wer"] for f in folds) / len(folds) for mode in folds[0][split]}
        for split in ("test", "test_isolated", "test_unseen")
        if all(split in f for f in folds)
    }
    result = {
        "benchmark": "digits recipe, leave-one-speaker-out: train without one FSDD speaker, test on that speaker "
        "(connected digits: test; isolated digits: test_isolated; beam 10; open vocabulary, open vocabulary with test-time VTLN "
        "(open_vtln), a word trigram of the training texts, and open vocabulary normalised as in training (open_as_trained) "
        "where decode.cmvn differs); "
        "test_unseen: the Speech Commands testing-list digit clips (voices no source contains)",
        "recipe": args.recipe,
        "overrides": args.sets,
        "folds": folds,
        "mean_wer": mean,
        "wall_seconds": round(time.time() - t0, 1),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"mean_wer": mean, "wall_seconds": result["wall_seconds"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
