"""Streaming recognition for unidirectional models: chunked features, carried state, partial transcripts."""

from asrkit.stream.encoder import StreamingEncoder, streamable_reason
from asrkit.stream.features import StreamingLogMel
from asrkit.stream.session import StreamEvent, StreamingRecognizer, StreamResult

__all__ = [
    "StreamingEncoder",
    "StreamingLogMel",
    "StreamingRecognizer",
    "StreamEvent",
    "StreamResult",
    "streamable_reason",
]
