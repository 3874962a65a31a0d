"""Speech Commands v0.02-layout fixtures built at run time: FSDD digits (`zero` … `nine`), espeak-ng words,
generated `_background_noise_/` recordings, `validation_list.txt` / `testing_list.txt`; optionally merged with a
real Speech Commands folder (its clips and lists kept as they are).

Also a script, for the recipe's measurement (recipes/HISTORY.md):
    python tests/speech_commands_fixture.py OUT [--merge ../shared/data/speech_commands/speech_commands_v0.01]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FSDD_SPEAKERS = ("george", "jackson", "nicolas", "yweweler")
# espeak-ng voices (accents) × variants (voice qualities): each pair is one synthetic "speaker"
VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
VARIANTS = ("", "+f2", "+m3", "+f4", "+m7", "+f1")
RATE = 16000


def speaker_hash(name: str) -> str:
    """An 8-hex-digit speaker id, like the corpus's."""
    return hashlib.sha1(name.encode()).hexdigest()[:8]


def _write(path: Path, wav: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.clip(wav, -1, 1), RATE, subtype="PCM_16")


def add_fsdd(
    dest: Path, fsdd: Path, digits: Iterable[int], speakers: Iterable[str], indices: Iterable[int], split_of
) -> dict[str, str]:
    """FSDD recordings resampled to 16 kHz as `<word>/<hash>_nohash_<index>.wav`; returns {list entry: split}."""
    import torch

    from asrkit.audio import read_audio, resample

    out = {}
    for d in digits:
        for spk in speakers:
            for i in indices:
                wav, sr = read_audio(fsdd / f"{d}_{spk}_{i}.wav")
                name = f"{DIGIT_WORDS[d]}/{speaker_hash(spk)}_nohash_{i}.wav"
                _write(dest / name, resample(torch.from_numpy(wav), sr, RATE).numpy())
                out[name] = split_of(i)
    return out


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def add_espeak(dest: Path, words: Iterable[str], voices: list[tuple[str, int, int]], split_of) -> dict[str, str]:
    """Each word in each (voice, speed, pitch) as `<word>/<hash>_nohash_0.wav` at 16 kHz; returns {list entry: split}."""
    import torch

    from asrkit.audio import read_audio, resample

    jobs = [(w, k, v) for w in words for k, v in enumerate(voices)]
    with tempfile.TemporaryDirectory() as tmp:

        def synth(job) -> tuple[str, str]:
            word, k, (voice, speed, pitch) = job
            raw = Path(tmp) / f"{word}_{k}.wav"
            subprocess.run(
                ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), word],
                check=True,
                capture_output=True,
            )
            wav, sr = read_audio(raw)
            name = f"{word}/{speaker_hash(f'{voice}-{speed}-{pitch}')}_nohash_0.wav"
            _write(dest / name, resample(torch.from_numpy(wav), sr, RATE).numpy())
            return name, split_of(k)

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            return dict(pool.map(synth, jobs))


def voice_grid(n: int, seed: int = 0) -> list[tuple[str, int, int]]:
    """`n` distinct (voice+variant, speed wpm, pitch) triples."""
    rng = np.random.default_rng(seed)
    combos = [v + q for q in VARIANTS for v in VOICES]
    return [(combos[k % len(combos)], int(rng.integers(110, 200)), int(rng.integers(25, 75))) for k in range(n)]


def add_noise(dest: Path, seconds: float = 3.0, seed: int = 0) -> None:
    """`_background_noise_/` with generated white and pink noise and a mains hum (the real folder has 6 such files)."""
    from asrkit.data.noise import generate_noise

    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    d = dest / "_background_noise_"
    _write(d / "white_noise.wav", 0.3 * generate_noise("white", n, rng))
    _write(d / "pink_noise.wav", 0.3 * generate_noise("pink", n, rng))
    _write(d / "hum.wav", 0.2 * np.sin(2 * np.pi * 50 * t) + 0.05 * generate_noise("white", n, rng))
    (d / "README.md").write_text("generated noise for tests\n")


def write_lists(dest: Path, entries: dict[str, str], extra_lists: Path | None = None) -> None:
    """validation_list.txt / testing_list.txt from {entry: split}, after a real corpus's lists when merging."""
    for fname, split in (("validation_list.txt", "dev"), ("testing_list.txt", "test")):
        lines = extra_lists.joinpath(fname).read_text().splitlines() if extra_lists else []
        lines += sorted(e for e, s in entries.items() if s == split)
        (dest / fname).write_text("\n".join(lines) + "\n")


def by_index(test: Iterable[int], dev: Iterable[int]):
    """A split rule on a clip's index: `test` indices → test, `dev` → dev, the rest → train."""
    test, dev = set(test), set(dev)
    return lambda i: "test" if i in test else "dev" if i in dev else "train"


def merge_real(dest: Path, real: Path) -> None:
    """Link a real corpus's word folders' clips into `dest` (its lists are merged by `write_lists`)."""
    for d in sorted(p for p in real.iterdir() if p.is_dir() and not p.name.startswith(".")):
        (dest / d.name).mkdir(parents=True, exist_ok=True)
        for f in sorted(d.glob("*.wav")):
            os.symlink(f.resolve(), dest / d.name / f.name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument(
        "--fsdd", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd" / "recordings"
    )
    ap.add_argument("--merge", type=Path, help="a real Speech Commands folder whose clips and lists are kept")
    ap.add_argument("--voices", type=int, default=48, help="espeak-ng voices per word")
    ap.add_argument(
        "--words", nargs="*", help="espeak-ng words (default: the merged corpus's words, else the 10 commands)"
    )
    args = ap.parse_args()
    out: Path = args.out
    if out.exists():
        raise SystemExit(f"{out} exists; give a new folder")
    out.mkdir(parents=True)
    # with a real corpus merged, its official test clips stay the only test set: synthetic clips go to train/dev
    test_idx = () if args.merge else (0, 1, 2, 3, 4)
    entries = add_fsdd(out, args.fsdd, range(10), FSDD_SPEAKERS, range(50), by_index(test_idx, (5, 6, 7, 8, 9)))
    words = args.words or (
        sorted(p.name for p in args.merge.iterdir() if p.is_dir() and not p.name.startswith("_"))
        if args.merge
        else list(("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"))
    )
    if espeak_available():
        k = args.voices
        entries |= add_espeak(
            out,
            words,
            voice_grid(k),
            lambda j: "test" if not args.merge and j % 10 == 0 else "dev" if j % 10 == 1 else "train",
        )
    add_noise(out)
    if args.merge:
        merge_real(out, args.merge)
    write_lists(out, entries, args.merge)
    n = sum(1 for _ in out.glob("*/*.wav"))
    print(f"{out}: {n} clips")


if __name__ == "__main__":
    main()
