"""Kaldi data directories (`wav.scp`, `text`, `utt2spk`, optional `segments`): any Kaldi-prepared corpus as a recipe.

`data.splits` maps each manifest to one or more data directories (relative to `data.root`, or absolute). `wav.scp`
entries must be plain audio paths: piped commands (`sox ... |`) and ark offsets are refused with the line that has
them, since asrkit reads audio with soundfile. With a `segments` file each utterance is cut from its recording and
written as FLAC under `<out_dir>/audio/<manifest>/`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import soundfile as sf
import torch

from asrkit.audio import audio_info
from asrkit.config import Recipe
from asrkit.data.corpus import Manifests, npy_features
from asrkit.data.manifest import Utterance
from asrkit.errors import InputError


def download(target_dir: str | Path, recipe: Recipe | None = None, quiet: bool = False) -> Path:
    """Refused: a Kaldi data dir is made by its corpus's own recipe."""
    raise InputError("a Kaldi data directory is made by its corpus's own recipe; point data.root at it")


def _table(path: Path, min_fields: int = 2) -> dict[str, list[str]]:
    """A Kaldi table: `key value...` per line; errors name the file and line."""
    out: dict[str, list[str]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) < min_fields:
            raise InputError(f"{path}:{n}: expected at least {min_fields} fields, got {line.strip()[:60]!r}")
        if parts[0] in out:
            raise InputError(f"{path}:{n}: duplicate key {parts[0]!r}")
        out[parts[0]] = parts[1:]
    return out


def _dirs(recipe: Recipe, root: Path) -> dict[str, list[Path]]:
    if not recipe.data.splits.get("train") or not recipe.data.splits.get("dev"):
        raise InputError("data.splits must map train and dev (and any other manifest) to Kaldi data directories")
    return {
        name: [d if d.is_absolute() else root / d for d in map(Path, dirs)] for name, dirs in recipe.data.splits.items()
    }


def locate(recipe: Recipe, allow_download: bool = False, quiet: bool = False) -> Path:
    root = Path(os.path.expandvars(os.path.expanduser(recipe.data.root or ".")))
    for dirs in _dirs(recipe, root).values():
        for d in dirs:
            for f in ("wav.scp", "text"):
                if not (d / f).is_file():
                    raise InputError(f"{d} is not a Kaldi data directory: it has no {f}")
    return root


def count_work(corpus_dir: Path, recipe: Recipe) -> int:
    return sum(len(d) for d in _dirs(recipe, corpus_dir).values())


def read_data_dir(folder: Path, out_dir: Path, name: str) -> list[Utterance]:
    """Utterances of one Kaldi data directory; segmented recordings are cut and written as FLAC."""
    wav = _table(folder / "wav.scp")
    text = _table(folder / "text", min_fields=1)
    spk = _table(folder / "utt2spk") if (folder / "utt2spk").is_file() else {}
    segments = _table(folder / "segments", min_fields=4) if (folder / "segments").is_file() else None
    for rec, value in wav.items():
        if value[-1].endswith("|") or len(value) > 1 or ":" in value[0] and value[0].split(":")[-1].isdigit():
            raise InputError(
                f"{folder / 'wav.scp'}: {rec}: only plain audio paths are supported, got {' '.join(value)[:60]!r}"
            )
    utts = []
    for uid, words in text.items():
        if segments is None:
            if uid not in wav:
                raise InputError(f"{folder / 'text'}: utterance {uid!r} has no entry in wav.scp")
            path = Path(wav[uid][0])
            path = path if path.is_absolute() else folder / path
            if not path.is_file():
                raise InputError(f"{folder / 'wav.scp'}: {uid}: audio file {path} not found")
            frames, rate = audio_info(path)  # a damaged file is an InputError naming it
            utts.append(
                Utterance(uid, str(path.resolve()), frames / rate, rate, " ".join(words), spk.get(uid, [None])[0])
            )
            continue
        if uid not in segments:
            raise InputError(f"{folder / 'text'}: utterance {uid!r} has no entry in segments")
        rec = segments[uid][0]
        try:
            start, end = float(segments[uid][1]), float(segments[uid][2])
        except ValueError:
            raise InputError(
                f"{folder / 'segments'}: {uid}: start and end must be seconds, got {' '.join(segments[uid][1:3])!r}"
            ) from None
        if start < 0 or (end != -1 and end <= start):  # Kaldi: end -1 = to the end of the recording
            raise InputError(f"{folder / 'segments'}: {uid}: need 0 <= start < end (or end -1), got {start} {end}")
        if rec not in wav:
            raise InputError(f"{folder / 'segments'}: recording {rec!r} of {uid} has no entry in wav.scp")
        src = Path(wav[rec][0])
        src = src if src.is_absolute() else folder / src
        if not src.is_file():
            raise InputError(f"{folder / 'wav.scp'}: {rec}: audio file {src} not found")
        audio_info(src)  # a damaged recording is an InputError naming it
        with sf.SoundFile(str(src)) as f:
            sr = f.samplerate
            f.seek(int(start * sr))
            audio = f.read(int((end - start) * sr), dtype="float32")
        dst = out_dir / "audio" / name / f"{uid}.flac"
        dst.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(dst), audio, sr)
        utts.append(Utterance(uid, str(dst.resolve()), len(audio) / sr, sr, " ".join(words), spk.get(uid, [None])[0]))
    return utts


def prepare(
    corpus_dir: Path, output_dir: Path, recipe: Recipe, progress: Callable[[int], None] | None = None
) -> Manifests:
    result: dict[str, list[Utterance]] = {}
    owner: dict[str, str] = {}
    for name, dirs in _dirs(recipe, corpus_dir).items():
        utts = []
        for d in dirs:
            for u in read_data_dir(d, output_dir, name):
                if u.id in owner:
                    raise InputError(
                        f"utterance {u.id} is in both the {owner[u.id]} and the {name} manifest; check data.splits"
                    )
                owner[u.id] = name
                utts.append(u)
            if progress:
                progress(1)
        result[name] = utts
    return result


def export_data_dir(utts: list[Utterance], folder: str | Path) -> Path:
    """Write manifest utterances as a Kaldi data directory (wav.scp, text, utt2spk, spk2utt), sorted as Kaldi wants."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    utts = sorted(utts, key=lambda u: u.id)
    missing = [u.id for u in utts if u.audio is None]
    if missing:
        raise InputError(f"utterance {missing[0]!r} has no audio; Kaldi data directories point at audio files")
    (folder / "wav.scp").write_text("".join(f"{u.id} {u.audio}\n" for u in utts), encoding="utf-8")
    (folder / "text").write_text("".join(f"{u.id} {u.text or ''}\n" for u in utts), encoding="utf-8")
    (folder / "utt2spk").write_text("".join(f"{u.id} {u.speaker or u.id}\n" for u in utts), encoding="utf-8")
    spk2utt: dict[str, list[str]] = {}
    for u in utts:
        spk2utt.setdefault(u.speaker or u.id, []).append(u.id)
    (folder / "spk2utt").write_text(
        "".join(f"{s} {' '.join(ids)}\n" for s, ids in sorted(spk2utt.items())), encoding="utf-8"
    )
    return folder


def load_features(utt: Utterance, recipe: Recipe) -> torch.Tensor:
    """Precomputed features: the utterance's .npy file."""
    return npy_features(utt, recipe)
