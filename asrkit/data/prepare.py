"""`asrkit prepare`: corpus on disk → manifests, vocabulary, cached features, CMVN statistics."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import sys
import threading
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from asrkit.audio import load_audio
from asrkit.config import Recipe, resolve_targets
from asrkit.data.corpora import get_corpus
from asrkit.data.corpus import Corpus
from asrkit.data.featstore import FORMAT as STORE_FORMAT
from asrkit.data.featstore import finish_split, read_shard_index, shard_ranges, split_stats, write_shard
from asrkit.data.manifest import Utterance, read_manifest, write_manifest
from asrkit.data.prepared import build_tokenizer
from asrkit.errors import InputError
from asrkit.features import CMVNStats, feature_settings, make_extractor, speech_frames
from asrkit.fsutil import RunLock, atomic_write, atomic_write_text, disk_full, no_space
from asrkit.phonemes import derive_phonemes, lexicon_path, oov_report, read_cmudict
from asrkit.progress import Progress
from asrkit.text import filter_transcripts, normalize_text

DONE = "prepare.json"


def _fingerprint(recipe: Recipe, root: Path) -> dict:
    return {
        "data": recipe.to_dict()["data"],
        "features": feature_settings(recipe.features, recipe.data.sample_rate),
        "root": str(root),
        "store": STORE_FORMAT,
    }


def prepare(
    recipe: Recipe, download: bool = False, force: bool = False, quiet: bool = False, jobs: int | None = None
) -> Path:
    """Prepare the recipe's corpus into `recipe.data_dir`; skipped when already done with the same settings.

    Everything is built in `<data dir>/.partial/` and moved into place only once complete, so a failed or killed
    run (disk full, Ctrl-C) leaves an earlier complete preparation as it was, never a mix of old and new files.
    The build is kept when a run fails or is killed: the next run with the same settings goes on from its
    manifests and finished feature shards. Features are computed on `jobs` processes (default: the cores).
    """
    corpus = get_corpus(recipe.data.corpus)
    root = corpus.locate(recipe, allow_download=download, quiet=quiet)
    out = recipe.data_dir
    stamp = out / DONE
    fp = _fingerprint(recipe, root)
    if stamp.is_file() and not force:
        try:
            if json.loads(stamp.read_text())["fingerprint"] == fp:
                return out
        except (ValueError, KeyError):
            pass
    if jobs is not None and jobs < 1:
        raise InputError(f"--jobs must be at least 1, got {jobs}")
    lock = RunLock(out / LOCK, "data dir")  # two preparations of one data dir would share its build
    try:
        build = out / PARTIAL
        if force or not _resumable(build, fp):
            shutil.rmtree(build, ignore_errors=True)  # another preparation's leftovers
        try:
            build.mkdir(parents=True, exist_ok=True)
            atomic_write_text(build / STARTED, json.dumps(fp))
            _build(recipe, corpus, root, build, fp, quiet, jobs)
        except Exception as e:
            if disk_full(e, out):
                raise no_space(getattr(e, "filename", None) or build) from None
            raise
        _commit(build, out)
    finally:
        lock.release()
    return out


PARTIAL = ".partial"
LOCK = ".prepare.lock"
STARTED = "started.json"  # the build's fingerprint: a later run resumes the build only with the same settings
MANIFESTS = "manifests.json"  # manifests and vocabulary complete (their counts)


def _resumable(build: Path, fp: dict) -> bool:
    try:
        return json.loads((build / STARTED).read_text()) == json.loads(json.dumps(fp))
    except (OSError, ValueError):
        return False


def _build(
    recipe: Recipe, corpus: Corpus, root: Path, out: Path, fp: dict, quiet: bool, jobs: int | None = None
) -> None:
    """Manifests, vocabulary, features, CMVN and the completion stamp, all into `out`; manifests already made by
    an earlier, interrupted run of the same settings are kept."""
    try:
        counts = json.loads((out / MANIFESTS).read_text())
    except (OSError, ValueError):
        counts = _manifests(recipe, corpus, root, out, quiet)
    compute_features(recipe, out, list(counts), quiet=quiet, jobs=jobs)
    atomic_write_text(out / DONE, json.dumps({"fingerprint": fp, "counts": counts}, indent=1))


def _manifests(recipe: Recipe, corpus: Corpus, root: Path, out: Path, quiet: bool) -> dict:
    """The corpus's manifests and the vocabulary into `out`; returns the utterances and hours per manifest."""
    with Progress(quiet) as prog:
        task = prog.add(f"prepare {recipe.name}", total=corpus.count_work(root, recipe), unit="utt")
        manifests = corpus.prepare(root, out, recipe, progress=lambda n: prog.advance(task, n))
    targets = resolve_targets(recipe)
    if targets == "phonemes":
        manifests = derive_phonemes_from_text(recipe, manifests, out)
    if targets == "chars":
        for utts in manifests.values():
            for u in utts:
                if u.text is not None:
                    u.text = normalize_text(u.text)
        manifests = filter_transcripts(
            manifests, recipe.data.alphabet, recipe.data.oov
        )  # out-of-vocabulary and empty texts
    if "train" not in manifests or not manifests["train"]:
        raise InputError(f"corpus {recipe.data.corpus}: the train split is empty")
    build_tokenizer(targets, manifests["train"], recipe.data.alphabet).save(out / "vocab.txt")
    counts = {}
    for name, utts in manifests.items():
        write_manifest(out / f"{name}.jsonl", utts)
        counts[name] = {"utterances": len(utts), "hours": round(sum(u.duration for u in utts) / 3600, 4)}
    atomic_write_text(out / MANIFESTS, json.dumps(counts, indent=1))
    return counts


