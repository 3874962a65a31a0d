"""Free Spoken Digit Dataset: isolated digits plus connected-digit utterances built from them."""

from __future__ import annotations

import hashlib
import os
import random
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import torch

from asrkit.assets import fsdd_root
from asrkit.assets import speech_commands_root as embedded
from asrkit.audio import load_audio, resample, speed_perturb, write_audio
from asrkit.config import Recipe
from asrkit.data import tts, vocoder
from asrkit.data.corpora import speech_commands as sc
from asrkit.data.corpora.phonemes import find_an4
from asrkit.data.corpora.speech_commands import NoiseSource, load_noises
from asrkit.data.corpus import Manifests, npy_features
from asrkit.data.download import extract, fetch
from asrkit.data.manifest import Utterance
from asrkit.data.noise import mix_at_snr, reverberate, synthetic_rir
from asrkit.data.sphinx import read_mfc, read_transcription
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
    source: str = "fsdd"  # fsdd | speech_commands | tts

    @property
    def id(self) -> str:
        return f"{self.digit}_{self.speaker}_{self.index}"


def download(target_dir: str | Path, recipe: Recipe | None = None, quiet: bool = False) -> Path:
    """Download the dataset's GitHub archive into `target_dir` and return the folder holding `recordings/` (FSDD only:
    `locate` fetches the Speech Commands voices a recipe asks for)."""
    dest = Path(target_dir)
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
    """Where the FSDD recordings are: data.root, else $ASRKIT_DATA/fsdd, else the embedded copy (or a download).
    With `allow_download`, Speech Commands is fetched too when the recipe takes voices from it and none is on disk."""
    root = _locate_fsdd(recipe, allow_download, quiet)
    if allow_download and "speech_commands" in recipe.data.digits.sources:
        speech_commands_root(recipe, allow_download=True, quiet=quiet)
    return root


def _locate_fsdd(recipe: Recipe, allow_download: bool, quiet: bool) -> Path:
    if recipe.data.root:
        root = Path(os.path.expandvars(os.path.expanduser(recipe.data.root)))
        found = _find_recordings(root)
        if found:
            return found
        if allow_download:
            return download(root, quiet=quiet)
        raise InputError(f"data.root {root} holds no FSDD recordings ({{digit}}_{{speaker}}_{{index}}.wav)")
    env = os.environ.get("ASRKIT_DATA")
    if env:
        found = _find_recordings(Path(env) / "fsdd")
        if found:
            return found
        if allow_download:
            return download(Path(env) / "fsdd", quiet=quiet)
    if allow_download:
        return download(Path.home() / ".cache" / "asrkit" / "fsdd", quiet=quiet)

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
    """Official rule (indices 0-4 test, the rest train, `dev_indices` held out of train), or with `test_speakers`
    those speakers' recordings as the test set."""
    d = recipe.data
    speakers = sorted({r.speaker for r in recs})
    unknown = [s for s in d.test_speakers if s not in speakers]
    if unknown:
        raise InputError(f"data.test_speakers: unknown speaker(s) {unknown}; present: {speakers}")
    dev = set(d.dev_indices)
    out: dict[str, list[Recording]] = {"train": [], "dev": [], "test": []}
    for r in recs:
        if d.test_speakers:
            split = "test" if r.speaker in d.test_speakers else ("dev" if r.index in dev else "train")
        else:
            split = "test" if r.index <= 4 else ("dev" if r.index in dev else "train")
        out[split].append(r)
    for name, items in out.items():
        if not items:
            raise InputError(f"the {name} split is empty; check data.test_speakers and data.dev_indices")
    return out


def speech_commands_root(recipe: Recipe, allow_download: bool = False, quiet: bool = False) -> Path:
    """Speech Commands for extra voices: data.digits.speech_commands_root, else $ASRKIT_DATA/speech_commands,
    else a download when allowed, else the digit-word sample embedded in asrkit."""
    given = recipe.data.digits.speech_commands_root
    if given:
        root = Path(os.path.expandvars(os.path.expanduser(given)))
        found = sc.find_root(root)
        if found:
            return found
        if allow_download:
            return sc.download(root, quiet=quiet)
        raise InputError(
            f"data.digits.speech_commands_root {root} holds no Speech Commands corpus (word folders and the lists)"
        )
    env = os.environ.get("ASRKIT_DATA")
    if env and (found := sc.find_root(Path(env) / "speech_commands")):
        return found
    if allow_download:
        return sc.download(
            Path(env) / "speech_commands" if env else Path.home() / ".cache" / "asrkit" / "speech_commands", quiet=quiet
        )

    return Path(embedded())


