"""Copy the Speech Commands sample's digit-word clips (zero..nine) under asrkit/assets/speech_commands/.

Usage: python scripts/embed_speech_commands.py [SRC_DIR] [DEST_DIR]
Defaults: SRC_DIR=../shared/data/speech_commands/speech_commands_v0.01, DEST_DIR=asrkit/assets/speech_commands.
The clips are copied byte for byte (original names, so the official lists still name them); the official
validation and testing lists are cut down to the lines naming copied clips; the dataset's LICENSE comes along.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SRC = REPO.parent / "shared" / "data" / "speech_commands" / "speech_commands_v0.01"
DEFAULT_DEST = REPO / "asrkit" / "assets" / "speech_commands"
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def embed(src: Path, dest: Path) -> tuple[int, int]:
    """Copy the digit clips, the cut-down lists and the licence; return (clip count, total bytes)."""
    n = total = 0
    for w in WORDS:
        clips = sorted((src / w).glob("*.wav"))
        if not clips:
            raise SystemExit(f"no clips in {src / w}")
        (dest / w).mkdir(parents=True, exist_ok=True)
        for c in clips:
            shutil.copyfile(c, dest / w / c.name)
            n, total = n + 1, total + c.stat().st_size
    for name in ("validation_list.txt", "testing_list.txt"):
        lines = [s.strip() for s in (src / name).read_text().splitlines()]
        kept = [s for s in lines if s.split("/")[0] in WORDS and (dest / s).is_file()]
        (dest / name).write_text("".join(f"{s}\n" for s in kept))
    shutil.copyfile(src / "LICENSE", dest / "LICENSE")
    return n, total


def main(argv: list[str]) -> int:
    """Command-line entry point."""
    src = Path(argv[1]) if len(argv) > 1 else DEFAULT_SRC
    dest = Path(argv[2]) if len(argv) > 2 else DEFAULT_DEST
    n, total = embed(src, dest)
    print(f"{n} clips copied to {dest}; {total} bytes ({total / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
