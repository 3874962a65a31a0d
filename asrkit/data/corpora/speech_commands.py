"""Google Speech Commands (v0.01, v0.02): one folder per word, the official validation/testing lists,
`_background_noise_/`; class sets all | 12 (10 commands + _silence_ + _unknown_) | a word list;
1-second clips; augmented training copies (time shift, background noise at a random SNR) made once."""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from asrkit.audio import load_audio, write_audio
from asrkit.config import Recipe
from asrkit.data.corpus import Manifests, npy_features
from asrkit.data.download import extract, fetch
from asrkit.data.manifest import Utterance
from asrkit.data.noise import fit_length, generate_noise, mix_at_snr, random_segment, time_shift
from asrkit.errors import InputError
from asrkit.fsutil import atomic_write_text

log = logging.getLogger(__name__)

# Archives and sha256 as published with torchaudio's SPEECHCOMMANDS dataset (and TensorFlow Datasets' checksums).
ARCHIVES = {
    "v0.01": (
        "http://download.tensorflow.org/data/speech_commands_v0.01.tar.gz",
        "743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d",
    ),
    "v0.02": (
        "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
        "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
    ),
}
NOISE_DIR = "_background_noise_"
VALIDATION_LIST = "validation_list.txt"
TESTING_LIST = "testing_list.txt"
SILENCE = "_silence_"
UNKNOWN = "_unknown_"
COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SPLITS = ("train", "dev", "test")
SILENCE_GAIN = 0.1  # silence clips: background noise at a random volume up to this (TensorFlow's background_volume)
NEAR_SILENCE_DB = (-60.0, -40.0)  # synthetic silence level (dBFS RMS) when the corpus has no background noise
SUMMARY = "speech_commands.json"


@dataclass(frozen=True)
class Clip:
    path: Path
    word: str

    @property
    def name(self) -> str:
        """The path as the official lists write it: `word/file.wav`."""
        return f"{self.word}/{self.path.name}"

    @property
    def speaker(self) -> str:
        """The speaker hash before `_nohash_` (the whole stem when the name has none)."""
        return self.path.stem.split("_nohash_")[0]

    @property
    def id(self) -> str:
        return f"{self.word}_{self.path.stem}"


def _is_root(p: Path) -> bool:
    return (p / VALIDATION_LIST).is_file() and (p / TESTING_LIST).is_file()


def find_root(path: Path) -> Path | None:
    """The folder holding the word folders and both lists: `path`, or one folder below it (newest version first)."""
    if not path.is_dir():
        return None
    if _is_root(path):
        return path
    below = sorted((p for p in path.iterdir() if p.is_dir() and _is_root(p)), key=lambda p: p.name, reverse=True)
    return below[0] if below else None


def download(target_dir: str | Path, recipe: Recipe | None = None, quiet: bool = False) -> Path:
    """Download and unpack the Speech Commands archive of `data.speech_commands.version` (without a recipe: v0.02)
    into `target_dir`/speech_commands_<version>/; return that folder."""
    dest = Path(target_dir)
    version = recipe.data.speech_commands.version if recipe is not None else "v0.02"

    if version not in ARCHIVES:
        raise InputError(f"unknown Speech Commands version {version!r}; known: {', '.join(ARCHIVES)}")
    target = dest / f"speech_commands_{version}"
    if _is_root(target):
        return target
    url, sha256 = ARCHIVES[version]
    archive = fetch(url, dest / url.rsplit("/", 1)[-1], sha256=sha256, quiet=quiet)
    extract(archive, target)  # the archive holds the word folders and lists at its top level
    found = find_root(target)
    if not found:
        raise InputError(f"the archive {archive} holds no {VALIDATION_LIST} and {TESTING_LIST}: not Speech Commands")
    return found


def _expand(p: str) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(p)))


def locate(recipe: Recipe, allow_download: bool = False, quiet: bool = False) -> Path:
    """data.root, else $ASRKIT_DATA/speech_commands, else a download when allowed."""
    if recipe.data.root:
        root = _expand(recipe.data.root)
        found = find_root(root)
        if found:
            return found
        if allow_download:
            return download(root, recipe, quiet)
        raise InputError(
            f"data.root {root} holds no Speech Commands corpus (word folders with {VALIDATION_LIST} and {TESTING_LIST}); "
            "fix data.root or run `asrkit prepare --download`"
        )
    env = os.environ.get("ASRKIT_DATA")
    if env:
        found = find_root(_expand(env) / "speech_commands")
        if found:
            return found
        if allow_download:
            return download(_expand(env) / "speech_commands", recipe, quiet)
    if allow_download:
        return download(Path.home() / ".cache" / "asrkit" / "speech_commands", recipe, quiet)
    raise InputError(
        "Speech Commands not found: set data.root (the folder with the word folders and the lists) or "
        "$ASRKIT_DATA (with a speech_commands/ folder), or run `asrkit prepare --download`"
    )