def speech_commands_recordings(recipe: Recipe, root: Path) -> dict[str, list[Recording]]:
    """The digit-word clips of a Speech Commands corpus by its official lists: training clips (at most
    data.digits.speech_commands_max, drawn reproducibly) for train, validation clips for dev, testing clips for
    test (never trained on: the lists keep speakers apart, so these are voices no training source contains)."""
    digits = {w: i for i, w in enumerate(WORDS)}
    clips = [c for c in sc.scan(root) if c.word in digits]
    out: dict[str, list[Recording]] = {"train": [], "dev": [], "test": []}
    for split, group in sc.split_clips(clips, root).items():
        for c in group:
            index = c.path.stem.rsplit("_nohash_", 1)[-1]
            out[split].append(
                Recording(
                    c.path, digits[c.word], f"sc-{c.speaker}", int(index) if index.isdigit() else 0, "speech_commands"
                )
            )
    cap = recipe.data.digits.speech_commands_max
    if len(out["train"]) > cap:
        keep = sorted(random.Random(recipe.data.seed).sample(range(len(out["train"])), cap))
        out["train"] = [out["train"][i] for i in keep]
    return out


def tts_recordings(
    recipe: Recipe, cache: Path, progress: Callable[[int], None] | None = None
) -> dict[str, list[Recording]]:
    """The digit words in data.digits.tts.voices synthetic voices (rendered once into `cache`); dev_voices of them for dev."""
    cfg = recipe.data.digits.tts
    voices = tts.voice_bank(cfg.voices, recipe.data.seed, cfg.engines, note=tts.note)
    if len(voices) < cfg.voices:
        tts.note(
            f"TTS: {len(voices)} of the {cfg.voices} voices asked for could be drawn from the engines installed here"
        )
    folders = tts.render(voices, list(WORDS), cache, progress=progress)
    order = sorted(voices, key=lambda v: random.Random(f"{recipe.data.seed}:{v.key}").random())
    dev = {v.key for v in order[: min(cfg.dev_voices, max(0, len(order) - 1))]}
    out: dict[str, list[Recording]] = {"train": [], "dev": []}
    for v, folder in folders.items():
        for d, w in enumerate(WORDS):
            out["dev" if v.key in dev else "train"].append(Recording(folder / f"{w}.wav", d, v.key, 0, "tts"))
    return out


@dataclass(frozen=True)
class An4Utterance:
    """A CMU AN4 training utterance made only of digit words: its audio (`.sph`) or, where the corpus ships
    features only, its Sphinx cepstra (`.mfc`), which the recipe turns back into audio (asrkit.data.vocoder)."""

    uid: str
    speaker: str  # an4-<AN4 speaker>, whose first letter is the speaker's sex (f/m)
    text: str
    path: Path


def an4_root(recipe: Recipe) -> Path | None:
    """CMU AN4 for extra voices: data.digits.an4_root, else $ASRKIT_DATA/an4, else None (it is never downloaded for
    this: its archive is 64 MB for ten minutes of digits)."""
    given = recipe.data.digits.an4_root
    if given:
        root = Path(os.path.expandvars(os.path.expanduser(given)))
        found = find_an4(root)
        if not found:
            raise InputError(f"data.digits.an4_root {root} holds no AN4 corpus (etc/an4_train.transcription)")
        return found
    env = os.environ.get("ASRKIT_DATA")
    return find_an4(Path(env) / "an4") if env else None


