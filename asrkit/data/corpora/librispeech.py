"""LibriSpeech: `LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac` + `<speaker>-<chapter>.trans.txt`.

`data.splits` maps each manifest (train, dev, test, or any other name) to the subsets it is made of; the audio is
read where it lies (the manifests point at the original FLAC files).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import torch

from asrkit.audio import audio_info
from asrkit.config import Recipe
from asrkit.data.corpus import Manifests, npy_features
from asrkit.data.download import extract, fetch
from asrkit.data.manifest import Utterance
from asrkit.errors import InputError

BASE_URL = "https://www.openslr.org/resources/12/"
# sha256 of the OpenSLR archives (as published with torchaudio's LibriSpeech dataset)
CHECKSUMS = {
    "dev-clean": "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3",
    "dev-other": "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365",
    "test-clean": "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23",
    "test-other": "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29",
    "train-clean-100": "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2",
    "train-clean-360": "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf",
    "train-other-500": "ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2",
}
# Mini LibriSpeech (OpenSLR 31): small subsets with the same layout; no published sha256
MINI = {
    "dev-clean-2": "https://www.openslr.org/resources/31/",
    "train-clean-5": "https://www.openslr.org/resources/31/",
}
DEFAULT_SPLITS = {"train": ["train-clean-100"], "dev": ["dev-clean"], "test": ["test-clean"]}
_UTT = re.compile(r"(\d+)-(\d+)-(\d+)", re.ASCII)


def splits_of(recipe: Recipe) -> dict[str, list[str]]:
    """Manifest name → subsets: `data.splits`, else train-clean-100 / dev-clean / test-clean."""
    splits = recipe.data.splits or DEFAULT_SPLITS
    for name in ("train", "dev"):
        if not splits.get(name):
            raise InputError(
                f"data.splits needs a {name!r} entry (a list of LibriSpeech subsets, e.g. {DEFAULT_SPLITS[name]})"
            )
    return splits


def _subsets(recipe: Recipe) -> list[str]:
    return sorted({s for subs in splits_of(recipe).values() for s in subs})


def _corpus_dir(root: Path) -> Path | None:
    """The `LibriSpeech` folder under or at `root`."""
    for c in (root / "LibriSpeech", root):
        if c.is_dir() and c.name == "LibriSpeech":
            return c
    return None


def _missing(corpus: Path | None, subsets: list[str]) -> list[str]:
    return [s for s in subsets if corpus is None or not (corpus / s).is_dir()]


def download(target_dir: str | Path, recipe: Recipe | None = None, quiet: bool = False) -> Path:
    """Fetch (resumable, sha256-checked) and unpack the archive of each subset the recipe's `data.splits` name (without
    a recipe: train-clean-100, dev-clean, test-clean) into `target_dir`; returns `target_dir/LibriSpeech`."""
    dest = Path(target_dir)
    subsets = _subsets(recipe) if recipe is not None else sorted({s for subs in DEFAULT_SPLITS.values() for s in subs})
    missing = _missing(dest / "LibriSpeech", subsets)
    unknown = [s for s in missing if s not in CHECKSUMS and s not in MINI]
    if unknown:  # before anything is fetched
        raise InputError(f"unknown LibriSpeech subset {unknown[0]!r}; known: {', '.join([*CHECKSUMS, *MINI])}")
    for s in missing:
        url = MINI.get(s, BASE_URL) + f"{s}.tar.gz"
        archive = fetch(url, dest / f"{s}.tar.gz", sha256=CHECKSUMS.get(s), quiet=quiet)
        extract(archive, dest)
        if not (dest / "LibriSpeech" / s).is_dir():
            raise InputError(f"{archive} did not unpack into LibriSpeech/{s}/")
    return dest / "LibriSpeech"


def locate(recipe: Recipe, allow_download: bool = False, quiet: bool = False) -> Path:
    """The `LibriSpeech` folder holding every subset the recipe names: data.root, $ASRKIT_DATA/librispeech, or a download."""
    subsets = _subsets(recipe)
    if recipe.data.root:
        root = Path(os.path.expandvars(os.path.expanduser(recipe.data.root)))
        where = f"data.root {root}"
    elif os.environ.get("ASRKIT_DATA"):
        root = Path(os.environ["ASRKIT_DATA"]) / "librispeech"
        where = f"$ASRKIT_DATA/librispeech ({root})"
    else:
        root = Path.home() / ".cache" / "asrkit" / "librispeech"
        where = str(root)
    missing = _missing(_corpus_dir(root), subsets)
    if not missing:
        return _corpus_dir(root)  # type: ignore[return-value]
    if allow_download:
        return download(root, recipe, quiet)  # fetches the missing subsets
    raise InputError(
        f"{where} has no LibriSpeech/{missing[0]}/ folder; point data.root at the folder holding LibriSpeech/, "
        f"or run `asrkit prepare --download` to fetch {', '.join(missing)} from openslr.org"
    )


def read_transcripts(path: Path) -> dict[str, str]:
    """`<utt-id> <TEXT>` lines of a chapter's .trans.txt; errors name the file and line."""
    try:
        lines = Path(path).read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text at byte {e.start}; re-extract the LibriSpeech archive") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read the transcript ({e.strerror or type(e).__name__})") from None
    out: dict[str, str] = {}
    first: dict[str, int] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        uid, _, text = line.strip().partition(" ")
        if not _UTT.fullmatch(uid):
            raise InputError(f"{path}:{n}: expected '<speaker>-<chapter>-<utterance> TEXT', got {line[:60]!r}")
        if uid in out:
            raise InputError(f"{path}:{n}: duplicate utterance id {uid} (first on line {first[uid]})")
        out[uid] = text.strip()
        first[uid] = n
    return out


def scan_subset(folder: Path) -> list[Utterance]:
    """Every transcribed utterance of one subset folder, sorted by id."""
    utts = []
    for trans in sorted(folder.glob("*/*/*.trans.txt")):
        for uid, text in read_transcripts(trans).items():
            audio = trans.parent / f"{uid}.flac"
            if not audio.is_file():
                raise InputError(f"{trans} lists {uid} but {audio.name} is not in {trans.parent}")
            frames, rate = audio_info(audio)  # a damaged file is an InputError naming it
            spk = uid.split("-")[0]
            utts.append(
                Utterance(uid, str(audio.resolve()), frames / rate, rate, text, spk, extra={"subset": folder.name})
            )
    if not utts:
        raise InputError(f"{folder} holds no <speaker>/<chapter>/*.trans.txt transcripts")
    return utts


def count_work(corpus_dir: Path, recipe: Recipe) -> int:
    return len(splits_of(recipe))


def prepare(
    corpus_dir: Path, output_dir: Path, recipe: Recipe, progress: Callable[[int], None] | None = None
) -> Manifests:
    """One manifest per `data.splits` entry; the same utterance may not appear in two manifests."""
    result: dict[str, list[Utterance]] = {}
    owner: dict[str, str] = {}
    for name, subsets in splits_of(recipe).items():
        utts = []
        for s in subsets:
            for u in scan_subset(corpus_dir / s):
                if u.id in owner:
                    raise InputError(
                        f"utterance {u.id} is in both the {owner[u.id]} and the {name} manifest; check data.splits"
                    )
                owner[u.id] = name
                utts.append(u)
        result[name] = utts
        if progress:
            progress(1)
    return result


def load_features(utt: Utterance, recipe: Recipe) -> torch.Tensor:
    """Precomputed features: the utterance's .npy file."""
    return npy_features(utt, recipe)
