"""asrkit: a command-line speech-recognition toolkit."""

__version__ = "0.1.0"