def an4_utterances(root: Path) -> list[An4Utterance]:
    """AN4's training utterances that hold only the words zero to nine ("oh" is left out: this recipe writes zero),
    with audio where the corpus has it, else cepstra; utterances with neither are skipped."""
    digits = {w.upper() for w in WORDS}
    out = []
    for uid, text in read_transcription(root / "etc" / "an4_train.transcription"):
        words = [w for w in text.split() if w not in ("<s>", "</s>")]
        spk = uid.split("-")[1] if uid.count("-") == 2 else ""
        if not words or not spk or any(w not in digits for w in words):
            continue
        sph, mfc = (root / sub / "an4_clstk" / spk / f"{uid}.{ext}" for sub, ext in (("wav", "sph"), ("feat", "mfc")))
        path = sph if sph.is_file() else mfc if mfc.is_file() else None
        if path is not None:
            out.append(An4Utterance(uid, f"an4-{spk}", " ".join(words).lower(), path))
    return out


def an4_audio(u: An4Utterance, sample_rate: int, f0: float, rng: np.random.Generator):
    """An AN4 utterance as audio at `sample_rate`: its recording, or its cepstra vocoded around `f0` Hz."""
    if u.path.suffix != ".mfc":
        return load_audio(u.path, sample_rate)
    wav = torch.from_numpy(vocoder.vocode(read_mfc(u.path), rng, f0))
    return wav if sample_rate == vocoder.SAMPLE_RATE else resample(wav, vocoder.SAMPLE_RATE, sample_rate)


def _an4_connected(
    recipe: Recipe,
    utts: list[An4Utterance],
    audio_dir: Path,
    rng: random.Random,
    corrupt: Corruption | None,
    progress: Callable[[int], None] | None,
) -> list[Utterance]:
    """AN4's digit strings as training utterances, each in data.digits.an4_copies voices: the speaker's own pitch
    range (by the sex in its name) and a shift of up to two semitones per copy, at a random speed."""
    sr = recipe.data.sample_rate
    out = []
    for u in utts:
        base_rng = random.Random(f"{recipe.data.seed}:{u.speaker}")
        base = base_rng.uniform(165, 255) if u.speaker.startswith("an4-f") else base_rng.uniform(85, 150)
        for k in range(recipe.data.digits.an4_copies):
            f0 = base * 2 ** (rng.uniform(-2, 2) / 12)
            wav = an4_audio(u, sr, f0, np.random.default_rng([recipe.data.seed, zlib.crc32(u.uid.encode()), k]))
            if recipe.data.speed_perturb:
                wav = speed_perturb(wav, sr, rng.uniform(*recipe.data.speed_perturb))
            if corrupt:
                wav = corrupt(wav)
            uid = f"{u.uid}_v{k}"
            path = audio_dir / f"{uid}.flac"
            write_audio(path, wav, sr)
            out.append(
                Utterance(
                    uid,
                    str(path.resolve()),
                    len(wav) / sr,
                    sr,
                    u.text,
                    u.speaker,
                    extra={"kind": "connected", "source": "an4"},
                )
            )
        if progress:
            progress(1)
    return out


def check_held_out(trained: list[Recording], held_out: list[Recording], speakers: Iterable[str] | None = None) -> None:
    """Refuse a preparation in which a held-out recording, or one of the held-out `speakers` (default: every
    speaker of `held_out`), is among the training and dev material: a speaker-independent result must not have
    heard the speaker (the same audio found under another name counts too)."""
    names = {r.speaker.lower() for r in held_out} if speakers is None else {s.lower() for s in speakers}
    both = sorted(names & {r.speaker.lower() for r in trained})
    if both:
        raise InputError(f"held-out speaker(s) {both} also speak in the training or dev material")

    def digest(p: Path) -> str:
        return hashlib.sha1(p.read_bytes()).hexdigest()

    test_audio = {digest(r.path): r for r in held_out}
    for r in trained:
        if (t := test_audio.get(digest(r.path))) is not None:
            raise InputError(f"the training recording {r.path} is the held-out recording {t.path}")


def _trim(wav, sample_rate: int, top_db: float, margin: float = 0.03):
    """Cut leading and trailing audio more than `top_db` below the peak, keeping `margin` seconds either side (librosa)."""
    x = wav.numpy()
    _, (a, b) = librosa.effects.trim(x, top_db=top_db, frame_length=256, hop_length=64)
    pad = int(margin * sample_rate)
    return torch.from_numpy(np.ascontiguousarray(x[max(0, a - pad) : b + pad]))


