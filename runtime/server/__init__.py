"""HTTP serving for exported A.G.E. generators (FastAPI + uvicorn on top of :mod:`runtime`).

``python -m runtime.serve MODEL_DIR`` serves every model folder in ``MODEL_DIR``; in process,
``create_app(MODEL_DIR, Settings(...))`` returns the ASGI app. Like the rest of the runtime this
package imports neither torch nor TensorFlow.

Modules, one concern each: :mod:`.settings` (limits), :mod:`.repository` (loading the model
folders), :mod:`.batcher` (micro-batching), :mod:`.schemas` (request validation),
:mod:`.limits` (body size, upload pixels), :mod:`.disconnect` (clients that went away),
:mod:`.metrics` (Prometheus text format), :mod:`.errors` (the JSON error shape), :mod:`.app`
(routes), :mod:`.protocol` (the HTTP connection layer: header timeout, connection limit, JSON
protocol errors, the uvicorn config); response bodies are :func:`core.images.encode`, shared
with the CLI.
"""

from __future__ import annotations

from typing import Any

from .settings import Settings

__all__ = ["Repository", "Settings", "create_app"]


def __getattr__(name: str) -> Any:
    # Lazy, so `runtime.serve --help` and Settings work (and say what is missing) without FastAPI.
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "Repository":
        from .repository import Repository

        return Repository
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
