"""Memory and speed of the LibriSpeech recipe as the corpus grows.

For each size (default 2, 8 and 32 hours of training audio) the bench builds a corpus in the LibriSpeech layout in a
temporary folder (never in the project): every utterance is 2-4 real LibriSpeech utterances of
../shared/data/librispeech joined at random (their transcripts joined with a space), at most 35 s, under random
speaker and chapter ids, written as 16 kHz FLAC; deterministic for a seed, and each size's training set begins with
the smaller sizes' one. dev-clean and test-clean get a few minutes each, the same at every size, so growth comes from
the training set. Then it runs the real CLI on `recipes/librispeech.yaml` with a small model (32 hidden units, one
layer, 60 s batches):
  - `asrkit prepare --jobs N` (N: --jobs, default the cores) to the end;
  - `asrkit train` for `--train-seconds` (default 75), then Ctrl-C (SIGINT: the run stops at the next batch and
    saves last.pt), SIGKILL if it is still alive after a grace period;
  - with torchrun: the same training as two gloo ranks (`torchrun --standalone --nproc-per-node 2 -m asrkit train`),
    on one size (default the smallest), for the private memory of each rank.
Each process tree is polled every 0.2 s (bench/memwatch.py): the peak of the summed RssAnon (private, anonymous
memory) and of the summed VmRSS over the process and all its children, and for torchrun each rank's subtree.
At one size (--jobs-hours, default the largest) prepare is also timed with --jobs 1 against --jobs N, each from
nothing, and then killed (SIGKILL) once half its feature shards are written and run again: how many shards the
second run wrote, its time, and whether its shards are byte for byte those of the uninterrupted run.
Reported per size: peak private memory, peak RSS, wall time, audio-seconds per second (prepare: the corpus audio
over the wall time; training: the audio of the batches done, approximated from where the run stopped, over the
window), the private memory once the training data are loaded, and a timeline. Across sizes: the growth per
training hour between consecutive sizes, and a linear projection to 100 h and 960 h from the two largest sizes.
MB are 2^20 bytes. Writes bench/results/scale.json (the machine, the date, the sizes, every figure).

    python bench/scale.py                                    # 2, 8 and 32 h, 75 s of training each, torchrun at 2 h
    python bench/scale.py --hours 0.05 0.1 --train-seconds 20 --no-torchrun --out /tmp/scale.json   # a smoke run
    python bench/scale.py --torchrun-hours 8 --keep --work /tmp/scale   # torchrun at 8 h, keep corpora and logs
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from memwatch import MB, TreeSampler, children

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared/data/librispeech"
RATE = 16000
MAX_SECONDS = 35.0  # LibriSpeech's longest segment, and the recipe's data.max_duration
SMALL_MODEL = ["model.hidden=32", "model.layers=1", "train.batch_seconds=60", "train.average=0"]
PROJECT_TO = (100, 960)
# speaker and chapter id ranges per split: disjoint, so the splits never share an id and each is drawn on its own
ID_RANGES = {
    "train": ((100, 8000), (10000, 1000000)),
    "dev": ((8000, 9000), (1000, 5000)),
    "test": ((9000, 10000), (5000, 10000)),
}


@dataclass
class SourceUtt:
    uid: str
    text: str
    audio: np.ndarray  # int16 samples


@dataclass
class Utt:
    uid: str
    parts: list[int]  # indices into the sources
    samples: int


@dataclass
class Chapter:
    speaker: int
    chapter: int
    utts: list[Utt] = field(default_factory=list)


def load_sources(root: Path) -> list[SourceUtt]:
    """Every transcribed 16 kHz utterance under `root/LibriSpeech/<subset>/<spk>/<chapter>/`, decoded once."""
    out = []
    for trans in sorted((root / "LibriSpeech").glob("*/*/*/*.trans.txt")):
        for line in trans.read_text().splitlines():
            uid, _, text = line.strip().partition(" ")
            flac = trans.parent / f"{uid}.flac"
            if not uid or not flac.is_file():
                continue
            audio, rate = sf.read(flac, dtype="int16")
            if rate == RATE and audio.ndim == 1:
                out.append(SourceUtt(uid, text.strip(), audio))
    return out


def plan_split(sources: list[SourceUtt], seconds: float, rng: random.Random, split: str) -> list[Chapter]:
    """Chapters of 30-70 joined utterances, 1-3 chapters per speaker, until `seconds` of audio."""
    (spk_lo, spk_hi), (ch_lo, ch_hi) = ID_RANGES[split]
    used_spk: set[int] = set()
    used_ch: set[int] = set()
    chapters: list[Chapter] = []
    total, target = 0, int(seconds * RATE)

    def fresh(lo: int, hi: int, used: set[int]) -> int:
        if len(used) >= hi - lo:
            raise SystemExit(f"scale: {split}: out of ids in [{lo}, {hi}); ask for fewer hours")
        while (x := rng.randrange(lo, hi)) in used:
            pass
        used.add(x)
        return x

    while total < target:
        spk = fresh(spk_lo, spk_hi, used_spk)
        for _ in range(rng.randint(1, 3)):
            ch = Chapter(spk, fresh(ch_lo, ch_hi, used_ch))
            chapters.append(ch)
            for i in range(rng.randint(30, 70)):
                parts = rng.sample(range(len(sources)), min(rng.randint(2, 4), len(sources)))
                while len(parts) > 2 and sum(len(sources[p].audio) for p in parts) > MAX_SECONDS * RATE:
                    parts.pop()
                n = sum(len(sources[p].audio) for p in parts)
                ch.utts.append(Utt(f"{spk}-{ch.chapter}-{i:04d}", parts, n))
                total += n
                if total >= target:
                    return chapters
    return chapters


_SOURCES: list[SourceUtt] = []  # the decoded sources, inherited by the forked writers


def _write_chapter(job: tuple[str, list[Utt]]) -> int:
    folder, utts = job
    for u in utts:
        audio = np.concatenate([_SOURCES[p].audio for p in u.parts])
        sf.write(f"{folder}/{u.uid}.flac", audio, RATE, format="FLAC", subtype="PCM_16")
    return len(utts)


def build_corpus(
    sources: list[SourceUtt],
    root: Path,
    subsets: dict[str, str],
    train_hours: float,
    dev_minutes: float,
    seed: int,
    jobs: int,
) -> dict:
    """`root/LibriSpeech/<subset>/...` with `train_hours` of training audio; returns its sizes and build time."""
    global _SOURCES
    t0 = time.monotonic()
    plans = {
        split: plan_split(
            sources,
            train_hours * 3600 if split == "train" else dev_minutes * 60,
            random.Random(f"{seed}-{split}"),
            split,
        )
        for split in ("train", "dev", "test")
    }
    work = []
    for split, chapters in plans.items():
        for ch in chapters:
            folder = root / "LibriSpeech" / subsets[split] / str(ch.speaker) / str(ch.chapter)
            folder.mkdir(parents=True, exist_ok=True)
            lines = [f"{u.uid} {' '.join(sources[p].text for p in u.parts)}\n" for u in ch.utts]
            (folder / f"{ch.speaker}-{ch.chapter}.trans.txt").write_text("".join(lines))
            work.append((str(folder), ch.utts))
    _SOURCES = sources
    if jobs > 1:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            for _ in pool.imap_unordered(_write_chapter, work):
                pass
    else:
        for job in work:
            _write_chapter(job)
    seconds = {s: sum(u.samples for ch in c for u in ch.utts) / RATE for s, c in plans.items()}
    build = time.monotonic() - t0
    return {
        "hours": {s: round(v / 3600, 4) for s, v in seconds.items()},
        "utterances": {s: sum(len(ch.utts) for ch in c) for s, c in plans.items()},
        "speakers": {s: len({ch.speaker for ch in c}) for s, c in plans.items()},
        "audio_seconds": round(sum(seconds.values()), 1),
        "flac_mb": round(du(root) / MB, 1),
        "build_seconds": round(build, 1),
        "build_audio_seconds_per_second": round(sum(seconds.values()) / build, 1),
    }


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@dataclass
class Measured:
    rc: int | None
    wall: float  # seconds: to the exit, or the window when stopped
    stopped: bool
    sampler: TreeSampler
    markers: dict[str, tuple[float, int]]  # name → (seconds, tree RssAnon then)
    log: str


def run_measured(
    cmd: list[str],
    log: Path,
    env: dict[str, str],
    window: float | None = None,
    ranks: bool = False,
    grace: float = 30.0,
    markers: dict[str, str] | None = None,
    interval: float = 0.2,
) -> Measured:
    """Run `cmd` in its own session, polling its process tree; after `window` s, SIGINT it (its ranks when `ranks`),
    SIGKILL the session `grace` s later. `markers`: regexes whose first appearance in the output is timed."""
    t0 = time.monotonic()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    sampler = TreeSampler(proc.pid, interval, t0)
    sampler.start()
    seen: dict[str, tuple[float, int]] = {}
    stopped_at = None
    try:
        while proc.poll() is None:
            now = time.monotonic() - t0
            if window is not None and stopped_at is None and now >= window:
                for pid in children(proc.pid) if ranks else [proc.pid]:
                    try:
                        os.kill(pid, signal.SIGINT)
                    except ProcessLookupError:
                        pass
                stopped_at = now
            if stopped_at is not None and now - stopped_at > grace:
                os.killpg(proc.pid, signal.SIGKILL)
            if markers and len(seen) < len(markers):
                text = log.read_text(errors="replace")
                for name, rx in markers.items():
                    if name not in seen and re.search(rx, text, re.M):
                        seen[name] = (round(now, 1), sampler.current_anon)
            time.sleep(0.1)
        end = time.monotonic() - t0
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything of the session still alive: a worker, an orphan
        except ProcessLookupError:
            pass
        proc.wait()
        sampler.stop()
    return Measured(
        proc.returncode,
        stopped_at if stopped_at is not None else end,
        stopped_at is not None,
        sampler,
        seen,
        log.read_text(errors="replace"),
    )


def shard_indexes(data: Path) -> list[Path]:
    return sorted(data.glob("feats/*/shard-*.json"))


def digest_shards(data: Path) -> dict[str, str]:
    import hashlib

    return {
        str(p.relative_to(data)): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(data.glob("feats/*/shard-*"))
    }


def jobs_and_resume(
    d: Path, recipe: str, set_args: list[str], corpus: dict, env: dict[str, str], exe: str, jobs: int, interval: float
) -> dict:
    """`prepare --jobs 1` against `--jobs N` on one corpus, each from nothing; then a `--jobs N` run killed (SIGKILL)
    once half its feature shards are written, and the run after it: what it computed, and whether the result is
    the uninterrupted run's."""
    data = d / "data"
    out: dict = {}
    for j in (1, jobs):
        shutil.rmtree(data, ignore_errors=True)
        m = run_measured(
            [exe, "prepare", recipe, *set_args, "--jobs", str(j)], d / f"prepare-jobs{j}.log", env, interval=interval
        )
        if m.rc != 0:
            fail(f"prepare --jobs {j}", m)
        out[f"jobs_{j}"] = {
            "wall_seconds": round(m.wall, 1),
            "audio_seconds_per_second": round(corpus["audio_seconds"] / m.wall, 1),
            **memory(m),
        }
    speedup = out["jobs_1"]["wall_seconds"] / out[f"jobs_{jobs}"]["wall_seconds"]
    out["speedup"] = round(speedup, 2)
    out["speedup_per_job"] = round(speedup / jobs, 2)
    whole = digest_shards(data)
    total = len(shard_indexes(data))
    shutil.rmtree(data)
    with open(d / "prepare-killed.log", "w") as fh:
        proc = subprocess.Popen(
            [exe, "prepare", recipe, *set_args, "--jobs", str(jobs)],
            cwd=ROOT,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    while proc.poll() is None and len(shard_indexes(data / ".partial")) < total // 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(shard_indexes(data / ".partial"))
    t0 = time.time()
    m = run_measured(
        [exe, "prepare", recipe, *set_args, "--jobs", str(jobs)], d / "prepare-resumed.log", env, interval=interval
    )
    if m.rc != 0:
        fail("the resumed prepare", m)
    redone = sum(p.stat().st_mtime >= t0 for p in shard_indexes(data))
    out["resume"] = {
        "shards": total,
        "written_when_killed": done,
        "written_by_the_next_run": redone,
        "next_run_wall_seconds": round(m.wall, 1),
        "uninterrupted_wall_seconds": out[f"jobs_{jobs}"]["wall_seconds"],
        "same_shards_as_uninterrupted": digest_shards(data) == whole,
    }
    return out


def memory(m: Measured) -> dict:
    anon, rss = m.sampler.peak(until=m.wall)
    return {
        "peak_rss_anon_mb": round(anon / MB, 1),
        "peak_rss_mb": round(rss / MB, 1),
        "peak_vmhwm_mb": round(
            max((p.hwm for p in m.sampler.procs.values()), default=0) / MB, 1
        ),  # the largest process's
        "processes": len(m.sampler.procs),
    }


def fail(what: str, m: Measured) -> None:
    raise SystemExit(f"scale: {what} failed (exit {m.rc}):\n{m.log[-3000:]}")


def train_progress(m: Measured, train_seconds: float) -> dict:
    """Audio trained in the window, from the epoch lines and where the run says it stopped (batches ∝ audio)."""
    epochs = [(int(e), float(r)) for e, r in re.findall(r"^epoch (\d+): .*\(\d+ s, ([\d.]+) audio-s/s", m.log, re.M)]
    done = max((e for e, _ in epochs), default=0)
    stop = re.search(r"interrupted at epoch (\d+) of \d+, batch (\d+) of (\d+)", m.log)
    if stop:
        audio = (int(stop[1]) - 1) * train_seconds + int(stop[2]) / int(stop[3]) * train_seconds
    elif re.search(r"interrupted before epoch (\d+)", m.log) or not m.stopped:
        audio = done * train_seconds
    else:
        audio = None  # killed without saying where
    return {
        "epochs_completed": done,
        "epoch_audio_seconds_per_second": [r for _, r in epochs],
        "audio_seconds_trained_approx": None if audio is None else round(audio, 1),
        "audio_seconds_per_second_approx": None if audio is None else round(audio / m.wall, 1),
    }


def growth(points: list[tuple[float, float]]) -> dict:
    """MB per training hour between consecutive sizes; the line through the two largest projected to PROJECT_TO."""
    pts = sorted(points)
    steps = [
        {"from_hours": a[0], "to_hours": b[0], "mb_per_hour": round((b[1] - a[1]) / (b[0] - a[0]), 1)}
        for a, b in zip(pts, pts[1:])
        if b[0] > a[0]
    ]
    if not steps:
        return {"per_hour": [], "projection_mb": None}
    slope = (pts[-1][1] - pts[-2][1]) / (pts[-1][0] - pts[-2][0])
    return {
        "per_hour": steps,
        "projection_mb": {f"{h}h": round(pts[-1][1] + slope * (h - pts[-1][0])) for h in PROJECT_TO},
        "projection_from": f"the line through {pts[-2][0]} h and {pts[-1][0]} h",
    }


def machine() -> dict:
    mem = next(
        (
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        ),
        0,
    )
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.machine(),
    )
    versions = {}
    for pkg in ("asrkit", "torch"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem / 1024**2, 1),
        "python": platform.python_version(),
        **versions,
        "commit": commit or None,
    }