def _endpointed(wav, recipe: Recipe, rng: random.Random):
    """A training word as a tight endpointer would cut it (data.digits.endpoint_prob, endpoint_db), else as it is."""
    d = recipe.data.digits
    if d.endpoint_prob and rng.random() < d.endpoint_prob:
        return _trim(wav, recipe.data.sample_rate, rng.uniform(*d.endpoint_db), margin=0.0)
    return wav


def _pitch_shifted(wav, sample_rate: int, steps: float):
    """`wav` with pitch and formants moved by `steps` semitones, same duration (librosa's phase vocoder + resampling)."""
    y = librosa.effects.pitch_shift(wav.numpy(), sr=sample_rate, n_steps=steps)
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))


class Corruption:
    """Noise and reverberation for training utterances, as data.digits asks (nothing when both probabilities are 0)."""

    def __init__(self, recipe: Recipe, seed: int):
        self.cfg = recipe.data.digits
        self.sr = recipe.data.sample_rate
        self.rng = np.random.default_rng([recipe.data.seed, seed])
        self.endpoint_rng = random.Random(f"{recipe.data.seed}:{seed}:endpoint")
        noises = []
        if self.cfg.noise_prob and "speech_commands" in self.cfg.sources:
            noises = load_noises(speech_commands_root(recipe), self.sr)
        self.noise = NoiseSource(noises)

    def __call__(self, wav):
        if not (self.cfg.noise_prob or self.cfg.reverb_prob):
            return wav
        x = wav.numpy()
        if self.rng.random() < self.cfg.reverb_prob:
            x = reverberate(x, synthetic_rir(float(self.rng.uniform(*self.cfg.reverb_rt60)), self.sr, self.rng))
        if self.rng.random() < self.cfg.noise_prob:
            x = mix_at_snr(x, self.noise.segment(len(x), self.rng), float(self.rng.uniform(*self.cfg.noise_snr)))
        return torch.from_numpy(np.clip(x, -1.0, 1.0))


def gather_sources(
    recipe: Recipe, out_dir: Path, root: Path, progress: Callable[[int], None] | None = None
) -> dict[str, list[Recording]]:
    """Every recording per split from the recipe's sources: FSDD by its split rule, plus the extra voices
    (Speech Commands, TTS) for train and dev; checked so that no test speaker is heard in train or dev.
    AN4's digit strings, whole utterances rather than words, are gathered by `gather_an4`."""
    d = recipe.data.digits
    splits = split_recordings(scan(root), recipe)
    splits["test_unseen"] = []
    if "speech_commands" in d.sources:
        for split, recs in speech_commands_recordings(recipe, speech_commands_root(recipe)).items():
            splits["test_unseen" if split == "test" else split] += recs
    if "tts" in d.sources and d.tts.voices:
        cache = (
            Path(os.path.expandvars(os.path.expanduser(d.tts.cache)))
            if d.tts.cache
            else _final_dir(out_dir) / "tts-cache"
        )
        if tts.available_engines():
            for split, recs in tts_recordings(recipe, cache, progress).items():
                splits[split] += recs
        else:
            tts.note(
                "TTS: no engine installed (espeak-ng, flite, festival), so no synthetic voices; apt-get install espeak-ng flite festival"
            )
    # one pass over the training audio: no test recording anywhere in it; the official split tests the training
    # speakers on other recordings, so only held-out FSDD speakers and Speech Commands' testing voices are unheard
    unheard = {r.speaker for r in splits["test_unseen"]}
    if recipe.data.test_speakers:
        unheard |= {r.speaker for r in splits["test"]}
    check_held_out(splits["train"] + splits["dev"], splits["test"] + splits["test_unseen"], unheard)
    if not splits["test_unseen"]:
        del splits["test_unseen"]
    return splits


