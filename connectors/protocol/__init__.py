"""The HTTP modes a connector picks from; every one of them holds an `HttpClient`."""

from __future__ import annotations

from connectors.protocol.http import HTTPConnector
from connectors.protocol.polling import PollingHTTPConnector
from connectors.protocol.streaming import StreamingHTTPConnector
from connectors.protocol.websocket import WebSocketConnector

__all__ = [
    "HTTP_MODES",
    "HTTPConnector",
    "PollingHTTPConnector",
    "StreamingHTTPConnector",
    "WebSocketConnector",
]

# The mode bases whose constructors build an HttpClient (and so take `session`, `on_call`).
# The WebSocket mode holds one too, for the submission and downloads around its socket.
HTTP_MODES = (HTTPConnector, PollingHTTPConnector, StreamingHTTPConnector, WebSocketConnector)
