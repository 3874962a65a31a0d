"""Phoneme recognition corpora in the 11-785 HW3P2 layout, and CMU AN4 converted into it.

`data.phonemes.layout: hw3p2` reads `<root>/<split>/mfcc/*.npy` (frames × 13..28 features) with
`<root>/<split>/transcript/*.npy` (arrays of ARPAbet symbols, `<sos>`/`<eos>` markers stripped); a split
without `transcript/` (the Kaggle test set) has no phonemes and is decoded into a submission.csv.
`data.splits` maps manifest names to split folders; by default the first folder present of
train: train-clean-100 | train, dev: dev-clean | dev, test: test-clean | test (the course's folder names).

`data.phonemes.layout: an4` converts CMU AN4 (Sphinx `.mfc` cepstra or `.sph` audio, `etc/an4_train.transcription`,
`etc/an4.dic`) into that layout under `<out_dir>/hw3p2/`, holding whole speakers out as dev and test, and then
reads it with the same reader. AN4's own test set, when present (`etc/an4_test.transcription`), becomes `an4_test`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from asrkit.config import Recipe
from asrkit.data.corpus import Manifests, npy_features
from asrkit.data.download import extract, fetch
from asrkit.data.manifest import Utterance
from asrkit.data.sphinx import read_mfc, read_transcription, sphinx_mfcc
from asrkit.errors import InputError
from asrkit.phonemes import PHONEME_CHARS, SIL, normalize_phones, read_cmudict

AN4_URL = "http://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz"  # the CMU Sphinx tutorial's copy
HW3P2_HINT = (
    "the HW3P2 data come from the course's Kaggle competition (kaggle competitions download -c <competition>); "
    "unpack them and set data.root to the folder holding train-clean-100/ dev-clean/ test-clean/"
)
DEFAULT_SPLITS = {"train": ["train-clean-100", "train"], "dev": ["dev-clean", "dev"], "test": ["test-clean", "test"]}
FRAME_SHIFT = 0.01  # HW3P2 and AN4 features are 100 frames/s
AUTO_HELD_OUT = 8  # speakers per held-out split when none are named
SENTENCE_MARKS = {"<s>", "</s>"}


def _note(msg: str) -> None:
    print(f"prepare: {msg}", file=sys.stderr)


# ------------------------------------------------------------------ finding the data


def download(target_dir: str | Path, recipe: Recipe | None = None, quiet: bool = False) -> Path:
    """Download CMU AN4 (NIST sphere audio, transcriptions, dictionary) into `target_dir`; returns the `an4` folder.
    The HW3P2 layout cannot be downloaded (a recipe with `data.phonemes.layout: hw3p2` is refused)."""
    if recipe is not None and recipe.data.phonemes.layout != "an4":
        raise InputError(f"HW3P2 data cannot be downloaded by asrkit; {HW3P2_HINT}")
    dest = Path(target_dir)
    found = find_an4(dest)
    if found:
        return found
    # CMU publishes no checksum for this archive
    extract(fetch(AN4_URL, dest / "an4_sphere.tar.gz", quiet=quiet), dest)
    found = find_an4(dest)
    if not found:
        raise InputError(f"the archive in {dest} holds no an4/etc/an4_train.transcription")
    return found


def find_an4(root: Path) -> Path | None:
    for c in (root, root / "an4", *sorted(root.glob("*/an4"))):
        if (c / "etc" / "an4_train.transcription").is_file():
            return c
    return None


def _find_hw3p2(root: Path) -> Path | None:
    for c in (root, *sorted(p for p in root.glob("*") if p.is_dir())):
        if c.is_dir() and any((s / "mfcc").is_dir() for s in c.iterdir() if s.is_dir()):
            return c
    return None


def locate(recipe: Recipe, allow_download: bool = False, quiet: bool = False) -> Path:
    """data.root, else $ASRKIT_DATA/an4 (layout an4) or $ASRKIT_DATA/hw3p2, else AN4's download when allowed."""
    layout = recipe.data.phonemes.layout
    find = find_an4 if layout == "an4" else _find_hw3p2
    what = "AN4 (etc/an4_train.transcription)" if layout == "an4" else "HW3P2 splits (<split>/mfcc/*.npy)"
    if recipe.data.root:
        root = Path(os.path.expandvars(os.path.expanduser(recipe.data.root)))
        found = find(root) if root.is_dir() else None
        if found:
            return found
        if allow_download and layout == "an4":
            return download(root, recipe, quiet)
        hint = "" if layout == "an4" else f"; {HW3P2_HINT}"
        raise InputError(f"data.root {root} holds no {what}{hint}")
    env = os.environ.get("ASRKIT_DATA")
    sub = "an4" if layout == "an4" else "hw3p2"
    if env and (Path(env) / sub).is_dir():
        found = find(Path(env) / sub)
        if found:
            return found
    if allow_download and layout == "an4":
        return download(Path(env) / "an4" if env else Path.home() / ".cache" / "asrkit" / "an4", recipe, quiet)
    if layout == "an4":
        raise InputError("no AN4 corpus: set data.root (or put it at $ASRKIT_DATA/an4), or run prepare --download")
    raise InputError(f"no HW3P2 data: set data.root (or put it at $ASRKIT_DATA/hw3p2); {HW3P2_HINT}")


