"""The HTTP/1.1 connection layer: uvicorn's h11 protocol plus the limits and JSON errors it lacks.

What uvicorn (0.30 - 0.54, read in ``uvicorn/protocols/http/h11_impl.py``) does and does not do:

* ``timeout_keep_alive`` is armed only *after a response*, and cancelled by the first byte of the
  next request. A connection that sends half a request line, or half its headers, or nothing,
  is never timed out: enough of them exhaust the process's file descriptors and the server stops
  accepting anyone. -> :attr:`GuardedH11Protocol.header_timeout_s`: from the moment a connection
  opens (and again after each response) its next request's headers must be complete within this
  many seconds, however slowly they trickle in; otherwise 408 (or a silent close if nothing came).
* ``limit_concurrency`` counts those idle connections too, and answers a plain-text 503 only once
  a *complete* request arrives (which a slow client never sends). -> :attr:`max_connections`: a
  connection beyond it has its request answered with a JSON 503 + ``Retry-After`` and closed, and
  gets a short header timeout (:data:`OVER_LIMIT_HEADER_TIMEOUT_S`) so refusals free their sockets.
* A request h11 cannot parse (bad Content-Length, bad request line, headers over
  ``h11_max_incomplete_event_size``) gets a plain-text 400. -> the same answer as JSON
  ``{"error": ..., "field": ...}``, with h11's status hint (431 for oversized headers, 501 for an
  unsupported Transfer-Encoding).
* h11's size limit applies only to an *incomplete* request head: headers of any size that arrive
  in one read are parsed. -> the complete head is measured too (:attr:`max_header_bytes`).
* ``http="auto"`` picks httptools when it is installed, which bypasses all of the above: the
  server always runs this class (:func:`uvicorn_config`), and WebSocket upgrades are off.

Every answer the app itself gives is JSON already (:mod:`runtime.server.errors`).
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import re
import time
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .errors import error_body
from .metrics import ServerMetrics
from .settings import Settings

log = logging.getLogger("runtime.serve")

#: Header timeout of a connection opened beyond --max-connections (it only waits to be refused).
OVER_LIMIT_HEADER_TIMEOUT_S = 1.0
#: Seconds a client over the connection limit is told to wait.
RETRY_AFTER_S = 1
#: At most one "connection limit reached" warning per this many seconds (a flood is one line).
_WARN_EVERY_S = 10.0
_HEADER_NAMES = re.compile(r"content-length|transfer-encoding|host", re.IGNORECASE)


def _json_error_bytes(status: int, message: str, field: str | None = None, retry_after: int | None = None) -> bytes:
    """A complete HTTP/1.1 response (``Connection: close``) carrying the JSON error shape."""
    body = json.dumps(error_body(message, field)).encode()
    reason = http.HTTPStatus(status).phrase
    extra = f"retry-after: {retry_after}\r\n" if retry_after is not None else ""
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"{extra}connection: close\r\n\r\n")
    return head.encode("latin-1") + body


class _WatchedConnection(h11.Connection):
    """h11's connection, telling the protocol when a request's headers are complete and keeping
    the parse error (uvicorn drops it and sends a fixed message)."""

    def __init__(self, max_header_bytes: int, on_headers: Any):
        super().__init__(h11.SERVER, max_incomplete_event_size=max_header_bytes)
        self.max_header_bytes = max_header_bytes
        self.on_headers = on_headers
        self.error: h11.RemoteProtocolError | None = None

    def next_event(self) -> Any:
        try:
            event = super().next_event()
            if isinstance(event, h11.Request):
                size = len(event.method) + len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers)
                if size > self.max_header_bytes:  # a complete head that came in one read
                    raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
        except h11.RemoteProtocolError as exc:
            self.error = exc
            raise
        if isinstance(event, h11.Request):
            self.on_headers()
        return event


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header timeout, a connection limit and JSON protocol errors.

    Configured by class attributes; :func:`protocol_class` makes a subclass from :class:`Settings`.
    """

    header_timeout_s: float = Settings.header_timeout_s
    max_connections: int = Settings.max_connections
    max_header_bytes: int = Settings.max_header_bytes
    metrics: ServerMetrics | None = None
    _last_warning = 0.0  # shared by the class: when "connection limit reached" was last logged

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.conn = _WatchedConnection(self.max_header_bytes, self._headers_complete)
        self._header_timer: asyncio.TimerHandle | None = None

    # -- the header timeout ---------------------------------------------------------------

    def _arm_header_timer(self, seconds: float) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(seconds, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_complete(self) -> None:
        self._cancel_header_timer()

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.conn.trailing_data[0]:  # part of a request arrived: say why we hang up
            self._count("header_timeout")
            self.transport.write(_json_error_bytes(
                408, f"request headers not complete within {self.header_timeout_s:g} s (--header-timeout-s)", "headers"))
        self.transport.close()

    # -- uvicorn's hooks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        timeout = self.header_timeout_s
        if len(self.connections) > self.max_connections:
            self.app = _too_many_connections(self.max_connections)  # this connection's request only
            timeout = min(timeout, OVER_LIMIT_HEADER_TIMEOUT_S)
            self._count("too_many_connections")
            now = time.monotonic()
            if now - GuardedH11Protocol._last_warning > _WARN_EVERY_S:
                GuardedH11Protocol._last_warning = now
                log.warning("connection limit reached: %d open (--max-connections %d); refusing new ones with 503",
                            len(self.connections), self.max_connections)
        self._arm_header_timer(timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        # the next request's headers are due within the timeout too (armed first: a pipelined
        # request already buffered is parsed inside super() and disarms it at once)
        if not self.transport.is_closing():
            self._arm_header_timer(self.header_timeout_s)
        super().on_response_complete()

    def send_400_response(self, msg: str) -> None:
        """h11 could not parse the request: answer JSON with h11's reason and status hint."""
        error = self.conn.error
        detail = " ".join(str(error).split())[:200] if error is not None else msg
        status = getattr(error, "error_status_hint", 400) or 400
        if status == 431:
            message, field = f"request line and headers exceed {self.max_header_bytes} bytes (--max-header-bytes)", "headers"
        else:
            match = _HEADER_NAMES.search(detail)
            message, field = f"malformed HTTP request: {detail}", match.group(0).lower() if match else None
        self._count("bad_request")
        self._cancel_header_timer()
        if not (self.cycle is not None and self.cycle.response_started):  # never inside a response
            self.transport.write(_json_error_bytes(status, message, field))
        self.transport.close()

    def _count(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.connection_errors.inc(reason=reason)


def _too_many_connections(limit: int) -> Any:
    """An ASGI app answering 503 (JSON, Retry-After, Connection: close) to one over-limit request."""
    body = json.dumps(error_body(f"too many open connections (--max-connections {limit}); retry shortly")).encode()

    async def app(scope: dict, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 503, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(RETRY_AFTER_S).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return app


def protocol_class(settings: Settings, metrics: ServerMetrics | None = None) -> type[GuardedH11Protocol]:
    """A :class:`GuardedH11Protocol` subclass carrying ``settings``' limits (uvicorn instantiates it)."""
    return type("AgeH11Protocol", (GuardedH11Protocol,), {
        "header_timeout_s": settings.header_timeout_s,
        "max_connections": settings.max_connections,
        "max_header_bytes": settings.max_header_bytes,
        "metrics": metrics,
    })


def uvicorn_config(app: Any, settings: Settings, host: str = "127.0.0.1", port: int = 8080, **kwargs: Any) -> uvicorn.Config:
    """The uvicorn configuration ``python -m runtime.serve`` runs (tests use it too): our protocol
    class whatever is installed, no WebSockets, the keep-alive timeout and header size limit from
    ``settings``, and ``kwargs`` (log level, access log, graceful-shutdown time, ...)."""
    metrics = getattr(getattr(getattr(app, "state", None), "server", None), "metrics", None)
    options: dict[str, Any] = {"log_config": None, "lifespan": "on"}
    options.update(kwargs)
    return uvicorn.Config(
        app, host=host, port=port, http=protocol_class(settings, metrics), ws="none",
        timeout_keep_alive=settings.keep_alive_s,  # type: ignore[arg-type] - call_later takes a float
        h11_max_incomplete_event_size=settings.max_header_bytes, **options,
    )
