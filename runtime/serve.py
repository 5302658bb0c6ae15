"""``python -m runtime.serve MODEL_DIR [--host 127.0.0.1] [--port 8080] ...``: an HTTP server.

Serves every exported model in ``MODEL_DIR`` (one subfolder per ``python -m export.onnx``
output; the folder name is the model name) with FastAPI + uvicorn:

* ``POST /v1/models/{name}/generate``   JSON ``{"n": 16, "seed": 0, "format": "png"}`` -> images
* ``POST /v1/models/{name}/variations`` multipart ``image=@face.png n=10 scale=0.01 seed=0``
* ``POST /v1/models/{name}/reconstruct`` multipart ``image=@face.png`` -> the picture encoded and decoded
* ``POST /v1/models/{name}/interpolate`` multipart ``image_a=@a.png image_b=@b.png steps=8 format=gif``
  -> the steps from one picture's latent to the other's
* ``GET /v1/models``, ``GET /healthz``, ``GET /readyz``, ``GET /metrics`` (Prometheus)

Concurrent requests to one model are micro-batched into one inference call. On SIGTERM/SIGINT
the server stops accepting connections and finishes in-flight requests before exiting.
A bad repository or flag ends as one line on stderr and exit status 2; a bad model folder is
listed under ``unavailable`` and the others are served.

Connections are guarded below the app (:mod:`runtime.server.protocol`): request headers must be
complete within ``--header-timeout-s``, at most ``--max-connections`` are open at once, and every
error, the HTTP layer's own included, is JSON ``{"error": ..., "field": ...}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import resource
import sys

from core.errors import AgeError

from . import backends
from . import precision as precision_auto
from . import threads as threads_policy
from .server.settings import Settings

log = logging.getLogger("runtime.serve")

_DEFAULTS = Settings()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m runtime.serve", description="Serve every exported A.G.E. model in MODEL_DIR over HTTP (FastAPI + uvicorn), micro-batching concurrent requests.")
    p.add_argument("model_dir", metavar="MODEL_DIR", help="model repository: one subfolder of <part>.onnx files per model")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    p.add_argument("--max-batch", type=int, default=_DEFAULTS.max_batch, help=f"most latents per coalesced inference call (default {_DEFAULTS.max_batch})")
    p.add_argument("--max-delay-ms", type=float, default=_DEFAULTS.max_delay_ms, help=f"how long to wait for more requests to coalesce (default {_DEFAULTS.max_delay_ms:g})")
    p.add_argument("--max-queue", type=int, default=_DEFAULTS.max_queue, help=f"requests waiting per model before 503 (default {_DEFAULTS.max_queue})")
    p.add_argument("--max-n", type=int, default=_DEFAULTS.max_n, help=f"most images per request (default {_DEFAULTS.max_n})")
    p.add_argument("--max-body-bytes", type=int, default=_DEFAULTS.max_body_bytes, help=f"largest request body (default {_DEFAULTS.max_body_bytes})")
    p.add_argument("--max-image-pixels", type=int, default=_DEFAULTS.max_image_pixels, help=f"largest uploaded image, width*height (default {_DEFAULTS.max_image_pixels})")
    p.add_argument("--request-timeout-s", type=float, default=_DEFAULTS.request_timeout_s, help=f"per-request time limit, then 504 (default {_DEFAULTS.request_timeout_s:g})")
    p.add_argument("--header-timeout-s", type=float, default=_DEFAULTS.header_timeout_s,
                   help="seconds a connection has to send a request's complete headers, from when it opened or its "
                        f"last response ended; then 408 and close (default {_DEFAULTS.header_timeout_s:g})")
    p.add_argument("--keep-alive-s", type=float, default=_DEFAULTS.keep_alive_s,
                   help=f"idle keep-alive connections are closed after this many seconds (default {_DEFAULTS.keep_alive_s:g})")
    p.add_argument("--max-connections", type=int, default=_DEFAULTS.max_connections,
                   help=f"open connections beyond this get 503 + Retry-After and are closed (default {_DEFAULTS.max_connections})")
    p.add_argument("--max-header-bytes", type=int, default=_DEFAULTS.max_header_bytes,
                   help=f"largest request line + headers, then 431 (default {_DEFAULTS.max_header_bytes})")
    p.add_argument("--precision", choices=precision_auto.CHOICES, default="fp32",
                   help="serve <part>.onnx (fp32) or the <part>.fp16.onnx / <part>.int8.onnx variants; auto: per model, the fastest variant within 40 dB PSNR of fp32 measured at start-up")
    p.add_argument("--provider", choices=("auto", "cpu", "cuda"), default=None, help="execution provider (default: $AGE_RUNTIME_PROVIDER or auto)")
    backends.add_argument(p)
    threads_policy.add_arguments(p, threads_policy.SERVER_PRESET)
    p.add_argument("--log-level", type=str.upper, choices=("DEBUG", "INFO", "WARNING", "ERROR"), default="INFO", help="logging level (default INFO)")
    p.add_argument("--no-access-log", action="store_true", help="do not log one line per request")
    return p


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Every :class:`Settings` field from its flag (``--max-batch`` -> ``max_batch``)."""
    return Settings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Settings)})


#: File descriptors kept free beyond --max-connections (model files, logs, the listening socket).
FD_RESERVE = 64


def _ensure_fd_limit(max_connections: int) -> None:
    """Raise the soft open-file limit to fit ``max_connections`` (up to the hard limit), or warn:
    past it accept() fails and nobody, not even /healthz, gets through."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max_connections + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        except (ValueError, OSError):
            new = soft
        if new < want:
            log.warning("open-file limit %d is below --max-connections %d + %d; lower --max-connections or raise "
                        "ulimit -n", new, max_connections, FD_RESERVE)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        if not 0 <= args.port <= 65535:
            raise AgeError(f"--port must be between 0 and 65535, got {args.port}")
        settings = settings_from_args(args)
        try:
            import uvicorn  # noqa: PLC0415, F401 - only after the cheap checks

            from .server.app import create_app  # noqa: PLC0415
            from .server.protocol import uvicorn_config  # noqa: PLC0415
        except ModuleNotFoundError as exc:
            raise AgeError(f"serving needs {exc.name}: pip install 'age-toolkit[runtime]'") from None
        app = create_app(args.model_dir, settings)
    except (AgeError, ValueError) as exc:
        log.error("error: %s", " ".join(str(exc).split()))
        return 2
    state = app.state.server
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("binding %s: the API has no authentication; expose it only behind a trusted proxy", args.host)
    log.info("serving %d model(s) from %s on http://%s:%d (%s)", len(state.models), args.model_dir,
             args.host, args.port, settings.describe())
    _ensure_fd_limit(settings.max_connections)
    config = uvicorn_config(
        app, settings, args.host, args.port,
        log_level=args.log_level.lower(),
        access_log=not args.no_access_log,
        # in-flight requests finish within the request timeout; give them that long to drain
        timeout_graceful_shutdown=int(settings.request_timeout_s) + 5,
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
