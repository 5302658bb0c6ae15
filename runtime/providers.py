"""Execution-provider choice: CUDA only when it really loads, otherwise CPU, quietly.

Why this module exists: ``onnxruntime-gpu`` lists ``CUDAExecutionProvider`` in
``get_available_providers()`` on every machine, GPU or not, because that list only says which
providers were *compiled in*. Asking for CUDA on a machine without a driver makes ORT print a
multi-line error to stderr and silently fall back to CPU. So we:

1. honour ``AGE_RUNTIME_PROVIDER`` (``auto`` | ``cpu`` | ``cuda``) or the caller's choice;
2. skip CUDA when the build lacks it or the NVIDIA driver library is absent (cheap check);
3. otherwise preload the pip-installed CUDA/cuDNN libraries (``ort.preload_dlls``), create the
   session with ``[CUDA, CPU]`` while ORT's loggers are muted, and trust only
   ``session.get_providers()``;
4. remember the outcome for the rest of the process, so a second part (the encoder) neither
   retries nor logs again.

The one log line is written by :func:`runtime.load` (logger ``"runtime"``) from the
:class:`ProviderChoice` returned here.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import os
import platform
import re
from dataclasses import dataclass
from typing import Sequence, Union

import onnxruntime as ort

from core.errors import AgeError

from . import threads as threads_policy
from .threads import ThreadPolicy

log = logging.getLogger("runtime")

ENV_VAR = "AGE_RUNTIME_PROVIDER"
MODES = ("auto", "cpu", "cuda")
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"

#: ORT severities: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal. A failed CUDA provider load
#: is logged at *error* level, so only 4 keeps it off stderr during the probe.
_PROBE_SEVERITY = 4
#: What our sessions use afterwards (errors still surface as Python exceptions).
_SESSION_SEVERITY = 3
#: ORT's own default for the process-wide logger, restored after a probe.
_DEFAULT_SEVERITY = 2

Providers = Union[str, Sequence[str], None]


class ProviderError(AgeError):
    """The requested execution provider is unknown or could not be loaded."""


@dataclass(frozen=True)
class ProviderChoice:
    """The provider a session really runs on, and why (for the one log line)."""

    provider: str
    reason: str

    def describe(self) -> str:
        return f"using {self.provider} ({self.reason})"


#: Process-wide memo of the CUDA probe: None = not tried yet, else (loaded?, reason).
_cuda_state: tuple[bool, str] | None = None


def reset_probe() -> None:
    """Forget the remembered CUDA outcome (tests; or after installing drivers in-process)."""
    global _cuda_state
    _cuda_state = None


def requested_mode(providers: Providers = None) -> str | list[str]:
    """Normalise the caller's request: a mode string, or an explicit list of ORT provider names.

    ``None`` defers to ``$AGE_RUNTIME_PROVIDER`` (default ``auto``).
    """
    if providers is None:
        value = os.environ.get(ENV_VAR, "").strip().lower() or "auto"
        if value not in MODES:
            raise ProviderError(f"{ENV_VAR}={value!r} is not one of {', '.join(MODES)}")
        return value
    if isinstance(providers, str):
        value = providers.strip().lower()
        if value not in MODES:
            raise ProviderError(f"provider {providers!r} is not one of {', '.join(MODES)}")
        return value
    names = [str(p) for p in providers]
    if not names:
        raise ProviderError("providers: empty list")
    return names


#: "0" stops onnxruntime's intra-op threads from spin-waiting for work after each run, "1" keeps
#: them spinning, where the caller gives no ``spin`` (:mod:`runtime.threads`).
SPIN_ENV_VAR = threads_policy.SPIN_ENV_VAR


#: onnxruntime's session config key (``kOrtSessionOptionsModelExternalInitializersFileFolderPath``):
#: the folder that external data of a model loaded *from bytes* is resolved against. Without it
#: ORT resolves a relative location against the process's working directory.
EXTERNAL_DATA_FOLDER_KEY = "session.model_external_initializers_file_folder_path"


def session_options(severity: int = _SESSION_SEVERITY, external_data_dir: str | None = None,
                    threads: ThreadPolicy | None = None) -> ort.SessionOptions:
    """ORT options for one session: log level, the external-data folder, and ``threads`` (None:
    the default preset, :func:`runtime.threads.resolve`, ``$AGE_RUNTIME_SPIN`` included)."""
    options = ort.SessionOptions()
    options.log_severity_level = severity
    if external_data_dir is not None:
        options.add_session_config_entry(EXTERNAL_DATA_FOLDER_KEY, external_data_dir)
    return threads_policy.ort_options(options, threads if threads is not None else threads_policy.resolve())


def _driver_present() -> tuple[bool, str]:
    """Is the NVIDIA driver's user-space library loadable? (Without it CUDA cannot load.)"""
    system = platform.system()
    name = {"Linux": "libcuda.so.1", "Windows": "nvcuda.dll"}.get(system)
    if name is None:
        return False, f"no CUDA on {system}"
    try:
        ctypes.CDLL(name)
    except OSError:
        return False, f"no NVIDIA driver: {name} not found"
    return True, "NVIDIA driver found"


