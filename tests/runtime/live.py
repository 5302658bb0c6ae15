"""A server for tests: the app served for real by uvicorn on 127.0.0.1 in a thread."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

import httpx


@contextmanager
def serve(app, timeout: float = 20) -> Iterator[httpx.Client]:
    """Start uvicorn around ``app`` on an OS-chosen port, wait for ``/readyz``, yield a client, stop."""
    import uvicorn

    from runtime.server.protocol import uvicorn_config

    settings = app.state.server.settings
    server = uvicorn.Server(uvicorn_config(app, settings, "127.0.0.1", 0, access_log=False, timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            while client.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, "server never became ready"
                time.sleep(0.02)
            yield client
    finally:
        server.should_exit = True
        thread.join(30)
