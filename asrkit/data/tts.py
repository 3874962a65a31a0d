"""Synthetic voices: words rendered by Debian's TTS engines (espeak-ng, flite, festival), cached on disk.

A voice is an engine, a voice name and the engine's own knobs (pitch, speed, duration stretch). `voice_bank`
draws a reproducible set of voices from the engines installed here; `render` writes each voice's words as WAV
files under a cache folder (one folder per voice, written atomically, so a second call renders nothing).
An engine that is not installed is skipped with one line on stderr: the recipe still runs on its other sources.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from asrkit.errors import InputError

ENGINES = ("espeak-ng", "flite", "festival")
ESPEAK_ACCENTS = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
# espeak-ng variants kept out of every voice bank: voices no training source contains, for trying a model on a
# voice it never heard (the README's example) and for a synthetic unseen-voice check
HELD_OUT_VARIANTS = ("grandma", "Andrea", "steph2", "Mario")
# variants that do not sound like a human speaker (robots, whisper) and would teach the model nothing useful
_NOT_HUMAN = re.compile(r"robo|Robot|whisper|Demonic|Tweaky|kaukovalta|UniRobot|Storm", re.IGNORECASE)
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
_SAFE = re.compile(r"[^A-Za-z0-9_.+-]")


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: `engine`, its voice `name`, pitch (espeak-ng 0-99, flite F0 Hz; 0 = the voice's own)
    and `speed` (espeak-ng words per minute; flite and festival: duration stretch × 100)."""

    engine: str
    name: str
    pitch: int = 0
    speed: int = 0

    @property
    def key(self) -> str:
        """A file-name-safe id, also the voice's speaker name in manifests."""
        return _SAFE.sub("_", f"tts-{self.engine}-{self.name}-p{self.pitch}-s{self.speed}")


def espeak_variants() -> list[str]:
    """espeak-ng's voice variants installed here (the `!v` folder), human-sounding ones only."""
    exe = shutil.which("espeak-ng")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "--voices=variant"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    names = []
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5 and parts[4].startswith("!v/"):
            names.append(parts[4][3:])
    return sorted(n for n in set(names) if not _NOT_HUMAN.search(n))


def festival_voices() -> list[str]:
    """The festival voices installed here (of those asrkit knows how to call)."""
    if not shutil.which("festival"):
        return []
    found = []
    for base in ("/usr/share/festival/voices", "/usr/lib/festival/voices"):
        for v in FESTIVAL_VOICES:
            if any(Path(base).glob(f"*/{v}")):
                found.append(v)
    return sorted(set(found), key=FESTIVAL_VOICES.index)


def available_engines() -> dict[str, list[str]]:
    """engine → the voices (espeak-ng: variants) usable here; an engine that is missing is absent."""
    out: dict[str, list[str]] = {}
    if variants := espeak_variants():
        out["espeak-ng"] = variants
    if shutil.which("flite"):
        out["flite"] = list(FLITE_VOICES)
    if voices := festival_voices():
        out["festival"] = voices
    return out