def _commit(build: Path, out: Path) -> None:
    """Move a complete build over the data dir: the stamp goes first and comes back last (no stamp: not prepared)."""
    (out / DONE).unlink(missing_ok=True)
    for name in (STARTED, MANIFESTS):
        (build / name).unlink(missing_ok=True)
    for sub in ("audio", "feats"):  # regenerated caches: nothing of the previous preparation may linger in them
        shutil.rmtree(out / sub, ignore_errors=True)
    for entry in sorted(build.iterdir(), key=lambda e: e.name == DONE):
        dst = out / entry.name
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        os.replace(entry, dst)
    build.rmdir()


def derive_phonemes_from_text(
    recipe: Recipe, manifests: dict[str, list[Utterance]], out: Path
) -> dict[str, list[Utterance]]:
    """Phoneme targets from CMUdict for transcribed utterances that have none; those with OOV words are dropped (oov.txt)."""
    if all(u.phonemes or not u.text for utts in manifests.values() for u in utts):
        return manifests
    lexicon = read_cmudict(lexicon_path(recipe.data.phonemes.lexicon))
    total: Counter = Counter()
    for name, utts in manifests.items():
        kept, oov = derive_phonemes(utts, lexicon)
        if len(kept) < len(utts):
            print(
                f"prepare: {name}: dropped {len(utts) - len(kept)} of {len(utts)} utterances with words missing "
                f"from the pronunciation dictionary",
                file=sys.stderr,
            )
        manifests[name] = kept
        total.update(oov)
    report = oov_report(total)
    atomic_write_text(out / "oov.txt", "".join(f"{w}\t{n}\n" for w, n in total.most_common()))
    if total:
        final = out.parent if out.name == PARTIAL else out  # where the file lands once the preparation is complete
        print(f"prepare: {report} (all listed in {final / 'oov.txt'})", file=sys.stderr)
    return manifests