def gather_an4(recipe: Recipe, splits: dict[str, list[Recording]]) -> list[An4Utterance]:
    """AN4's digit strings for training when data.digits.sources names it and a copy is found (a note otherwise);
    refused if any of their speakers is a held-out one."""
    if "an4" not in recipe.data.digits.sources:
        return []
    root = an4_root(recipe)
    if root is None:
        tts.note("AN4: no corpus at data.digits.an4_root or $ASRKIT_DATA/an4, so no AN4 voices")
        return []
    utts = an4_utterances(root)
    unheard = {r.speaker.lower() for r in splits.get("test_unseen", [])}
    if recipe.data.test_speakers:
        unheard |= {r.speaker.lower() for r in splits["test"]}
    both = sorted(unheard & {u.speaker.lower() for u in utts})
    if both:
        raise InputError(f"held-out speaker(s) {both} also speak in AN4's training utterances")
    return utts


def _final_dir(out_dir: Path) -> Path:
    """The data dir itself when `out_dir` is prepare's temporary build folder inside it."""
    return out_dir.parent if out_dir.name.startswith(".") else out_dir


def prepare(
    corpus_dir: Path, output_dir: Path, recipe: Recipe, progress: Callable[[int], None] | None = None
) -> Manifests:
    """Resample every recording, build connected-digit utterances, write audio; returns utterances per manifest.

    Manifests: train and dev (isolated + connected), test (connected), test_isolated (FSDD: the official test
    indices or the held-out speakers), and with Speech Commands among the sources test_unseen: its testing-list
    digit clips, voices that no training source contains.
    """
    sr = recipe.data.sample_rate
    d = recipe.data.digits
    splits = gather_sources(recipe, output_dir, corpus_dir, progress)
    an4 = gather_an4(recipe, splits)
    result: dict[str, list[Utterance]] = {}
    for split, recs in splits.items():
        # each split draws from generators of its own: the test sets do not change with the training material
        rng = random.Random(f"{recipe.data.seed}:{split}")
        gen = np.random.default_rng([recipe.data.seed, zlib.crc32(split.encode())])
        waves = _load_waves(recs, sr, d.trim_db, progress)
        variants = {r.id: [waves[r.id]] for r in recs}
        if split == "train" and d.pitch_shift:
            for r in recs:
                if r.source != "tts":  # synthetic voices already vary in pitch; real voices get shifted copies
                    for _ in range(d.pitch_copies):
                        variants[r.id].append(_pitch_shifted(waves[r.id], sr, rng.uniform(*d.pitch_shift)))
        corrupt = Corruption(recipe, 1) if split == "train" else None
        utts = _isolated(recipe, recs, variants, output_dir / "audio" / split, corrupt) if recipe.data.isolated else []
        utts += _connected(recipe, split, recs, variants, output_dir / "audio" / split, rng, gen, progress, corrupt)
        if split == "train" and an4:
            utts += _an4_connected(recipe, an4, output_dir / "audio" / split, rng, corrupt, progress)
        iso = [u for u in utts if "kind" not in u.extra]
        if split == "test":
            # the headline test set is connected digits; isolated recordings are scored on their own
            result["test_isolated"] = iso
            utts = [u for u in utts if u not in iso]
        result[split] = utts
    return result


def _load_waves(recs: list[Recording], sr: int, trim_db: float, progress: Callable[[int], None] | None) -> dict:
    waves = {}
    for r in recs:
        wav = load_audio(r.path, sr)
        waves[r.id] = wav if r.source == "fsdd" else _trim(wav, sr, trim_db)  # FSDD files are cut tight already
        if progress:
            progress(1)
    return waves


def _isolated(
    recipe: Recipe, recs: list[Recording], variants: dict, audio_dir: Path, corrupt: Corruption | None = None
) -> list[Utterance]:
    sr = recipe.data.sample_rate
    utts = []
    for r in recs:
        for k, wav in enumerate(variants[r.id]):
            uid = r.id if k == 0 else f"{r.id}_v{k}"
            if corrupt:  # training words
                wav = _endpointed(wav, recipe, corrupt.endpoint_rng)
            path = audio_dir / f"{uid}.flac"
            write_audio(path, corrupt(wav) if corrupt else wav, sr)
            utts.append(
                Utterance(
                    uid, str(path.resolve()), len(wav) / sr, sr, WORDS[r.digit], r.speaker, extra={"source": r.source}
                )
            )
    return utts


