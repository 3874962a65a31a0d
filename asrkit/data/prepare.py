"""`asrkit prepare`: corpus on disk → manifests, vocabulary, cached features, CMVN statistics."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import torch

from asrkit.config import Recipe, resolve_targets
from asrkit.data.corpora import get_corpus
from asrkit.data.featcache import load_features, save_features
from asrkit.data.manifest import Utterance, read_manifest, write_manifest
from asrkit.errors import InputError
from asrkit.features import CMVNStats, feature_settings, make_extractor, speech_frames
from asrkit.fsutil import atomic_write, atomic_write_text, disk_full, no_space
from asrkit.progress import Progress
from asrkit.text import (
    CharTokenizer,
    FrameTokenizer,
    LabelSet,
    PhonemeTokenizer,
    filter_transcripts,
    normalize_text,
)

DONE = "prepare.json"


def _fingerprint(recipe: Recipe, root: Path) -> dict:
    return {"data": recipe.to_dict()["data"], "features": feature_settings(recipe.features, recipe.data.sample_rate), "root": str(root)}


def prepare(recipe: Recipe, download: bool = False, force: bool = False, quiet: bool = False) -> Path:
    """Prepare the recipe's corpus into `recipe.data_dir`; skipped when already done with the same settings.

    Everything is built in `<data dir>/.partial/` and moved into place only once complete, so a failed or killed
    run (disk full, Ctrl-C) leaves an earlier complete preparation as it was, never a mix of old and new files.
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
    build = out / PARTIAL
    shutil.rmtree(build, ignore_errors=True)  # what a killed earlier run left
    try:
        build.mkdir(parents=True)
        _build(recipe, corpus, root, build, fp, quiet)
    except BaseException as e:
        shutil.rmtree(build, ignore_errors=True)
        if isinstance(e, Exception) and disk_full(e, out):
            raise no_space(getattr(e, "filename", None) or build) from None
        raise
    _commit(build, out)
    return out


PARTIAL = ".partial"


def _build(recipe: Recipe, corpus, root: Path, out: Path, fp: dict, quiet: bool) -> None:
    """Manifests, vocabulary, features, CMVN and the completion stamp, all into `out`."""
    with Progress(quiet) as prog:
        task = prog.add(f"prepare {recipe.name}", total=corpus.count_work(recipe, root), unit="utt")
        manifests = corpus.prepare(recipe, out, root, progress=lambda n: prog.advance(task, n))
    targets = resolve_targets(recipe)
    if targets == "phonemes":
        manifests = derive_phonemes_from_text(recipe, manifests, out)
    if targets == "chars":
        for utts in manifests.values():
            for u in utts:
                if u.text is not None:
                    u.text = normalize_text(u.text)
        manifests = filter_transcripts(manifests, recipe.data.alphabet, recipe.data.oov)  # out-of-vocabulary and empty texts
    if "train" not in manifests or not manifests["train"]:
        raise InputError(f"corpus {recipe.data.corpus}: the train split is empty")
    build_tokenizer(targets, manifests["train"], recipe.data.alphabet).save(out / "vocab.txt")
    counts = {}
    for name, utts in manifests.items():
        write_manifest(out / f"{name}.jsonl", utts)
        counts[name] = {"utterances": len(utts), "hours": round(sum(u.duration for u in utts) / 3600, 4)}
    compute_features(recipe, out, list(manifests), quiet=quiet)
    atomic_write_text(out / DONE, json.dumps({"fingerprint": fp, "counts": counts}, indent=1))


def _commit(build: Path, out: Path) -> None:
    """Move a complete build over the data dir: the stamp goes first and comes back last (no stamp: not prepared)."""
    (out / DONE).unlink(missing_ok=True)
    for sub in ("audio", "feats"):  # regenerated caches: nothing of the previous preparation may linger in them
        shutil.rmtree(out / sub, ignore_errors=True)
    for entry in sorted(build.iterdir(), key=lambda e: e.name == DONE):
        dst = out / entry.name
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        os.replace(entry, dst)
    build.rmdir()


def derive_phonemes_from_text(recipe: Recipe, manifests: dict[str, list[Utterance]], out: Path) -> dict[str, list[Utterance]]:
    """Phoneme targets from CMUdict for transcribed utterances that have none; those with OOV words are dropped (oov.txt)."""
    from collections import Counter

    from asrkit.phonemes import derive_phonemes, lexicon_path, oov_report, read_cmudict

    if all(u.phonemes or not u.text for utts in manifests.values() for u in utts):
        return manifests
    lexicon = read_cmudict(lexicon_path(recipe.data.phonemes.lexicon))
    total: Counter = Counter()
    for name, utts in manifests.items():
        kept, oov = derive_phonemes(utts, lexicon)
        if len(kept) < len(utts):
            print(f"prepare: {name}: dropped {len(utts) - len(kept)} of {len(utts)} utterances with words missing "
                  f"from the pronunciation dictionary", file=sys.stderr)
        manifests[name] = kept
        total.update(oov)
    report = oov_report(total)
    atomic_write_text(out / "oov.txt", "".join(f"{w}\t{n}\n" for w, n in total.most_common()))
    if total:
        final = out.parent if out.name == PARTIAL else out  # where the file lands once the preparation is complete
        print(f"prepare: {report} (all listed in {final / 'oov.txt'})", file=sys.stderr)
    return manifests