# ------------------------------------------------------------------ the HW3P2 layout


def resolve_splits(recipe: Recipe, root: Path) -> dict[str, Path]:
    """Manifest name → split folder: `data.splits` (every folder named must exist), else the defaults present."""
    out: dict[str, Path] = {}
    if recipe.data.splits:
        for name, folders in recipe.data.splits.items():
            if len(folders) != 1:
                raise InputError(f"data.splits.{name}: name exactly one split folder of {root}, got {folders}")
            if not (root / folders[0] / "mfcc").is_dir():
                raise InputError(f"data.splits.{name}: {root / folders[0] / 'mfcc'} is not a folder")
            out[name] = root / folders[0]
    else:
        for name, candidates in DEFAULT_SPLITS.items():
            for c in candidates:
                if (root / c / "mfcc").is_dir():
                    out[name] = root / c
                    break
    for need in ("train", "dev"):
        if need not in out:
            raise InputError(
                f"{root}: no {need} split ({' or '.join(DEFAULT_SPLITS[need])}/mfcc); name it in data.splits"
            )
    return out


def _order(folder: Path, files: list[Path]) -> list[Path]:
    """Files in `test_order.csv` order when the split ships one (its first column: file names), else sorted."""
    order_file = folder / "test_order.csv"
    if not order_file.is_file():
        return sorted(files)
    by_name = {f.name: f for f in files}
    names = [ln.split(",")[0].strip() for ln in order_file.read_text().splitlines()[1:] if ln.strip()]
    missing = [n for n in names if n not in by_name]
    if missing:
        raise InputError(f"{order_file} lists {len(missing)} file(s) not in {folder / 'mfcc'}, e.g. {missing[0]}")
    return [by_name[n] for n in names]


def read_transcript(path: Path) -> list[str]:
    """A transcript .npy (an array of phoneme symbols) → ARPAbet phonemes, `<sos>`/`<eos>` stripped."""
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InputError(f"transcript {path}: not a readable array of phoneme strings ({e})") from None
    if a.ndim != 1 or a.dtype.kind not in "US":
        raise InputError(f"transcript {path}: expected a 1-D array of phoneme strings, got {a.dtype} shape {a.shape}")
    try:
        return normalize_phones(str(s.decode() if isinstance(s, bytes) else s) for s in a.tolist())
    except InputError as e:
        raise InputError(f"transcript {path}: {e}") from None


def _speaker_of(stem: str) -> str | None:
    """The speaker in a LibriSpeech (`103-1240-0000`) or AN4 (`an251-fash-b`) utterance id, else None."""
    parts = stem.split("-")
    if len(parts) != 3:
        return None
    return parts[0] if all(p.isdigit() for p in parts) else parts[1]