def _voice_groups(recs: list[Recording]) -> dict[str, list[list[Recording]]]:
    """source → its voices, each a list of recordings; Speech Commands is one pooled voice list (few clips a speaker)."""
    groups: dict[str, dict[str, list[Recording]]] = {}
    for r in recs:
        key = "sc-mixed" if r.source == "speech_commands" else r.speaker
        groups.setdefault(r.source, {}).setdefault(key, []).append(r)
    return {src: [v for _, v in sorted(g.items())] for src, g in sorted(groups.items())}


def _connected(
    recipe: Recipe,
    split: str,
    recs: list[Recording],
    variants: dict,
    audio_dir: Path,
    rng: random.Random,
    gen: np.random.Generator,
    progress: Callable[[int], None] | None,
    corrupt: Corruption | None = None,
) -> list[Utterance]:
    """Connected-digit utterances: one voice per utterance (a source drawn by data.digits.connected_mix), 2-7 of
    its words (each at its own speed in train) with short dithered pauses between them."""
    sr = recipe.data.sample_rate
    c = recipe.data.connected
    groups = _voice_groups(recs)
    sources = sorted(groups)
    weights = [recipe.data.digits.connected_mix.get(s, 0.0) for s in sources]
    if not any(weights):
        weights = [1.0 if s == "fsdd" else 0.0 for s in sources]
    utts = []
    for k in range(c.per_split.get(split, 0)):
        n = rng.randint(c.min_words, c.max_words)
        if split == "train" and rng.random() < recipe.data.digits.mixed_voices:
            source, pool, spk = "mixed", recs, "mixed"
        else:
            source = rng.choices(sources, weights)[0] if len(sources) > 1 else sources[0]
            pool = rng.choice(groups[source])  # one speaker per utterance, as a person reading a digit string would be
            spk = "sc-mixed" if source == "speech_commands" else pool[0].speaker
        chosen = [rng.choice(pool) for _ in range(n)]
        pieces = []
        for i, r in enumerate(chosen):
            lo, hi = c.gap_seconds
            gap = rng.uniform(lo, hi) if 0 < i else rng.uniform(0.0, hi)
            pieces.append(torch.from_numpy(gen.normal(0, DITHER, int(gap * sr)).astype(np.float32)))
            wav = rng.choice(variants[r.id])
            if split == "train":
                wav = _endpointed(wav, recipe, rng)
                if recipe.data.speed_perturb:  # each word at its own speed: more voices than the training speakers have
                    wav = speed_perturb(wav, sr, rng.uniform(*recipe.data.speed_perturb))
            pieces.append(wav)
        pieces.append(
            torch.from_numpy(gen.normal(0, DITHER, int(rng.uniform(0.0, c.gap_seconds[1]) * sr)).astype(np.float32))
        )
        wav = torch.cat(pieces)
        if corrupt:
            wav = corrupt(wav)
        uid = f"con{k:05d}_{spk}"
        path = audio_dir / f"{uid}.flac"
        write_audio(path, wav, sr)
        text = " ".join(WORDS[r.digit] for r in chosen)
        utts.append(
            Utterance(
                uid, str(path.resolve()), len(wav) / sr, sr, text, spk, extra={"kind": "connected", "source": source}
            )
        )
        if progress:
            progress(1)
    return utts


def count_work(corpus_dir: Path, recipe: Recipe) -> int:
    """How many progress steps `prepare` will report (FSDD and connected utterances; extra voices add to it)."""
    d = recipe.data.digits
    n = len(scan(corpus_dir)) + sum(recipe.data.connected.per_split.values())
    if "speech_commands" in d.sources:
        n += sum(len(v) for v in speech_commands_recordings(recipe, speech_commands_root(recipe)).values())
    if "tts" in d.sources:
        n += 11 * d.tts.voices  # rendered, then read word by word
    if "an4" in d.sources and (an4 := an4_root(recipe)) is not None:
        n += len(an4_utterances(an4))
    return n


def load_features(utt: Utterance, recipe: Recipe) -> torch.Tensor:
    """Precomputed features: the utterance's .npy file."""
    return npy_features(utt, recipe)
