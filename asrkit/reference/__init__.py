"""NumPy-only reference implementations of the building blocks, written to be read; each is checked against PyTorch
or asrkit's production code in the tests. Nothing here imports torch."""

from asrkit.reference.decoding import BeamSearchDecoder, GreedySearchDecoder

__all__ = ["BeamSearchDecoder", "GreedySearchDecoder"]