def read_hw3p2_split(
    folder: Path, dim: int | None = None, progress: Callable[[int], None] | None = None
) -> list[Utterance]:
    """One split folder → utterances with `features` (the .npy) and `phonemes` (when `transcript/` exists)."""
    files = _order(folder, list((folder / "mfcc").glob("*.npy")))
    if not files:
        raise InputError(f"{folder / 'mfcc'} holds no .npy feature files")
    tdir = folder / "transcript"
    utts = []
    for f in files:
        try:
            shape = np.load(f, mmap_mode="r", allow_pickle=False).shape
        except (OSError, ValueError) as e:
            raise InputError(f"features {f}: not a readable .npy array ({e})") from None
        if len(shape) != 2 or (dim is not None and shape[1] != dim):
            raise InputError(
                f"features {f}: shape {shape}, expected (frames, {dim or 'dim'}); features.n_mels is the dimension"
            )
        phones = None
        if tdir.is_dir():
            t = tdir / f.name
            if not t.is_file():
                raise InputError(f"{f} has no transcript {t}")
            phones = read_transcript(t)
            if not phones:
                raise InputError(f"transcript {t} holds no phonemes")
        speaker = _speaker_of(f.stem)
        utts.append(
            Utterance(
                f.stem,
                None,
                round(shape[0] * FRAME_SHIFT, 3),
                0,
                None,
                speaker,
                phonemes=phones,
                features=str(f.resolve()),
            )
        )
        if progress:
            progress(1)
    return utts


# ------------------------------------------------------------------ AN4 → HW3P2


def _speaker(uid: str) -> str:
    """AN4 ids are `<prompt>-<speaker>-<session>` (an251-fash-b)."""
    return _speaker_of(uid) or uid


def _an4_sets(root: Path) -> dict[str, tuple[Path, str]]:
    """Conversion sources: name → (transcription file, feature folder name)."""
    sets = {"train": (root / "etc" / "an4_train.transcription", "an4_clstk")}
    test = root / "etc" / "an4_test.transcription"
    if test.is_file():
        sets["an4_test"] = (test, "an4test_clstk")
    return sets


def _features(root: Path, folder: str, uid: str) -> np.ndarray:
    mfc = root / "feat" / folder / _speaker(uid) / f"{uid}.mfc"
    if mfc.is_file():
        return read_mfc(mfc)
    sph = root / "wav" / folder / _speaker(uid) / f"{uid}.sph"
    if sph.is_file():
        wav, sr = sf.read(sph, dtype="float32")
        return sphinx_mfcc(wav if wav.ndim == 1 else wav.mean(1), sr)
    raise InputError(f"AN4 utterance {uid}: neither {mfc} nor {sph} exists")


def hold_out(speakers: list[str], recipe: Recipe) -> dict[str, str]:
    """Speaker → split: the named dev/test speakers, else AUTO_HELD_OUT of each by data.seed, half female, half male."""
    cfg = recipe.data.phonemes
    known = set(speakers)
    for key, named in (("dev_speakers", cfg.dev_speakers), ("test_speakers", cfg.test_speakers)):
        bad = sorted(set(named) - known)
        if bad:
            raise InputError(f"data.phonemes.{key}: unknown AN4 speaker(s) {bad}")
    if set(cfg.dev_speakers) & set(cfg.test_speakers):
        raise InputError("data.phonemes: a speaker cannot be in both dev_speakers and test_speakers")
    dev, test = list(cfg.dev_speakers), list(cfg.test_speakers)
    free = [s for s in sorted(speakers) if s not in dev and s not in test]
    rng = random.Random(recipe.data.seed)
    # AN4 speaker names start with their sex (f/m): draw alternately from each so held-out sets are mixed
    female, other = [s for s in free if s.startswith("f")], [s for s in free if not s.startswith("f")]
    rng.shuffle(female)
    rng.shuffle(other)
    order = []
    while female or other:
        order += [pool.pop() for pool in (female, other) if pool]
    for target in (dev, test):
        if not target:
            target += order[:AUTO_HELD_OUT]
            order = order[AUTO_HELD_OUT:]
    if len(set(dev) | set(test)) >= len(known):
        raise InputError(
            f"data.phonemes: holding out {len(dev)} dev and {len(test)} test speakers leaves none of the {len(known)} to train on"
        )
    return {s: "dev" if s in dev else "test" if s in test else "train" for s in speakers}


