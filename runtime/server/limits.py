"""The request body size limit, enforced before any body is parsed (the upload pixel limit is
:func:`core.images.open_image`'s, checked from the image header before decoding)."""

from __future__ import annotations

from typing import Any, Callable

from starlette.responses import JSONResponse

from .errors import ApiError, error_body, error_response


class BodyTooLarge(ApiError):
    def __init__(self, limit: int, field: str = "body"):
        super().__init__(413, f"request body exceeds the limit of {limit} bytes (--max-body-bytes)", field)


class BodyLimitMiddleware:
    """ASGI middleware: refuse bodies over ``max_bytes``.

    A ``Content-Length`` over the limit is answered 413 before a byte of the body is read; a body
    without one (chunked) is counted while it streams in and refused as soon as it passes the
    limit, so nothing downstream (JSON or multipart parsing) ever sees more than ``max_bytes``.
    """

    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared == -1:
            response = JSONResponse(error_body("Content-Length is not a non-negative integer", "content-length"), 400)
            await response(scope, receive, send)
            return
        if declared is not None and declared > self.max_bytes:
            await error_response(BodyTooLarge(self.max_bytes, "content-length"))(scope, receive, send)
            return

        seen = 0
        started = False

        async def counting_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watching_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge as exc:  # raised where no handler caught it (e.g. a body-reading dependency)
            if started:
                raise
            await error_response(exc)(scope, receive, send)


def _content_length(scope: dict) -> int | None:
    """The declared length; None when absent; -1 when malformed."""
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else -1
    return None
