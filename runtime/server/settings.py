"""Server limits and knobs: one frozen dataclass shared by the CLI, the app and the tests."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from core.errors import AgeError, ConfigError

from .. import backends
from .. import precision as precision_auto
from .. import threads as threads_policy


@dataclass(frozen=True)
class Settings:
    """Everything ``python -m runtime.serve`` can tune (flag ``--max-batch`` is field ``max_batch``)."""

    #: Most latents one session call decodes; the batcher coalesces requests up to this many.
    max_batch: int = 64
    #: How long the batcher waits, after the oldest queued request arrived, for more to coalesce.
    max_delay_ms: float = 5.0
    #: Requests waiting per model (not yet in a running batch); one more is answered 503 at once.
    max_queue: int = 256
    #: Most images one request may ask for (``n``, or rows of ``latents``).
    max_n: int = 256
    #: Largest request body in bytes (checked on Content-Length and while streaming).
    max_body_bytes: int = 8 * 1024 * 1024
    #: Largest uploaded image, in pixels, read from its header before decoding.
    max_image_pixels: int = 4_000_000
    #: Wall-clock limit for one request (reading the body, queueing, inference, encoding): 504.
    request_timeout_s: float = 30.0
    #: Seconds a connection has to deliver a request's complete headers, counted from when it
    #: opened or its previous response ended; then 408 (or a silent close if it sent nothing).
    #: uvicorn alone never times out headers: half-sent ones would hold a connection forever.
    header_timeout_s: float = 10.0
    #: Seconds an idle keep-alive connection stays open after a response (uvicorn's timeout_keep_alive).
    keep_alive_s: float = 5.0
    #: Open connections beyond this are answered 503 (JSON, Retry-After) and closed.
    max_connections: int = 512
    #: Largest request line + headers in bytes (h11's limit); beyond it, 431.
    max_header_bytes: int = 16 * 1024
    #: Execution provider for every model: None ($AGE_RUNTIME_PROVIDER / auto), "auto", "cpu", "cuda".
    provider: str | None = None
    #: Which export of each model to serve: "fp32" (<part>.onnx), "fp16" or "int8" (<part>.<precision>.onnx),
    #: or "auto": per model, the fastest variant within 40 dB PSNR of fp32, measured at start-up (runtime.precision).
    precision: str = "fp32"
    #: Inference library of every model: "onnxruntime" (CPU or CUDA) or "openvino" (CPU; the openvino extra).
    backend: str = "onnxruntime"
    #: Thread policy of every model's sessions (runtime.threads): None is the "server" preset (all
    #: cores, no spinning: what measured best for the batcher sharing the cores with the event loop
    #: and the clients), else "dedicated", "server", "efficient" or a number of intra-op threads.
    threads: str | int | None = None
    #: Spin-waiting of idle inference threads: None (the preset's, or $AGE_RUNTIME_SPIN), "on"/"off" or a bool.
    spin: str | bool | None = None

    def __post_init__(self) -> None:
        threads_policy.check_arguments(self.threads, self.spin, threads_policy.SERVER_PRESET)
        try:
            backends.check_backend(self.backend, self.provider)
        except AgeError as exc:
            raise ConfigError(f"--{exc}") from None
        if self.precision not in precision_auto.CHOICES:
            raise ConfigError(f"{_flag('precision')} must be one of {', '.join(precision_auto.CHOICES)}, "
                              f"got {self.precision!r}")
        positive_ints = ("max_batch", "max_queue", "max_n", "max_body_bytes", "max_image_pixels", "max_connections",
                         "max_header_bytes")
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{_flag(name)} must be an integer >= 1, got {value!r}")
        if not (isinstance(self.max_delay_ms, (int, float)) and math.isfinite(self.max_delay_ms) and self.max_delay_ms >= 0):
            raise ConfigError(f"{_flag('max_delay_ms')} must be a number >= 0, got {self.max_delay_ms!r}")
        for name in ("request_timeout_s", "header_timeout_s", "keep_alive_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{_flag(name)} must be a number > 0, got {value!r}")

    @property
    def thread_policy(self) -> threads_policy.ThreadPolicy:
        """The :class:`runtime.threads.ThreadPolicy` of ``threads`` / ``spin`` (default preset ``server``)."""
        return threads_policy.resolve(self.threads, self.spin, threads_policy.SERVER_PRESET)

    @property
    def max_delay_s(self) -> float:
        return self.max_delay_ms / 1000.0

    def describe(self) -> str:
        return ", ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")
