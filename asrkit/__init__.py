"""asrkit: a command-line speech-recognition toolkit.

`asrkit.load(checkpoint)` gives a `Recognizer` (transcribe, align, classify): see `asrkit.api`.
"""

from asrkit.version import __version__

__all__ = ["load", "Recognizer", "__version__"]


def __getattr__(name: str):
    if name in ("load", "Recognizer"):
        from asrkit import api  # lazy: `import asrkit` and `asrkit --help` must not pay for torch until the API is used

        return getattr(api, name)
    raise AttributeError(f"module 'asrkit' has no attribute {name!r}")