def voice_bank(
    n: int,
    seed: int,
    engines: Iterable[str] = ENGINES,
    exclude: Iterable[str] = HELD_OUT_VARIANTS,
    note: Callable[[str], None] | None = None,
) -> list[Voice]:
    """`n` distinct voices drawn reproducibly from the engines installed here, spread over the engines.

    flite and festival have few voices, so each takes at most a tenth (festival) or a fifth (flite) of the bank,
    varied in speed and pitch; espeak-ng fills the rest from its accents × variants × pitch × speed.
    """
    wanted = [e for e in engines if e in ENGINES]
    unknown = sorted(set(engines) - set(ENGINES))
    if unknown:
        raise InputError(f"unknown TTS engine(s) {unknown}; known: {', '.join(ENGINES)}")
    have = available_engines()
    missing = [e for e in wanted if e not in have]
    if missing and note:
        note(
            f"TTS: {', '.join(missing)} not installed, so no voices from {'it' if len(missing) == 1 else 'them'} "
            "(apt-get install espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts)"
        )
    rng = random.Random(seed)
    bank: dict[str, Voice] = {}

    def add(v: Voice) -> None:
        bank.setdefault(v.key, v)

    if "festival" in wanted and "festival" in have:
        for _ in range(min(n // 10, 4 * len(have["festival"]))):
            add(Voice("festival", rng.choice(have["festival"]), 0, rng.choice(range(85, 125, 5))))
    if "flite" in wanted and "flite" in have:
        for _ in range(n // 5):
            add(
                Voice("flite", rng.choice(have["flite"]), rng.choice(range(80, 230, 10)), rng.choice(range(80, 125, 5)))
            )
    if "espeak-ng" in wanted and "espeak-ng" in have:
        variants = [v for v in have["espeak-ng"] if v not in set(exclude)]
        tries = 0
        while len(bank) < n and tries < 50 * n:
            tries += 1
            name = f"{rng.choice(ESPEAK_ACCENTS)}+{rng.choice(variants)}"
            add(Voice("espeak-ng", name, rng.randrange(10, 90, 5), rng.randrange(120, 200, 10)))
    return sorted(bank.values(), key=lambda v: v.key)[:n]


def _espeak(v: Voice, word: str, path: Path) -> list[str]:
    return ["espeak-ng", "-v", v.name, "-p", str(v.pitch), "-s", str(v.speed), "-w", str(path), word]


def _flite(v: Voice, word: str, path: Path) -> list[str]:
    cmd = ["flite", "-voice", v.name, "--setf", f"duration_stretch={v.speed / 100:.2f}"]
    if v.pitch:
        cmd += ["--setf", f"int_f0_target_mean={v.pitch}"]
    return cmd + ["-t", word, "-o", str(path)]


def _festival_script(v: Voice, words: list[str], folder: Path) -> str:
    lines = [f"(voice_{v.name})", f"(Parameter.set 'Duration_Stretch {v.speed / 100:.2f})"]
    for w in words:
        lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{w}")) "{folder / (w + ".wav")}" \'riff)')
    return "\n".join(lines) + "\n"


def _render_voice(v: Voice, words: list[str], cache: Path) -> Path:
    """All `words` in voice `v` into cache/<key>/<word>.wav; built in a temporary folder and renamed when complete."""
    final = cache / v.key
    if all((final / f"{w}.wav").is_file() for w in words):
        return final
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{v.key}.", dir=cache))
    except OSError as e:
        raise InputError(f"cannot write the TTS cache {cache}: {e.strerror or e}") from None
    try:
        if v.engine == "festival":
            script = tmp / "render.scm"
            script.write_text(_festival_script(v, words, tmp))
            subprocess.run(["festival", "-b", str(script)], check=True, capture_output=True, timeout=300)
            script.unlink()
        else:
            make = _espeak if v.engine == "espeak-ng" else _flite
            for w in words:
                subprocess.run(make(v, w, tmp / f"{w}.wav"), check=True, capture_output=True, timeout=60)
        for w in words:
            f = tmp / f"{w}.wav"
            if not f.is_file() or f.stat().st_size <= 44:
                raise InputError(f"TTS voice {v.key} wrote no audio for {w!r}")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except (OSError, subprocess.SubprocessError) as e:
        raise InputError(f"TTS voice {v.key} failed: {e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def render(
    voices: list[Voice],
    words: list[str],
    cache: str | Path,
    jobs: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict[Voice, Path]:
    """Render every voice's `words` into `cache` (cached per voice); voice → folder holding `<word>.wav`."""
    cache = Path(cache)
    jobs = jobs or (os.cpu_count() or 1)
    out: dict[Voice, Path] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:  # the work is in the engines' own processes
        for v, folder in zip(voices, pool.map(lambda v: _render_voice(v, words, cache), voices)):
            out[v] = folder
            if progress:
                progress(1)
    return out


def note(message: str) -> None:
    """One line on stderr, as prepare's other notes."""
    print(f"prepare: {message}", file=sys.stderr)
