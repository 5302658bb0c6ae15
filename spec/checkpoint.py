"""The canonical checkpoint: a safetensors file in PyTorch names and layouts.

Layout: conv weights OIHW (OIDHW), transposed-conv weights IOHW, linear weights (out, in),
BatchNorm ``running_mean``/``running_var``. torch's ``num_batches_tracked`` counters are not
stored: they only matter for ``momentum=None`` BatchNorm, which no model here uses, and Keras
has nothing to map them to (so the torch -> Keras -> torch round trip stays bit-identical).

Metadata (all strings, as safetensors requires):

=================  ===============================================================
``format``         ``"age-checkpoint"``
``format_version`` :data:`spec.FORMAT_VERSION`
``model``          registry key, e.g. ``"conv_vae"``
``config``         the config's JSON (:meth:`BaseConfig.to_json`)
``framework``      ``"torch"`` or ``"keras"`` (who wrote it)
``step``           training step, an integer
=================  ===============================================================

Loading never unpickles and validates everything: the file exists, is a complete
safetensors file, carries our metadata, names a known model with a valid config, and (via
:func:`check_tensors`) holds exactly the expected tensor names and shapes.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from . import FORMAT_VERSION
from .configs import BaseConfig, config_from_json
from .errors import CheckpointError, ConfigError
from .files import atomic_write_bytes

FORMAT_NAME = "age-checkpoint"
FRAMEWORKS = ("torch", "keras")


@dataclass
class Checkpoint:
    path: Path
    model: str
    config: BaseConfig
    framework: str
    step: int
    tensors: dict[str, np.ndarray]


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> None:
    """Atomically write a safetensors file (used for checkpoints and optimizer state)."""
    from safetensors.numpy import save

    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    atomic_write_bytes(path, save(arrays, metadata={k: str(v) for k, v in metadata.items()}))


def save_checkpoint(
    path: str | os.PathLike,
    tensors: Mapping[str, np.ndarray],
    config: BaseConfig,
    framework: str,
    step: int = 0,
) -> Path:
    """Write a canonical checkpoint (torch names/layouts) with its metadata, atomically."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {FRAMEWORKS}, got {framework!r}")
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model": config.model,
        "config": config.to_json(),
        "framework": framework,
        "step": str(int(step)),
    }
    save_tensors(path, tensors, meta)
    return Path(path)


def read_safetensors(path: str | os.PathLike, what: str = "checkpoint") -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """(metadata, tensors) of a safetensors file, with a clear error for anything else."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{what} {path}: no such file")
    if not path.is_file():
        raise CheckpointError(f"{what} {path}: not a file")
    data = path.read_bytes()
    if len(data) < 8:
        raise CheckpointError(f"{what} {path}: not a safetensors file (only {len(data)} bytes)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > len(data) - 8:
        raise CheckpointError(
            f"{what} {path}: not a safetensors file or truncated (header says {header_len} bytes, "
            f"file has {len(data) - 8})"
        )
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{what} {path}: not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{what} {path}: not a safetensors file (header is not a JSON object)")
    end = 8 + header_len
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
            raise CheckpointError(f"{what} {path}: tensor {name!r} has no valid data_offsets")
        if end + offsets[1] > len(data):
            raise CheckpointError(
                f"{what} {path}: truncated: tensor {name!r} needs bytes up to {end + offsets[1]}, "
                f"file has {len(data)}"
            )
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{what} {path}: corrupt safetensors file ({exc})") from None
    meta = header.get("__metadata__") or {}
    return dict(meta), tensors


def load_checkpoint(path: str | os.PathLike, expected_model: str | None = None) -> Checkpoint:
    """Read and validate a canonical checkpoint's file and metadata (tensors: :func:`check_tensors`)."""
    path = Path(path)
    meta, tensors = read_safetensors(path)
    if meta.get("format") != FORMAT_NAME:
        raise CheckpointError(f"checkpoint {path}: not an A.G.E. checkpoint (metadata format={meta.get('format')!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path}: format version {meta.get('format_version')!r} is not supported "
            f"(this toolkit reads {FORMAT_VERSION!r})"
        )
    try:
        config = config_from_json(meta.get("config", ""), source=f"checkpoint {path}")
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None
    model = meta.get("model")
    if model != config.model:
        raise CheckpointError(f"checkpoint {path}: metadata model {model!r} does not match its config ({config.model!r})")
    if expected_model is not None and model != expected_model:
        raise CheckpointError(f"checkpoint {path}: holds model {model!r}, expected {expected_model!r}")
    framework = meta.get("framework", "")
    if framework not in FRAMEWORKS:
        raise CheckpointError(f"checkpoint {path}: unknown writer framework {framework!r}")
    try:
        step = int(meta.get("step", "0"))
    except ValueError:
        raise CheckpointError(f"checkpoint {path}: step {meta.get('step')!r} is not an integer") from None
    return Checkpoint(path, model, config, framework, step, tensors)


def check_tensors(
    source: str | os.PathLike,
    tensors: Mapping[str, np.ndarray],
    expected: Mapping[str, tuple[int, ...]],
) -> None:
    """Raise one :class:`CheckpointError` listing missing, unexpected and mis-shaped tensors."""
    problems = []
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing:
        problems.append(f"missing tensor(s) {missing}")
    if extra:
        problems.append(f"unexpected tensor(s) {extra}")
    for name in sorted(set(expected) & set(tensors)):
        if tuple(tensors[name].shape) != tuple(expected[name]):
            problems.append(f"tensor {name!r} has shape {tuple(tensors[name].shape)}, expected {tuple(expected[name])}")
    if problems:
        raise CheckpointError(f"checkpoint {source}: " + "; ".join(problems))