def build_tokenizer(targets: str, train: list[Utterance], alphabet: str | None = None):
    """The vocabulary a model learns: the fixed `alphabet` (+ space), or what the training utterances hold."""
    if targets == "phonemes":
        from asrkit.phonemes import PHONEMES

        found = PhonemeTokenizer.build_phones(train)
        # the 40-phoneme ARPAbet set + blank, as HW3P2 fixes it, whenever the data use no other symbol
        return PhonemeTokenizer(PHONEMES) if set(found.symbols[1:]) <= set(PHONEMES) else found
    if targets == "labels":
        return LabelSet.build(train)
    if targets == "frames":
        return FrameTokenizer.build(train)
    if alphabet:
        if len(set(alphabet)) != len(alphabet):
            raise InputError(f"data.alphabet {alphabet!r} repeats a character")
        tok = CharTokenizer(sorted(set(alphabet) | {" "}))
        for u in train:
            tok.encode(u.text or "", u.id)  # a training text outside the alphabet: an error that names it
        return tok
    return CharTokenizer.build(u.text for u in train if u.text)


def load_tokenizer(recipe: Recipe, train: list[Utterance]):
    """The tokenizer a recipe's model trains towards: the prepared vocab.txt, or the training labels."""
    targets = resolve_targets(recipe)
    if targets in ("labels", "frames"):
        return build_tokenizer(targets, train)
    cls = PhonemeTokenizer if targets == "phonemes" else CharTokenizer
    return cls.load(recipe.data_dir / "vocab.txt")


def read_npy_features(path: str | Path, dim: int | None = None) -> torch.Tensor:
    """A (frames, dim) float matrix from a .npy file, with errors that name the file."""
    import numpy as np

    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InputError(f"features {path}: not a readable .npy array ({e})") from None
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.number):
        raise InputError(f"features {path}: expected a numeric (frames, dim) array, got shape {a.shape} {a.dtype}")
    if dim is not None and a.shape[1] != dim:
        raise InputError(f"features {path}: {a.shape[1]} dims per frame, the recipe says features.n_mels={dim}")
    if not np.isfinite(a).all():
        raise InputError(f"features {path}: holds NaN or infinite values")
    return torch.from_numpy(a.astype(np.float32))


def compute_features(recipe: Recipe, out: Path, names: list[str], quiet: bool = False) -> None:
    """Features per manifest into feats/<name>.pt (float16, id → frames × dims); CMVN stats from train.

    `features.type: logmel` computes log-mels from each utterance's audio; `precomputed` reads its `features`
    file (.npy), or asks the corpus module (`load_features`) when it has its own format.
    """
    from asrkit.audio import load_audio

    settings = feature_settings(recipe.features, recipe.data.sample_rate)
    precomputed = recipe.features.type == "precomputed"
    corpus = get_corpus(recipe.data.corpus)
    reader = getattr(corpus, "load_features", None)
    extractor = None if precomputed else make_extractor(settings)
    stats = CMVNStats(recipe.features.n_mels)
    manifests = {name: read_manifest(out / f"{name}.jsonl") for name in names}
    with Progress(quiet) as prog, torch.inference_mode():
        for name, utts in manifests.items():
            task = prog.add(f"features {name}", total=len(utts), unit="utt")
            feats = {}
            for u in utts:
                if precomputed:
                    if reader is not None:
                        f = reader(recipe, u)
                    elif u.features is not None:
                        f = read_npy_features(u.features, recipe.features.n_mels)
                    else:
                        raise InputError(f"utterance {u.id} has no features file (features.type is precomputed)")
                else:
                    if u.audio is None:
                        raise InputError(f"utterance {u.id} has no audio; set features.type: precomputed for feature corpora")
                    f = extractor(load_audio(u.audio, settings["sample_rate"]))
                if name == "train":  # prior_speech normalises by speech frames: its prior is the training set's speech
                    stats.add(f[speech_frames(f)] if recipe.features.cmvn == "prior_speech" and len(f) else f)
                feats[u.id] = f.to(torch.float16)
                prog.advance(task)
            save_features(out / "feats" / f"{name}.pt", feats)
    atomic_write(out / "cmvn.pt", lambda tmp: torch.save(stats.to_dict(), tmp))


def load_split(data_dir: Path, name: str) -> tuple[list[Utterance], dict[str, torch.Tensor]]:
    """A prepared split: its utterances and cached features."""
    m = data_dir / f"{name}.jsonl"
    f = data_dir / "feats" / f"{name}.pt"
    if not m.is_file() or not f.is_file():
        raise InputError(f"{m} or its features are missing; run `asrkit prepare` first")
    return read_manifest(m), load_features(f)
