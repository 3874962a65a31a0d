"""`asrkit prepare`: corpus on disk → manifests, vocabulary, cached features, CMVN statistics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from asrkit.config import Recipe
from asrkit.data.corpora import get_corpus
from asrkit.data.manifest import Utterance, read_manifest, write_manifest
from asrkit.errors import InputError
from asrkit.features import CMVNStats, feature_settings, make_extractor
from asrkit.fsutil import atomic_write, atomic_write_text
from asrkit.progress import Progress
from asrkit.text import CharTokenizer, normalize_text

DONE = "prepare.json"


def _fingerprint(recipe: Recipe, root: Path) -> dict:
    return {"data": recipe.to_dict()["data"], "features": feature_settings(recipe.features, recipe.data.sample_rate), "root": str(root)}


def prepare(recipe: Recipe, download: bool = False, force: bool = False, quiet: bool = False) -> Path:
    """Prepare the recipe's corpus into `recipe.data_dir`; skipped when already done with the same settings."""
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
    if out.exists():
        for sub in ("audio", "feats"):
            shutil.rmtree(out / sub, ignore_errors=True)
        stamp.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    with Progress(quiet) as prog:
        task = prog.add(f"prepare {recipe.name}", total=corpus.count_work(recipe, root), unit="utt")
        manifests = corpus.prepare(recipe, out, root, progress=lambda n: prog.advance(task, n))
    for utts in manifests.values():
        for u in utts:
            if u.text is not None:
                u.text = normalize_text(u.text)
    tok = CharTokenizer.build(u.text for u in manifests["train"] if u.text)
    tok.save(out / "vocab.txt")
    counts = {}
    for name, utts in manifests.items():
        write_manifest(out / f"{name}.jsonl", utts)
        counts[name] = {"utterances": len(utts), "hours": round(sum(u.duration for u in utts) / 3600, 4)}
    compute_features(recipe, out, list(manifests), quiet=quiet)
    atomic_write_text(stamp, json.dumps({"fingerprint": fp, "counts": counts}, indent=1))
    return out


def compute_features(recipe: Recipe, out: Path, names: list[str], quiet: bool = False) -> None:
    """Log-mel features per manifest into feats/<name>.pt (float16, id → frames × mels); CMVN stats from train."""
    from asrkit.audio import load_audio

    settings = feature_settings(recipe.features, recipe.data.sample_rate)
    extractor = make_extractor(settings)
    stats = CMVNStats(recipe.features.n_mels)
    manifests = {name: read_manifest(out / f"{name}.jsonl") for name in names}
    with Progress(quiet) as prog, torch.inference_mode():
        for name, utts in manifests.items():
            task = prog.add(f"features {name}", total=len(utts), unit="utt")
            feats = {}
            for u in utts:
                if u.audio is None:
                    raise InputError(f"utterance {u.id} has no audio")
                f = extractor(load_audio(u.audio, settings["sample_rate"]))
                if name == "train":
                    stats.add(f)
                feats[u.id] = f.to(torch.float16)
                prog.advance(task)
            atomic_write(out / "feats" / f"{name}.pt", lambda tmp, feats=feats: torch.save(feats, tmp))
    atomic_write(out / "cmvn.pt", lambda tmp: torch.save(stats.to_dict(), tmp))


def load_split(data_dir: Path, name: str) -> tuple[list[Utterance], dict[str, torch.Tensor]]:
    """A prepared split: its utterances and cached features."""
    m = data_dir / f"{name}.jsonl"
    f = data_dir / "feats" / f"{name}.pt"
    if not m.is_file() or not f.is_file():
        raise InputError(f"{m} or its features are missing; run `asrkit prepare` first")
    return read_manifest(m), torch.load(f, weights_only=True)
