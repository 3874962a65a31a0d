"""Re-encode the FSDD wav recordings losslessly to FLAC under asrkit/assets/fsdd/recordings/.

Usage: python scripts/embed_fsdd.py [SRC_DIR] [DEST_DIR]
Defaults: SRC_DIR=../shared/data/fsdd/recordings (relative to the repo root),
DEST_DIR=asrkit/assets/fsdd/recordings. Every file is read back and compared
sample-by-sample with its wav; any difference aborts with a non-zero exit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SRC = REPO.parent / "shared" / "data" / "fsdd" / "recordings"
DEFAULT_DEST = REPO / "asrkit" / "assets" / "fsdd" / "recordings"
RATE = 8000


def embed(src: Path, dest: Path) -> tuple[int, int]:
    """Encode every src/*.wav to dest/*.flac and verify it; return (file count, total bytes)."""
    wavs = sorted(src.glob("*.wav"))
    if not wavs:
        raise SystemExit(f"no .wav files in {src}")
    dest.mkdir(parents=True, exist_ok=True)
    total = 0
    for wav in wavs:
        data, rate = sf.read(wav, dtype="int16", always_2d=False)
        info = sf.info(wav)
        if rate != RATE or info.channels != 1 or info.subtype != "PCM_16":
            raise SystemExit(f"{wav.name}: expected mono {RATE} Hz PCM_16, got {info.channels} ch {rate} Hz {info.subtype}")
        flac = dest / (wav.stem + ".flac")
        tmp = flac.with_name("." + flac.name + ".tmp")
        sf.write(tmp, data, rate, format="FLAC", subtype="PCM_16")
        back, rate2 = sf.read(tmp, dtype="int16", always_2d=False)
        if rate2 != rate or back.shape != data.shape or not np.array_equal(back, data):
            tmp.unlink()
            raise SystemExit(f"{wav.name}: FLAC round trip is not sample-exact")
        tmp.replace(flac)
        total += flac.stat().st_size
    stale = {p.stem for p in dest.glob("*.flac")} - {w.stem for w in wavs}
    if stale:
        raise SystemExit(f"{len(stale)} .flac files in {dest} have no source wav, e.g. {sorted(stale)[0]}")
    return len(wavs), total


def main(argv: list[str]) -> int:
    """Command-line entry point."""
    src = Path(argv[1]) if len(argv) > 1 else DEFAULT_SRC
    dest = Path(argv[2]) if len(argv) > 2 else DEFAULT_DEST
    n, total = embed(src, dest)
    print(f"{n} recordings encoded to {dest}, all sample-exact; {total} bytes ({total / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
