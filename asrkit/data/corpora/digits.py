"""Free Spoken Digit Dataset: isolated digits plus connected-digit utterances built from them."""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asrkit.config import Recipe
from asrkit.data.manifest import Utterance
from asrkit.errors import InputError

# The dataset's repository at the commit the embedded copy was taken from.
ARCHIVE_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/26eb9aaf.zip"
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.(wav|flac)$", re.IGNORECASE)
DITHER = 1e-4  # gaps between joined digits get faint noise: real pauses are never digital zero


@dataclass(frozen=True)
class Recording:
    path: Path
    digit: int
    speaker: str
    index: int

    @property
    def id(self) -> str:
        return f"{self.digit}_{self.speaker}_{self.index}"


def download(dest: str | Path, quiet: bool = False) -> Path:
    """Download the dataset's GitHub archive into `dest` and return the folder holding `recordings/`."""
    from asrkit.data.download import extract, fetch

    dest = Path(dest)
    found = _find_recordings(dest)
    if found:
        return found
    archive = fetch(ARCHIVE_URL, dest / "fsdd.zip", quiet=quiet)
    extract(archive, dest)
    found = _find_recordings(dest)
    if not found:
        raise InputError(f"the archive {archive} has no recordings/ folder of FSDD files")
    return found


def _find_recordings(root: Path) -> Path | None:
    """The folder that holds `{digit}_{speaker}_{index}` files: root, root/recordings, or one level below."""
    if not root.is_dir():
        return None
    candidates = [root, root / "recordings", *sorted(root.glob("*/recordings"))]
    for c in candidates:
        if c.is_dir() and any(_NAME.match(p.name) for p in c.iterdir()):
            return c
    return None


def locate(recipe: Recipe, allow_download: bool = False, quiet: bool = False) -> Path:
    """Where the recordings are: data.root, else $ASRKIT_DATA/fsdd, else the embedded copy (or a download)."""
    if recipe.data.root:
        root = Path(os.path.expandvars(os.path.expanduser(recipe.data.root)))
        found = _find_recordings(root)
        if found:
            return found
        if allow_download:
            return download(root, quiet)
        raise InputError(f"data.root {root} holds no FSDD recordings ({{digit}}_{{speaker}}_{{index}}.wav)")
    env = os.environ.get("ASRKIT_DATA")
    if env:
        found = _find_recordings(Path(env) / "fsdd")
        if found:
            return found
        if allow_download:
            return download(Path(env) / "fsdd", quiet)
    if allow_download:
        return download(Path.home() / ".cache" / "asrkit" / "fsdd", quiet)
    from asrkit.assets import fsdd_root

    found = _find_recordings(Path(fsdd_root()))
    if not found:
        raise InputError("the embedded FSDD recordings are missing; set data.root or run prepare --download")
    return found


def scan(folder: Path) -> list[Recording]:
    recs = []
    for p in sorted(folder.iterdir()):
        m = _NAME.match(p.name)
        if m:
            recs.append(Recording(p, int(m.group(1)), m.group(2).lower(), int(m.group(3))))
    if not recs:
        raise InputError(f"{folder} holds no FSDD recordings")
    return recs


def split_recordings(recs: list[Recording], recipe: Recipe) -> dict[str, list[Recording]]:
    """Official rule (indices 0-4 test, the rest train, `dev_indices` held out of train) or held-out speakers."""
    d = recipe.data
    speakers = sorted({r.speaker for r in recs})
    unknown = [s for s in d.test_speakers if s not in speakers]
    if unknown:
        raise InputError(f"data.test_speakers: unknown speaker(s) {unknown}; present: {speakers}")
    dev = set(d.dev_indices)
    out: dict[str, list[Recording]] = {"train": [], "dev": [], "test": []}
    for r in recs:
        if d.split == "speakers":
            split = "test" if r.speaker in d.test_speakers else ("dev" if r.index in dev else "train")
        else:
            split = "test" if r.index <= 4 else ("dev" if r.index in dev else "train")
        out[split].append(r)
    for name, items in out.items():
        if not items:
            raise InputError(f"the {name} split is empty; check data.split, data.test_speakers and data.dev_indices")
    return out


def prepare(recipe: Recipe, out_dir: Path, root: Path, progress: Callable[[int], None] | None = None) -> dict[str, list[Utterance]]:
    """Resample every recording, build connected-digit utterances, write audio; returns utterances per manifest.

    Manifests: train and dev (isolated + connected), test (connected), test_isolated.
    """
    import torch

    from asrkit.audio import load_audio, speed_perturb, write_audio

    sr = recipe.data.sample_rate
    splits = split_recordings(scan(root), recipe)
    rng = random.Random(recipe.data.seed)
    gen = np.random.default_rng(recipe.data.seed)
    result: dict[str, list[Utterance]] = {}
    for split, recs in splits.items():
        audio_dir = out_dir / "audio" / split
        waves = {}
        utts: list[Utterance] = []
        for r in recs:
            wav = load_audio(r.path, sr)
            waves[r.id] = wav
            if recipe.data.isolated:
                path = audio_dir / f"{r.id}.flac"
                write_audio(path, wav, sr)
                utts.append(Utterance(r.id, str(path.resolve()), len(wav) / sr, sr, WORDS[r.digit], r.speaker))
            if progress:
                progress(1)
        c = recipe.data.connected
        for k in range(c.per_split.get(split, 0)):
            n = rng.randint(c.min_words, c.max_words)
            # one speaker per utterance, as a person reading a digit string would be
            spk = rng.choice(sorted({r.speaker for r in recs}))
            pool = [r for r in recs if r.speaker == spk]
            chosen = [rng.choice(pool) for _ in range(n)]
            pieces = []
            for i, r in enumerate(chosen):
                lo, hi = c.gap_seconds
                gap = rng.uniform(lo, hi) if 0 < i else rng.uniform(0.0, hi)
                pieces.append(torch.from_numpy(gen.normal(0, DITHER, int(gap * sr)).astype(np.float32)))
                wav = waves[r.id]
                if split == "train" and recipe.data.speed_perturb:
                    # each word at its own speed: more voices than the training speakers have
                    wav = speed_perturb(wav, sr, rng.uniform(*recipe.data.speed_perturb))
                pieces.append(wav)
            pieces.append(torch.from_numpy(gen.normal(0, DITHER, int(rng.uniform(0.0, c.gap_seconds[1]) * sr)).astype(np.float32)))
            wav = torch.cat(pieces)
            uid = f"con{k:05d}_{spk}"
            path = audio_dir / f"{uid}.flac"
            write_audio(path, wav, sr)
            text = " ".join(WORDS[r.digit] for r in chosen)
            utts.append(Utterance(uid, str(path.resolve()), len(wav) / sr, sr, text, spk, extra={"kind": "connected"}))
            if progress:
                progress(1)
        iso = [u for u in utts if "kind" not in u.extra]
        if split == "test":
            # the headline test set is connected digits; isolated recordings are scored on their own
            result["test_isolated"] = iso
            utts = [u for u in utts if u not in iso]
        result[split] = utts
    return result


def count_work(recipe: Recipe, root: Path) -> int:
    """How many progress steps `prepare` will report."""
    n = len(scan(root))
    return n + sum(recipe.data.connected.per_split.values())