def _an4_phones(text: str, lex: dict, fillers: dict) -> tuple[list[str], list[str]]:
    """A transcript → (phones of each word's first pronunciation, OOV words); <s>/</s> dropped, fillers from an4.filler."""
    phones, oov = [], []
    for w in text.lower().split():
        if w in SENTENCE_MARKS:
            continue
        prons = lex.get(w) or fillers.get(w)
        if prons:
            phones += prons[0]
        else:
            oov.append(w)
    return phones, oov


def convert_an4(recipe: Recipe, root: Path, dest: Path, progress: Callable[[int], None] | None = None) -> dict:
    """AN4 → `dest/<split>/{mfcc,transcript}/<utt>.npy` (float32 frames × 13; phoneme strings); returns the report.

    Utterances with words missing from an4.dic or phones outside the ARPAbet set are dropped and counted.
    """
    lex = read_cmudict(root / "etc" / "an4.dic", strict=False)
    filler_file = root / "etc" / "an4.filler"
    fillers = read_cmudict(filler_file, strict=False) if filler_file.is_file() else {"<sil>": [[SIL]]}
    shutil.rmtree(dest, ignore_errors=True)
    report: dict = {"utterances": {}, "speakers": {}, "oov": Counter(), "unmapped": Counter(), "dropped": 0}
    for set_name, (trans, folder) in _an4_sets(root).items():
        lines = read_transcription(trans)
        split_of = hold_out(sorted({_speaker(u) for u, _ in lines}), recipe) if set_name == "train" else None
        for uid, text in lines:
            split = split_of[_speaker(uid)] if split_of else set_name
            phones, oov = _an4_phones(text, lex, fillers)
            unmapped = [p for p in phones if p not in PHONEME_CHARS]
            report["oov"].update(oov)
            report["unmapped"].update(unmapped)
            if oov or unmapped or not phones:
                report["dropped"] += 1
            else:
                out = dest / split
                (out / "mfcc").mkdir(parents=True, exist_ok=True)
                (out / "transcript").mkdir(parents=True, exist_ok=True)
                np.save(out / "mfcc" / f"{uid}.npy", _features(root, folder, uid))
                np.save(out / "transcript" / f"{uid}.npy", np.array(phones, dtype="<U3"))
                report["utterances"][split] = report["utterances"].get(split, 0) + 1
                report["speakers"].setdefault(split, set()).add(_speaker(uid))
            if progress:
                progress(1)
    report["speakers"] = {k: sorted(v) for k, v in report["speakers"].items()}
    if report["dropped"]:
        _note(
            f"AN4: dropped {report['dropped']} utterance(s): out-of-dictionary words {dict(report['oov'])}, "
            f"phones outside the ARPAbet set {dict(report['unmapped'])}"
        )
    (dest / "conversion.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


# ------------------------------------------------------------------ the corpus contract


def prepare(
    corpus_dir: Path, output_dir: Path, recipe: Recipe, progress: Callable[[int], None] | None = None
) -> Manifests:
    """Manifests train, dev and test (+ an4_test) from the HW3P2 layout, converting AN4 into it first."""
    dim = recipe.features.n_mels
    if recipe.data.phonemes.layout == "an4":
        if dim != 13:
            raise InputError(f"AN4 features are 13 cepstra: set features.n_mels to 13 (it is {dim})")
        converted = output_dir / "hw3p2"
        convert_an4(recipe, corpus_dir, converted, progress)
        splits = {
            name: converted / name for name in ("train", "dev", "test", "an4_test") if (converted / name).is_dir()
        }
    else:
        splits = resolve_splits(recipe, corpus_dir)
    return {name: read_hw3p2_split(folder, dim, progress) for name, folder in splits.items()}


def count_work(corpus_dir: Path, recipe: Recipe) -> int:
    """Progress steps: AN4 utterances converted then read; or HW3P2 feature files read."""
    if recipe.data.phonemes.layout == "an4":
        return 2 * sum(len(read_transcription(t)) for t, _ in _an4_sets(corpus_dir).values())
    return sum(len(list((f / "mfcc").glob("*.npy"))) for f in resolve_splits(recipe, corpus_dir).values())


def load_features(utt: Utterance, recipe: Recipe) -> torch.Tensor:
    """Precomputed features: the utterance's .npy file."""
    return npy_features(utt, recipe)