def table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title=f"peaks of the process tree (MB = 2^20 B); train: its first {result['train_seconds']:g} s", padding=(0, 1)
    )
    t.add_column("")
    for s in result["sizes"]:
        t.add_column(f"{s['corpus']['hours']['train']:.2f} h", justify="right", no_wrap=True)

    def fmt(x: float | None, digits: int = 0) -> str:
        return "-" if x is None else f"{x:,.{digits}f}"

    rows = [
        ("corpus build s", lambda s: fmt(s["corpus"]["build_seconds"], 1)),
        ("prepare RssAnon", lambda s: fmt(s["prepare"]["peak_rss_anon_mb"])),
        ("prepare RSS", lambda s: fmt(s["prepare"]["peak_rss_mb"])),
        ("prepare wall s", lambda s: fmt(s["prepare"]["wall_seconds"], 1)),
        ("prepare audio-s/s", lambda s: fmt(s["prepare"]["audio_seconds_per_second"])),
        ("train RssAnon", lambda s: fmt(s["train"]["peak_rss_anon_mb"])),
        ("train RSS", lambda s: fmt(s["train"]["peak_rss_mb"])),
        ("train RssAnon, data loaded", lambda s: fmt(s["train"]["rss_anon_at_data_loaded_mb"])),
        ("train audio-s/s (approx.)", lambda s: fmt(s["train"]["audio_seconds_per_second_approx"])),
    ]
    for name, get in rows:
        t.add_row(name, *(get(s) for s in result["sizes"]))
    con = Console()
    con.print(t)
    for stage in ("prepare", "train"):
        g = result["growth"][stage]
        steps = (
            ", ".join(f"{x['from_hours']:g}→{x['to_hours']:g} h: {x['mb_per_hour']:+.0f} MB/h" for x in g["per_hour"])
            or "one size only"
        )
        proj = g["projection_mb"]
        con.print(
            f"{stage}: peak RssAnon growth {steps}"
            + (f"; projected {', '.join(f'{k}: {v:,} MB' for k, v in proj.items())}" if proj else "")
        )
    pj = result.get("prepare_jobs") or {}
    if pj:
        n = next(k for k in pj if k.startswith("jobs_") and k != "jobs_1")
        r = pj["resume"]
        con.print(
            f"prepare at {pj['train_hours']:.2f} h: --jobs 1 {pj['jobs_1']['wall_seconds']} s, --{n.replace('_', ' ')} "
            f"{pj[n]['wall_seconds']} s: {pj['speedup']}× ({pj['speedup_per_job']} per job); killed with {r['written_when_killed']} of "
            f"{r['shards']} shards written, the next run wrote {r['written_by_the_next_run']} in {r['next_run_wall_seconds']} s, "
            f"same shards as uninterrupted: {r['same_shards_as_uninterrupted']}"
        )
    tr = result["torchrun"]
    if "ranks" in tr:
        per = ", ".join(f"rank {r['rank']}: {r['peak_rss_anon_mb']:.0f} MB" for r in tr["ranks"])
        con.print(
            f"torchrun, 2 gloo ranks at {tr['train_hours']:.2f} h: peak RssAnon {per}; launcher {tr['launcher_peak_rss_anon_mb']:.0f} MB; "
            f"tree {tr['peak_rss_anon_mb']:.0f} MB (one process: {tr['single_process_peak_rss_anon_mb']:.0f} MB)"
        )
    else:
        con.print(f"torchrun: {tr.get('skipped')}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, nargs="+", default=[2, 8, 32], help="training hours of each corpus")
    ap.add_argument("--train-seconds", type=float, default=75.0, help="how long each training run goes before Ctrl-C")
    ap.add_argument(
        "--dev-minutes", type=float, default=3.0, help="audio of dev-clean and of test-clean, at every size"
    )
    ap.add_argument("--recipe", default="recipes/librispeech.yaml")
    ap.add_argument(
        "--set", dest="sets", action="append", default=[], help="more recipe overrides (after the small model's)"
    )
    ap.add_argument("--source", default=str(SOURCE), help="folder holding the real LibriSpeech/ utterances")
    ap.add_argument(
        "--work", default=None, help="where corpora, prepared data and runs go (default: a temporary folder)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the corpora, prepared data, runs and logs")
    ap.add_argument("--no-torchrun", action="store_true", help="skip the two-rank torchrun run")
    ap.add_argument(
        "--torchrun-hours", type=float, default=None, help="the size torchrun trains on (default: the smallest)"
    )
    ap.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="processes writing FLAC, and prepare's --jobs"
    )
    ap.add_argument(
        "--jobs-hours",
        type=float,
        default=None,
        help="the size at which prepare --jobs 1 and --jobs N, and a killed and resumed prepare, are timed (default: the largest)",
    )
    ap.add_argument("--grace", type=float, default=30.0, help="seconds a run gets to stop after Ctrl-C before SIGKILL")
    ap.add_argument("--interval", type=float, default=0.2, help="seconds between memory samples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "bench/results/scale.json"))
    args = ap.parse_args()

    source = Path(args.source)
    sources = load_sources(source) if (source / "LibriSpeech").is_dir() else []
    if len(sources) < 2:
        reason = f"no LibriSpeech utterances under {source / 'LibriSpeech'} (the shared data folder is absent)"
        print(f"scale: skipped: {reason}", file=sys.stderr)
        print(json.dumps({"benchmark": "scale", "skipped": reason}))
        return 0
    hours = sorted(set(args.hours))
    tr_hours = None if args.no_torchrun else (args.torchrun_hours if args.torchrun_hours is not None else hours[0])
    jobs_hours = args.jobs_hours if args.jobs_hours is not None else hours[-1]
    if tr_hours is not None and tr_hours not in hours:
        raise SystemExit(f"scale: --torchrun-hours {tr_hours} is not one of --hours {hours}")
    splits = (yaml.safe_load((ROOT / args.recipe).read_text()).get("data") or {}).get("splits") or {}
    subsets = {
        s: (splits.get(s) or [d])[0]
        for s, d in (("train", "train-clean-100"), ("dev", "dev-clean"), ("test", "test-clean"))
    }
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    temp = args.work is None
    work = Path(tempfile.mkdtemp(prefix="asrkit-scale-")) if temp else Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    sizes, torchrun, jobs = [], {"skipped": "--no-torchrun"}, {}
    try:
        for h in hours:
            d = work / f"{h:g}h"
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
            print(f"scale: {h:g} h: building the corpus in {d}", file=sys.stderr, flush=True)
            corpus = build_corpus(sources, d / "corpus", subsets, h, args.dev_minutes, args.seed, args.jobs)
            sets = [
                f"data.root={d / 'corpus'}",
                f"data.out_dir={d / 'data'}",
                f"train.exp_dir={d / 'exp'}",
                *SMALL_MODEL,
                *args.sets,
            ]
            set_args = [a for s in sets for a in ("--set", s)]
            print(
                f"scale: {h:g} h: {corpus['audio_seconds'] / 3600:.2f} h of FLAC in {corpus['build_seconds']} s; prepare",
                file=sys.stderr,
                flush=True,
            )
            m = run_measured(
                [str(bindir / "asrkit"), "prepare", args.recipe, *set_args, "--jobs", str(args.jobs)],
                d / "prepare.log",
                env,
                interval=args.interval,
            )
            if m.rc != 0:
                fail(f"prepare at {h:g} h", m)
            prepare = {
                "wall_seconds": round(m.wall, 1),
                "audio_seconds_per_second": round(corpus["audio_seconds"] / m.wall, 1),
                **memory(m),
                "feats_mb": round(du(d / "data" / "feats") / MB, 1),
                "timeline": m.sampler.timeline(),
            }
            print(
                f"scale: {h:g} h: prepare {m.wall:.0f} s, peak RssAnon {prepare['peak_rss_anon_mb']:.0f} MB; train {args.train_seconds:g} s",
                file=sys.stderr,
                flush=True,
            )
            loaded = {"data_loaded": r"^\S+: \d+ train utts \("}
            m = run_measured(
                [str(bindir / "asrkit"), "train", args.recipe, "--fresh", *set_args],
                d / "train.log",
                env,
                window=args.train_seconds,
                grace=args.grace,
                markers=loaded,
                interval=args.interval,
            )
            if not m.stopped and m.rc != 0:
                fail(f"train at {h:g} h", m)
            at = m.markers.get("data_loaded")
            train = {
                "window_seconds": round(m.wall, 1),
                "stopped_by_sigint": m.stopped,
                **memory(m),
                "data_loaded_at_s": at[0] if at else None,
                "rss_anon_at_data_loaded_mb": round(at[1] / MB, 1) if at else None,
                **train_progress(m, corpus["hours"]["train"] * 3600),
                "timeline": m.sampler.timeline(),
            }
            sizes.append({"hours": h, "corpus": corpus, "prepare": prepare, "train": train})
            print(
                json.dumps(
                    {k: v for k, v in sizes[-1].items() if k != "corpus"}
                    | {
                        "prepare": {k: v for k, v in prepare.items() if k != "timeline"},
                        "train": {k: v for k, v in train.items() if k != "timeline"},
                    }
                ),
                flush=True,
            )
            if h == tr_hours:
                print(f"scale: {h:g} h: torchrun, 2 gloo ranks, {args.train_seconds:g} s", file=sys.stderr, flush=True)
                tr_sets = [a for s in [*sets, f"train.exp_dir={d / 'exp-ddp'}"] for a in ("--set", s)]
                m = run_measured(
                    [
                        str(bindir / "torchrun"),
                        "--standalone",
                        "--nproc-per-node",
                        "2",
                        "-m",
                        "asrkit",
                        "train",
                        args.recipe,
                        "--fresh",
                        *tr_sets,
                    ],
                    d / "torchrun.log",
                    {"OMP_NUM_THREADS": "1", **env},
                    window=args.train_seconds,
                    ranks=True,
                    grace=args.grace,
                    markers=loaded,
                    interval=args.interval,
                )
                if not m.stopped and m.rc != 0:
                    fail(f"torchrun at {h:g} h", m)
                s = m.sampler
                ranks = sorted(
                    (
                        {
                            "rank": int(s.procs[g].env_rank) if s.procs[g].env_rank else None,
                            "pid": g,
                            "peak_rss_anon_mb": round(v / MB, 1),
                            "peak_vmhwm_mb": round(s.procs[g].hwm / MB, 1),
                        }
                        for g, v in s.groups.items()
                        if g in s.procs
                    ),
                    key=lambda r: (r["rank"] is None, r["rank"] or 0),
                )
                torchrun = {
                    "train_hours": corpus["hours"]["train"],
                    "window_seconds": round(m.wall, 1),
                    **memory(m),
                    "ranks": ranks,
                    "launcher_peak_rss_anon_mb": round(s.procs[s.pid].anon / MB, 1) if s.pid in s.procs else None,
                    "single_process_peak_rss_anon_mb": train["peak_rss_anon_mb"],
                    "timeline": s.timeline(),
                }
            if h == jobs_hours:
                print(
                    f"scale: {h:g} h: prepare --jobs 1 and --jobs {args.jobs}, then killed at half and resumed",
                    file=sys.stderr,
                    flush=True,
                )
                jobs = {
                    "train_hours": corpus["hours"]["train"],
                    **jobs_and_resume(
                        d, args.recipe, set_args, corpus, env, str(bindir / "asrkit"), args.jobs, args.interval
                    ),
                }
                print(json.dumps({"prepare_jobs": jobs}), flush=True)
            if not args.keep:
                shutil.rmtree(d, ignore_errors=True)
    finally:
        if temp and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    th = [s["corpus"]["hours"]["train"] for s in sizes]
    result = {
        "benchmark": "asrkit prepare and the first seconds of asrkit train on LibriSpeech-layout corpora of growing size "
        "(real sample utterances joined at random); peak private memory (RssAnon) and RSS of the process tree, polled",
        "date": datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        "recipe": args.recipe,
        "overrides": [*SMALL_MODEL, *args.sets],
        "train_seconds": args.train_seconds,
        "dev_minutes": args.dev_minutes,
        "seed": args.seed,
        "poll_seconds": args.interval,
        "source": {
            "folder": str(source),
            "utterances": len(sources),
            "seconds": round(sum(len(x.audio) for x in sources) / RATE, 1),
        },
        "units": "MB = 2^20 bytes; growth per hour of training audio; projections linear",
        "sizes": sizes,
        "growth": {
            "prepare": growth([(h, s["prepare"]["peak_rss_anon_mb"]) for h, s in zip(th, sizes)]),
            "train": growth([(h, s["train"]["peak_rss_anon_mb"]) for h, s in zip(th, sizes)]),
        },
        "torchrun": torchrun,
        "prepare_jobs": jobs,
        "wall_seconds": round(time.monotonic() - t_start, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    table(result)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
