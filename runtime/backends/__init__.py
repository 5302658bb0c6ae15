"""Inference backends behind :class:`runtime.session.Part`: what turns checked model bytes into a runner.

Why a layer at all: the session, its metadata checks and every public API are the same whichever
library runs the graph, so a backend only has to (1) open the bytes :func:`runtime.session.read_model`
already scanned, (2) say what inputs and outputs the graph really has (checked against the
``age.*`` metadata by the session, as for onnxruntime), and (3) run float32 arrays. Two exist:

* ``onnxruntime`` (:mod:`runtime.backends.onnxruntime`): the default, and the only one on a GPU;
* ``openvino`` (:mod:`runtime.backends.openvino`): Intel's OpenVINO on the CPU, optional
  (``pip install .[openvino]``), imported only when asked for.

A backend never reads the file itself: it gets the bytes that were scanned, so what was checked
is what runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from core.errors import ConfigError

from ..providers import ENV_VAR as PROVIDER_ENV_VAR
from ..providers import ProviderChoice, Providers, requested_mode
from ..threads import ThreadPolicy

#: Backend names, the default first.
BACKENDS = ("onnxruntime", "openvino")
DEFAULT_BACKEND = BACKENDS[0]


class BackendError(ConfigError):
    """An unknown backend, one that is not installed, or a combination it cannot run."""


@dataclass(frozen=True)
class GraphArg:
    """One graph input or output as a backend reports it, in onnxruntime's terms (``NodeArg``):
    ``type`` like ``"tensor(float)"``, ``shape`` ints for fixed dims, strings for symbolic ones."""

    name: str
    type: str
    shape: tuple[int | str, ...]


class Runner(Protocol):
    """An opened graph: what :class:`runtime.session.Part` runs."""

    #: the backend's name (:data:`BACKENDS`)
    backend: str
    #: where it runs and why (for the log line and ``/v1/models``)
    choice: ProviderChoice
    #: the backend's own session object (an ``onnxruntime.InferenceSession``, an OpenVINO ``CompiledModel``)
    session: Any

    def inputs(self) -> Sequence[Any]: ...  # items with .name, .type, .shape (GraphArg or ORT NodeArg)

    def outputs(self) -> Sequence[Any]: ...

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Host float32 arrays in, host arrays out in graph output order; safe from several threads."""
        ...


@dataclass(frozen=True)
class OpenOptions:
    """How to open a part: which backend, provider and threads, and (OpenVINO only) the precision it
    computes in (``"f32"`` or ``"bf16"``; None: f32, so outputs match onnxruntime's)."""

    backend: str = DEFAULT_BACKEND
    providers: Providers = None
    threads: ThreadPolicy | None = None
    inference_precision: str | None = None


def check_backend(backend: Any, providers: Providers = None) -> str:
    """``backend`` as a known, installed name, refusing combinations no backend runs: OpenVINO with
    provider ``cuda`` (given, or from ``$AGE_RUNTIME_PROVIDER``) or a list of ORT providers."""
    if backend is None:
        return DEFAULT_BACKEND
    if not isinstance(backend, str) or backend.strip().lower() not in BACKENDS:
        raise BackendError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    backend = backend.strip().lower()
    if backend != DEFAULT_BACKEND:
        mode = requested_mode(providers)
        if mode == "cuda" or isinstance(mode, list):
            asked = "provider 'cuda'" if mode == "cuda" else f"onnxruntime providers {mode}"
            where = f" (from ${PROVIDER_ENV_VAR})" if providers is None else ""
            raise BackendError(f"backend {backend!r} runs on the CPU only; {asked}{where} needs backend "
                               f"{DEFAULT_BACKEND!r}")
        module(backend)  # not installed: say so now, not at the first call
    return backend


def module(backend: str) -> Any:
    """The backend's module (importing an optional one raises :class:`BackendError` when it is missing)."""
    if backend == "openvino":
        from . import openvino as backend_module  # noqa: PLC0415 - optional, only when asked for
    else:
        from . import onnxruntime as backend_module  # noqa: PLC0415
    return backend_module


def open_runner(path: Path, blob: bytes, options: OpenOptions, has_external_data: bool = False,
                names: Sequence[str] = ()) -> Runner:
    """A runner for the checked bytes ``blob`` of the model file ``path``.

    ``names``: the graph input and output names the metadata declares. A backend that may give one
    tensor several names (OpenVINO, after fusing reshapes) reports these where a port carries them.
    Model failures raise whatever the backend raises (the caller names the file); a missing
    optional backend raises :class:`BackendError` with the install command.
    """
    return module(options.backend).open_runner(path, blob, options, has_external_data, names)


def add_argument(parser: Any) -> None:
    """``--backend`` on a command line."""
    parser.add_argument("--backend", default=DEFAULT_BACKEND, choices=BACKENDS,
                        help=f"inference library: {DEFAULT_BACKEND} (default; CPU or CUDA) or openvino (CPU only; "
                             "pip install '.[openvino]')")