def _preload_cuda_libraries() -> None:
    """Let ORT find CUDA/cuDNN from pip's ``nvidia-*`` wheels (it ``print``s on trouble: muted)."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink):
            preload()
    except Exception as exc:  # noqa: BLE001 - best effort; the session attempt decides
        log.debug("ort.preload_dlls failed: %s", exc)
    if sink.getvalue().strip():
        log.debug("ort.preload_dlls said: %s", " ".join(sink.getvalue().split()))


def _try_cuda(model: str | bytes, folder: str | None, threads: ThreadPolicy | None = None) -> tuple[ort.InferenceSession | None, str, bool]:
    """One muted attempt at a ``[CUDA, CPU]`` session.

    Returns ``(session, why, cuda_loaded)``: ``session`` is None only when ORT raised (which may
    be the model's fault, not CUDA's); when CUDA silently fell back, the session it made is a
    perfectly good CPU session and is handed back for reuse.
    """
    _preload_cuda_libraries()
    ort.set_default_logger_severity(_PROBE_SEVERITY)
    try:
        session = ort.InferenceSession(model, session_options(_PROBE_SEVERITY, folder, threads), providers=[CUDA, CPU])
    except Exception as exc:  # noqa: BLE001 - CUDA init failures come as assorted ORT errors
        return None, f"CUDA session failed: {ort_message(exc)}", False
    finally:
        ort.set_default_logger_severity(_DEFAULT_SEVERITY)
    if CUDA in session.get_providers():
        return session, "CUDA provider loaded", True
    return session, "CUDA provider did not load", False


_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*")
_ORT_SOURCE = re.compile(r"\S*onnxruntime_src/\S+:\d+\s+")


def ort_message(exc: BaseException, limit: int = 300) -> str:
    """ORT's message on one line, without its status prefix and C++ source location/signature."""
    text = _ORT_PREFIX.sub("", " ".join(str(exc).split()))
    match = _ORT_SOURCE.search(text)
    if match:  # "<file>:<line> <C++ signature>(...) <message>": keep the message
        depth, i = 0, match.end()
        for i in range(match.end(), len(text)):
            depth += text[i] == "("
            if text[i] == ")":
                depth -= 1
                if depth == 0:
                    break
        text = (text[: match.start()] + text[i + 1 :]).strip() or text
    text = text or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def create_session(model: str | bytes, providers: Providers = None,
                   external_data_dir: str | os.PathLike | None = None,
                   threads: ThreadPolicy | None = None) -> tuple[ort.InferenceSession, ProviderChoice]:
    """An ``InferenceSession`` for ``model`` (a path or serialised bytes) on the chosen provider.

    ``external_data_dir``: the folder external data of a model given as bytes resolves against
    (the model file's own folder; checking the locations is :mod:`runtime.modelfile`'s job).

    Exceptions from loading the *model* propagate unchanged (the caller turns them into
    :class:`~core.errors.ModelFileError`); provider trouble raises :class:`ProviderError` only
    when CUDA was explicitly required.
    """
    global _cuda_state
    mode = requested_mode(providers)
    folder = None if external_data_dir is None else os.fspath(external_data_dir)
    if isinstance(mode, list):
        session = ort.InferenceSession(model, session_options(external_data_dir=folder, threads=threads), providers=mode)
        return session, ProviderChoice(session.get_providers()[0], f"requested {mode}")
    if mode == "cpu":
        why = f"forced by {ENV_VAR}" if providers is None else "requested"
        return _cpu_session(model, folder, threads), ProviderChoice(CPU, why)

    if CUDA not in ort.get_available_providers():
        loaded, why = False, "this onnxruntime build has no CUDA provider"
    elif _cuda_state is not None and not _cuda_state[0]:
        loaded, why = _cuda_state
    else:
        loaded, why = _driver_present()
        if loaded:
            session, why, loaded = _try_cuda(model, folder, threads)
            if loaded:
                _cuda_state = (True, why)
                return session, ProviderChoice(CUDA, why if mode == "auto" else "required and loaded")
            if session is None:
                # ORT raised: if CPU raises too, it is the model's fault - nothing learnt about CUDA.
                session = _cpu_session(model, folder, threads)
            _cuda_state = (False, why)
            if mode == "auto":
                return session, ProviderChoice(CPU, why)
        else:
            _cuda_state = (False, why)
    if mode == "cuda":
        where = f"{ENV_VAR}=cuda" if providers is None else "provider 'cuda'"
        raise ProviderError(f"{where} was requested but CUDA is unavailable ({why})")
    return _cpu_session(model, folder, threads), ProviderChoice(CPU, why)


def _cpu_session(model: str | bytes, folder: str | None = None, threads: ThreadPolicy | None = None) -> ort.InferenceSession:
    return ort.InferenceSession(model, session_options(external_data_dir=folder, threads=threads), providers=[CPU])
