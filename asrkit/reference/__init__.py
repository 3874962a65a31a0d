"""NumPy-only reference implementations of the building blocks, written to be read; each is checked against PyTorch
or asrkit's production code in the tests. Nothing here imports torch."""

from asrkit.reference.char_predictor import CharacterPredictor, inference
from asrkit.reference.ctc import CTC, CTCLoss, LogCTC, log_backward, log_forward
from asrkit.reference.decoding import BeamSearchDecoder, GreedySearchDecoder, PrefixBeamSearchDecoder
from asrkit.reference.gru_cell import GRUCell
from asrkit.reference.linear import Linear
from asrkit.reference.lstm_cell import LSTMCell
from asrkit.reference.rnn_classifier import RNNClassifier
from asrkit.reference.rnn_cell import RNNCell

__all__ = [
    "BeamSearchDecoder",
    "CTC",
    "CTCLoss",
    "CharacterPredictor",
    "GRUCell",
    "GreedySearchDecoder",
    "LSTMCell",
    "Linear",
    "LogCTC",
    "PrefixBeamSearchDecoder",
    "RNNCell",
    "RNNClassifier",
    "inference",
    "log_backward",
    "log_forward",
]
