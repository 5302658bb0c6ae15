"""Requests whose client went away: stop their work before inference, answer nobody, count them.

uvicorn tells an ASGI app that its client disconnected only through ``receive()``: once a
request's body has been read, the next ``receive()`` waits until the connection is lost (or the
response is complete) and then returns ``http.disconnect``. Nothing calls it while a request
waits in a batcher's queue, so a request whose client hung up used to be decoded, encoded and
counted as a 200; one whose client hung up in the middle of its body raised Starlette's
``ClientDisconnect`` and came out as two tracebacks and a 500.

:class:`DisconnectMiddleware` runs the app in a child task and, as soon as the body has been read,
watches ``receive()``. A disconnect before the response is complete cancels the child task (a
request still queued is then dropped by its batcher before any inference) and, however the app
ended (cancelled, ``ClientDisconnect`` while reading the body, or a response sent to nobody),
raises :class:`ClientGone`, which :class:`~runtime.server.metrics.MetricsMiddleware` turns into
one info line and ``age_client_disconnects_total``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable


class ClientGone(Exception):
    """The client disconnected before its response was complete."""


class DisconnectMiddleware:
    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gone = complete = False
        when = "before its response"
        watcher: asyncio.Task | None = None

        async def watch() -> dict:
            """After the body: uvicorn's next message is http.disconnect (client gone or response done)."""
            nonlocal gone, when
            message = await receive()
            if message["type"] == "http.disconnect" and not complete:
                gone, when = True, "while its request was being handled"
                task.cancel()
            return message

        async def guarded_receive() -> dict:
            nonlocal watcher, gone, when
            if watcher is not None:  # the body was read already: wait along with the watcher
                return await asyncio.shield(watcher)
            message = await receive()
            if message["type"] == "http.disconnect":
                gone, when = True, "in the middle of its request body"
            elif not message.get("more_body", False):
                watcher = asyncio.get_running_loop().create_task(watch())
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal complete
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                complete = True  # before sending: uvicorn wakes the watcher as it finishes the send
            await send(message)

        task = asyncio.get_running_loop().create_task(self.app(scope, guarded_receive, tracking_send))
        try:
            await task
        except asyncio.CancelledError:
            # our own task cancelled (server shutdown), or the child cancelled because the client left
            current = asyncio.current_task()
            if not gone or (current is not None and current.cancelling()):
                raise
        except Exception:
            if not gone:
                raise
        finally:
            if watcher is not None and not watcher.done():
                watcher.cancel()
        if gone:
            raise ClientGone(when)