def compute_features(recipe: Recipe, out: Path, names: list[str], quiet: bool = False, jobs: int | None = None) -> None:
    """Features per manifest into the feature store feats/<name>/ (float16 shards, see asrkit.data.featstore), on
    `jobs` worker processes (default: the cores); CMVN statistics from train into cmvn.pt.

    Shards already complete (a run killed half way) are kept. `features.type: logmel` computes log-mels from each
    utterance's audio; `precomputed` asks the corpus (`load_features`: most read the utterance's .npy file).
    """
    todo: list[tuple[str, int, list[Utterance]]] = []
    shards: dict[str, int] = {}
    for name in names:
        utts = read_manifest(out / f"{name}.jsonl")
        folder = out / "feats" / name
        folder.mkdir(parents=True, exist_ok=True)
        ranges = shard_ranges(len(utts))
        shards[name] = len(ranges)
        for k, (a, b) in enumerate(ranges):
            done = read_shard_index(folder, k)
            if done is None or done["ids"] != [u.id for u in utts[a:b]]:
                todo.append((name, k, utts[a:b]))
    with Progress(quiet) as prog:
        task = prog.add("features", total=sum(len(t[2]) for t in todo), unit="utt")
        run_shards(recipe, out, todo, min(jobs or default_jobs(), len(todo)), lambda n: prog.advance(task, n))
    stats = CMVNStats(recipe.features.n_mels)
    for name, n in shards.items():
        finish_split(out / "feats" / name, n)
    for s in split_stats(out / "feats" / "train", shards.get("train", 0)):
        stats.merge(s)
    atomic_write(out / "cmvn.pt", lambda tmp: torch.save(stats.to_dict(), tmp))


def default_jobs() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run_shards(recipe: Recipe, out: Path, todo: list, jobs: int, advance) -> None:
    """Compute the shards in `todo` on `jobs` processes: this one and `jobs - 1` spawned ones, each on one torch
    thread (so --jobs N is N times one worker's speed), calling `advance(utterances)` as each shard is done.

    This process takes shards from the same list as the others, so it computes from the start while the spawned
    processes import torch (seconds each); spawned, not forked, because a forked copy of a process that has started
    torch's thread pools can hang. The first error stops the handing out of shards and is raised here.
    """
    lock = threading.Lock()
    queue = iter(todo)
    failed: list[BaseException] = []

    def take():
        with lock:
            return None if failed else next(queue, None)

    def work(compute) -> None:
        try:
            while (job := take()) is not None:
                advance(compute(*job))
        except BaseException as e:  # noqa: BLE001 - handed to the caller, with Ctrl-C
            with lock:
                failed.append(e)

    pool = feeders = None
    if jobs > 1:
        pool = ProcessPoolExecutor(jobs - 1, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init)
        remote = lambda name, k, utts: pool.submit(feature_shard, recipe, out, name, k, utts).result()  # noqa: E731
        feeders = [threading.Thread(target=work, args=(remote,), daemon=True) for _ in range(jobs - 1)]
        for t in feeders:
            t.start()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        work(lambda name, k, utts: feature_shard(recipe, out, name, k, utts))
        for t in feeders or ():
            t.join()
    finally:
        torch.set_num_threads(threads)
        if pool is not None:
            with lock:
                failed.append(StopIteration())  # whatever happened here, the feeders take no more
            pool.shutdown(wait=True, cancel_futures=True)
    errors = [e for e in failed if not isinstance(e, StopIteration)]
    if errors:
        raise errors[0]


def _worker_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the pool
    torch.set_num_threads(1)


def feature_shard(recipe: Recipe, out: Path, name: str, k: int, utts: list[Utterance]) -> int:
    """Compute and write shard `k` of split `name` (with its CMVN sums when it is a training shard); returns its size."""
    settings = feature_settings(recipe.features, recipe.data.sample_rate)
    precomputed = recipe.features.type == "precomputed"
    corpus = get_corpus(recipe.data.corpus)
    extractor = None if precomputed else make_extractor(settings)
    stats = CMVNStats(recipe.features.n_mels) if name == "train" else None
    feats = []
    with torch.inference_mode():
        for u in utts:
            if precomputed:
                f = corpus.load_features(u, recipe)
            else:
                if u.audio is None:
                    raise InputError(
                        f"utterance {u.id} has no audio; set features.type: precomputed for feature corpora"
                    )
                f = extractor(load_audio(u.audio, settings["sample_rate"]))
            if stats is not None:  # prior_speech normalises by speech frames: its prior is the training set's speech
                stats.add(f[speech_frames(f)] if recipe.features.cmvn == "prior_speech" and len(f) else f)
            feats.append(f.to(torch.float16))
    write_shard(out / "feats" / name, k, [u.id for u in utts], feats, stats.sums() if stats else None)
    return len(utts)