def scan(root: Path) -> list[Clip]:
    """Every clip in the word folders (folders starting with `_` or `.` are not words), sorted."""
    clips = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        clips += [Clip(f, d.name) for f in sorted(d.glob("*.wav"))]
    if not clips:
        raise InputError(f"{root} holds no word folders with .wav clips")
    return clips


def read_list(path: Path) -> set[str]:
    """The `word/file.wav` entries of an official list."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {path}: {e}") from None
    return {s.strip().removeprefix("./") for s in lines if s.strip()}


def split_clips(clips: list[Clip], root: Path) -> dict[str, list[Clip]]:
    """The official split: test = testing_list, dev = validation_list, train = every other clip."""
    test, dev = read_list(root / TESTING_LIST), read_list(root / VALIDATION_LIST)
    out: dict[str, list[Clip]] = {s: [] for s in SPLITS}
    for c in clips:
        out["test" if c.name in test else "dev" if c.name in dev else "train"].append(c)
    return out


def class_plan(classes: list[str], words: list[str]) -> tuple[dict[str, str], bool, bool]:
    """(word → label for the words kept as themselves, make _silence_?, make _unknown_?) for a class set."""
    if classes == ["all"]:
        return {w: w for w in words}, False, False
    wanted = list(COMMANDS) + [SILENCE, UNKNOWN] if classes == ["12"] else classes
    named = [w for w in wanted if w not in (SILENCE, UNKNOWN)]
    missing = [w for w in named if w not in words]
    if missing:
        raise InputError(
            f"data.speech_commands.classes: no folder for {', '.join(missing)} in the corpus; it has: {', '.join(words)}"
        )
    return {w: w for w in named}, SILENCE in wanted, UNKNOWN in wanted


def _plan(recipe: Recipe, root: Path) -> tuple[dict[str, list[tuple[Clip, str]]], dict[str, int], list[str]]:
    """Per split: the clips kept with their labels (unknown ones sampled), the silence count; the class list."""
    sc = recipe.data.speech_commands
    clips = scan(root)
    words = sorted({c.word for c in clips})
    keep, silence, unknown = class_plan(sc.classes, words)
    items: dict[str, list[tuple[Clip, str]]] = {}
    n_silence: dict[str, int] = {}
    for i, (split, group) in enumerate(split_clips(clips, root).items()):
        known = [(c, keep[c.word]) for c in group if c.word in keep]
        chosen = list(known)
        if unknown:
            others = [c for c in group if c.word not in keep]
            k = min(len(others), round(sc.unknown_fraction * len(known)))
            rng = np.random.default_rng([recipe.data.seed, i, 1])
            picks = sorted(rng.choice(len(others), size=k, replace=False).tolist()) if k else []
            chosen += [(others[j], UNKNOWN) for j in picks]
        items[split] = chosen
        n_silence[split] = round(sc.silence_fraction * len(known)) if silence else 0
    labels = sorted(set(keep.values()) | ({SILENCE} if silence else set()) | ({UNKNOWN} if unknown else set()))
    return items, n_silence, labels


def load_noises(root: Path, sample_rate: int) -> list[tuple[str, np.ndarray]]:
    """The `_background_noise_` recordings at `sample_rate` (name, samples)."""
    d = root / NOISE_DIR
    if not d.is_dir():
        return []
    return [(p.stem, load_audio(p, sample_rate).numpy()) for p in sorted(d.glob("*.wav"))]


class NoiseSource:
    """Random noise segments: from the corpus's background recordings, else generated white or pink noise."""

    def __init__(self, noises: list[tuple[str, np.ndarray]]):
        self.noises = noises

    @property
    def generated(self) -> bool:
        return not self.noises

    def segment(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.noises:
            _, wav = self.noises[int(rng.integers(len(self.noises)))]
            return random_segment(wav, n, rng)
        return generate_noise(("white", "pink")[int(rng.integers(2))], n, rng)

    def silence(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """A `_silence_` clip: background noise at a low random volume, or synthetic near-silence."""
        if self.noises:
            return self.segment(n, rng) * float(rng.uniform(0.0, SILENCE_GAIN))
        return self.segment(n, rng) * float(10 ** (rng.uniform(*NEAR_SILENCE_DB) / 20))


def augment(wav: np.ndarray, recipe: Recipe, noise: NoiseSource, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """One augmented copy: a random time shift (±shift_ms, zero-filled), then noise at a random SNR with noise_prob."""
    sc = recipe.data.speech_commands
    limit = int(sc.shift_ms / 1000 * recipe.data.sample_rate)
    shift = int(rng.integers(-limit, limit + 1))
    out = time_shift(wav, shift)
    info: dict = {"shift_ms": round(1000 * shift / recipe.data.sample_rate, 2)}
    if rng.random() < sc.noise_prob:
        snr = float(rng.uniform(*sc.noise_snr))
        out = mix_at_snr(out, noise.segment(len(out), rng), snr)
        info["snr_db"] = round(snr, 2)
    return np.clip(out, -1.0, 1.0), info


def prepare(
    corpus_dir: Path, output_dir: Path, recipe: Recipe, progress: Callable[[int], None] | None = None
) -> Manifests:
    """Fixed-length clips per split as FLAC under output_dir/audio/<split>/, `_silence_`/`_unknown_` as the class set
    asks, `augment_copies` augmented copies of each training clip; manifests train, dev, test."""
    sc = recipe.data.speech_commands
    sr = recipe.data.sample_rate
    n = int(round(sc.clip_seconds * sr))
    items, n_silence, labels = _plan(recipe, corpus_dir)
    noise = NoiseSource(load_noises(corpus_dir, sr))
    notes = []
    if noise.generated and (any(n_silence.values()) or (sc.augment_copies and sc.noise_prob > 0)):
        notes.append(
            f"{corpus_dir} has no {NOISE_DIR}/ recordings: _silence_ clips are synthetic near-silence and augmentation "
            "mixes generated white/pink noise"
        )
    for note in notes:
        log.warning(note)
    result: dict[str, list[Utterance]] = {}
    for i, split in enumerate(SPLITS):
        rng = np.random.default_rng([recipe.data.seed, i, 2])
        audio_dir = output_dir / "audio" / split
        utts: list[Utterance] = []

        def add(uid: str, wav: np.ndarray, label: str, speaker: str | None, extra: dict) -> None:
            path = audio_dir / f"{uid}.flac"
            write_audio(path, wav, sr)
            utts.append(Utterance(uid, str(path.resolve()), n / sr, sr, label, speaker, label=label, extra=extra))
            if progress:
                progress(1)

        def emit(uid: str, wav: np.ndarray, label: str, speaker: str | None, extra: dict) -> None:
            """A clip, then (train) its augmented copies, made now so no split is held in memory."""
            add(uid, wav, label, speaker, extra)
            for c in range(sc.augment_copies if split == "train" else 0):
                aug, info = augment(wav, recipe, noise, rng)
                add(f"{uid}_aug{c + 1}", aug, label, speaker, {**extra, "kind": "augmented", "source": uid, **info})

        for clip, label in items[split]:
            wav = fit_length(load_audio(clip.path, sr).numpy(), n)
            emit(clip.id, wav, label, clip.speaker, {"word": clip.word} if label == UNKNOWN else {})
        for k in range(n_silence[split]):
            emit(f"silence_{split}_{k:05d}", noise.silence(n, rng), SILENCE, None, {"kind": "silence"})
        result[split] = utts
    for split in SPLITS:
        if not result[split]:
            raise InputError(f"the {split} split is empty: check the class set and the official lists in {corpus_dir}")
    _write_summary(output_dir, labels, result, notes)
    return result


def _write_summary(out_dir: Path, labels: list[str], result: dict[str, list[Utterance]], notes: list[str]) -> None:
    counts = {s: dict(sorted(Counter(u.label for u in utts).items())) for s, utts in result.items()}
    atomic_write_text(out_dir / SUMMARY, json.dumps({"classes": labels, "counts": counts, "notes": notes}, indent=1))


def count_work(corpus_dir: Path, recipe: Recipe) -> int:
    """How many clips `prepare` will write."""
    items, n_silence, _ = _plan(recipe, corpus_dir)
    per = {s: len(items[s]) + n_silence[s] for s in SPLITS}
    return sum(per.values()) + recipe.data.speech_commands.augment_copies * per["train"]


def load_features(utt: Utterance, recipe: Recipe) -> torch.Tensor:
    """Precomputed features: the utterance's .npy file."""
    return npy_features(utt, recipe)
