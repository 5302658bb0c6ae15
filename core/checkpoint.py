"""The canonical checkpoint: a safetensors file in PyTorch names and layouts.

Layout: conv weights OIHW (OIDHW), transposed-conv weights IOHW, linear weights (out, in),
BatchNorm ``running_mean``/``running_var``. torch's ``num_batches_tracked`` counters are not
stored: they only matter for ``momentum=None`` BatchNorm, which no model here uses, and Keras
has nothing to map them to (so the torch -> Keras -> torch round trip stays bit-identical).

Metadata (all strings, as safetensors requires):

=================  ===============================================================
``format``         ``"age-checkpoint"``
``format_version`` :data:`core.FORMAT_VERSION`
``model``          registry key (``core/models/<name>.py``)
``config``         the config's JSON (:meth:`BaseConfig.to_json`)
``framework``      ``"torch"`` or ``"keras"`` (who wrote it)
``step``           training step, an integer
=================  ===============================================================

Loading never unpickles and validates everything: the file exists, is a complete
safetensors file whose header is consistent (offsets contiguous, sizes matching shapes), holds
float32 tensors (float16/bfloat16 are converted, logged; other dtypes are refused) with finite
values, carries our metadata with a non-negative integer step, names a known model with a valid
config inside the size budget of :mod:`core.configs`, and (via :func:`check_tensors`) holds
exactly the expected tensor names and shapes. Writing is deterministic: the same tensors and
metadata always give the same bytes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from . import FORMAT_VERSION
from .configs import BaseConfig, config_from_json
from .errors import CheckpointError, ConfigError
from .files import atomic_write_bytes
from .jsonio import loads as json_loads

log = logging.getLogger(__name__)

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


# --------------------------------------------------------------------------- the safetensors format
#
# Written and read here rather than through the ``safetensors`` package, for three reasons: the
# bytes must be deterministic (the package writes the metadata in hash-map order, so two identical
# runs wrote different files); every header field of an untrusted file must be validated before
# any array is made; and the runtime install should not need the package. The format
# (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N, N bytes of
# JSON ``{"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}}``
# padded with spaces, then the tensors' bytes, contiguous and in offset order.

#: safetensors dtype -> NumPy dtype, for the dtypes a file may hold
DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "F64": np.dtype("<f8"), "I64": np.dtype("<i8"),
          "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"), "U8": np.dtype("u1"),
          "BOOL": np.dtype("?"), "BF16": np.dtype("<u2")}
_NAMES = {np.dtype("float32"): "F32", np.dtype("int64"): "I64"}
#: What a model checkpoint may hold: float32, and half precision converted to it (logged).
CHECKPOINT_DTYPES = ("F32",)
CONVERTIBLE_DTYPES = ("F16", "BF16")
#: Optimizer state adds Keras' int64 ``iterations`` counter.
OPTIMIZER_DTYPES = ("F32", "I64")
MAX_TENSORS = 100_000
MAX_RANK = 8


def encode_safetensors(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    """Deterministic safetensors bytes: tensors by (8-byte dtypes first, name), keys sorted, no
    whitespace in the JSON, the header padded with spaces to a multiple of 8."""
    arrays = {}
    for name, value in tensors.items():
        array = np.asarray(value)  # (not ascontiguousarray: it turns 0-d into (1,); tobytes() is C order anyway)
        if array.dtype not in _NAMES:
            raise CheckpointError(f"tensor {name!r}: dtype {array.dtype} cannot be stored (float32 or int64 only)")
        arrays[name] = array
    header: dict[str, object] = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}}
    offset, chunks = 0, []
    for name in sorted(arrays, key=lambda n: (-arrays[n].dtype.itemsize, n)):
        data = arrays[name].astype(arrays[name].dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _NAMES[arrays[name].dtype], "shape": list(arrays[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        chunks.append(data)
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def require_finite(source: str, tensors: Mapping[str, np.ndarray]) -> None:
    """Raise :class:`CheckpointError` naming the first float tensor holding NaN or infinity."""
    for name in sorted(tensors):
        array = tensors[name]
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
            raise CheckpointError(f"{source}: tensor {name!r} holds {bad} NaN or infinite value(s)")


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> None:
    """Atomically write a safetensors file (checkpoints and optimizer state); refuses non-finite
    values, so a diverged run can never overwrite a good file with NaN weights."""
    require_finite(f"refusing to write {path}", tensors)
    atomic_write_bytes(path, encode_safetensors(tensors, metadata))


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


def _bfloat16_to_float32(raw: np.ndarray) -> np.ndarray:
    """bfloat16 is the top half of a float32: shift the 16 bits up."""
    return (raw.astype(np.uint32) << 16).view(np.float32)


def _tensor_entry(where: str, name: str, info: object, buffer_len: int, allowed: tuple[str, ...]):
    """(dtype name, shape, begin, end) of one header entry, every field checked."""
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise CheckpointError(f"{where}: tensor {name!r} has a malformed header entry")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if dtype not in DTYPES:
        raise CheckpointError(f"{where}: tensor {name!r} has unknown dtype {dtype!r}")
    if dtype not in allowed and dtype not in CONVERTIBLE_DTYPES:
        accepted = ", ".join(allowed + CONVERTIBLE_DTYPES)
        raise CheckpointError(f"{where}: tensor {name!r} is {dtype}; only {accepted} tensors are accepted")
    if not (isinstance(shape, list) and len(shape) <= MAX_RANK
            and all(type(d) is int and 0 <= d < 2**40 for d in shape)
            and math.prod(d for d in shape if d) < 2**40):  # (an empty tensor may not claim 2**120 slots)
        raise CheckpointError(f"{where}: tensor {name!r} has an invalid shape {str(shape)[:80]}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
            and 0 <= offsets[0] <= offsets[1]):
        raise CheckpointError(f"{where}: tensor {name!r} has invalid data_offsets {str(offsets)[:80]}")
    if offsets[1] > buffer_len:
        raise CheckpointError(f"{where}: truncated: tensor {name!r} needs data up to byte {offsets[1]}, "
                              f"the data section has {buffer_len}")
    size = int(np.prod(shape, dtype=object)) * DTYPES[dtype].itemsize
    if offsets[1] - offsets[0] != size:
        raise CheckpointError(f"{where}: tensor {name!r} declares shape {shape} ({size} bytes) but "
                              f"data_offsets cover {offsets[1] - offsets[0]} bytes")
    return dtype, tuple(shape), offsets[0], offsets[1]


def decode_safetensors(data: bytes, where: str, allowed: tuple[str, ...] = CHECKPOINT_DTYPES
                       ) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """(metadata, tensors) from safetensors bytes, validating the header before making any array.

    Tensors whose dtype is in ``allowed`` load as they are; float16 and bfloat16 are converted to
    float32 (logged once per file); anything else is refused, as are NaN/infinite values, naming
    the tensor. ``where`` starts every error message (e.g. ``"checkpoint run/c.safetensors"``).
    """
    if len(data) < 8:
        raise CheckpointError(f"{where}: not a safetensors file (only {len(data)} bytes)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > len(data) - 8:
        raise CheckpointError(f"{where}: not a safetensors file or truncated (header says {header_len} bytes, "
                              f"file has {len(data) - 8})")
    header = json_loads(data[8 : 8 + header_len], f"{where}: header", CheckpointError)
    if not isinstance(header, dict):
        raise CheckpointError(f"{where}: not a safetensors file (header is not a JSON object)")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise CheckpointError(f"{where}: __metadata__ must map strings to strings")
    if len(header) > MAX_TENSORS:
        raise CheckpointError(f"{where}: {len(header)} tensors exceeds the limit of {MAX_TENSORS}")
    buffer = memoryview(data)[8 + header_len :]
    entries = {name: _tensor_entry(where, name, info, len(buffer), allowed) for name, info in header.items()}
    position = 0
    for name, (_, _, begin, end) in sorted(entries.items(), key=lambda item: item[1][2:]):
        if begin != position:
            what = "overlaps another tensor" if begin < position else "leaves a gap before it"
            raise CheckpointError(f"{where}: tensor {name!r} {what} (data_offsets start at {begin}, expected {position})")
        position = end
    if position != len(buffer):
        raise CheckpointError(f"{where}: truncated or padded data section ({len(buffer)} bytes, tensors cover {position})")
    tensors, converted = {}, []
    for name, (dtype, shape, begin, end) in entries.items():
        array = np.frombuffer(buffer[begin:end], dtype=DTYPES[dtype]).reshape(shape)
        if dtype == "BF16":
            array = _bfloat16_to_float32(array)
        elif dtype == "F16":
            array = array.astype(np.float32)
        else:
            array = array.astype(DTYPES[dtype].newbyteorder("="), copy=True)
        if dtype in CONVERTIBLE_DTYPES:
            converted.append(name)
        tensors[name] = array
    if converted:
        log.warning("%s: converted %d half-precision tensor(s) to float32 (e.g. %r)", where, len(converted), converted[0])
    require_finite(where, tensors)
    return meta, tensors


def read_safetensors(path: str | os.PathLike, what: str = "checkpoint",
                     allowed: tuple[str, ...] = CHECKPOINT_DTYPES) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """(metadata, tensors) of a safetensors file, with a clear error for anything else."""
    path = Path(path)
    where = f"{what} {path}"
    if not path.exists():
        raise CheckpointError(f"{where}: no such file")
    if not path.is_file():
        raise CheckpointError(f"{where}: not a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{where}: cannot read ({exc.strerror or exc})") from None
    return decode_safetensors(data, where, allowed)


#: the largest step a checkpoint may record (int64, as TensorBoard and the optimizers count)
MAX_STEP = 2**63 - 1


def parse_step(where: str, text: object) -> int:
    """A step from file metadata: a decimal integer in [0, MAX_STEP]."""
    if not isinstance(text, str) or not text.isascii() or not text.isdigit() or int(text) > MAX_STEP:
        raise CheckpointError(f"{where}: step {str(text)[:40]!r} is not an integer between 0 and {MAX_STEP}")
    return int(text)


OPTIMIZER_FORMAT = "age-optimizer"


def save_optimizer_state(path: str | os.PathLike, tensors: Mapping[str, np.ndarray], framework: str, step: int,
                         layout: Mapping[str, object]) -> None:
    """A framework's optimizer state: its tensors, plus ``layout`` (JSON in the metadata key
    ``layout``) describing how they map onto the optimizers, keyed by optimizer name: torch's
    ``param_groups``, Keras' variable paths."""
    meta = {"format": OPTIMIZER_FORMAT, "framework": framework, "step": str(int(step)),
            "layout": json.dumps(layout, sort_keys=True, separators=(",", ":"))}
    save_tensors(path, tensors, meta)


@dataclass
class OptimizerState:
    path: Path
    step: int
    layout: dict[str, object]
    tensors: dict[str, np.ndarray]

    @property
    def where(self) -> str:
        return f"optimizer state {self.path}"


def read_optimizer_state(path: str | os.PathLike, framework: str, optimizers: Iterable[str]) -> OptimizerState:
    """Read and validate :func:`save_optimizer_state`'s file: float32/int64 finite tensors, our
    format, ``framework``'s, a valid step, and a layout JSON object with one entry per optimizer."""
    path = Path(path)
    where = f"optimizer state {path}"
    meta, tensors = read_safetensors(path, "optimizer state", OPTIMIZER_DTYPES)
    if meta.get("format") != OPTIMIZER_FORMAT:
        raise CheckpointError(f"{where}: not an A.G.E. optimizer state (metadata format={meta.get('format')!r})")
    if meta.get("framework") != framework:
        raise CheckpointError(f"{where}: written by {meta.get('framework')!r}, not {framework}")
    step = parse_step(where, meta.get("step"))
    if "layout" not in meta:
        raise CheckpointError(f"{where}: metadata 'layout' is missing")
    layout = json_loads(meta["layout"], f"{where}: layout", CheckpointError)
    names = sorted(optimizers)
    if not isinstance(layout, dict) or sorted(layout) != names:
        held = sorted(layout) if isinstance(layout, dict) else type(layout).__name__
        raise CheckpointError(f"{where}: holds optimizers {held}, this trainer has {names}")
    for name, array in tensors.items():
        if array.dtype.kind == "i" and (array < 0).any():
            raise CheckpointError(f"{where}: tensor {name!r} holds a negative counter")
    return OptimizerState(path, step, layout, tensors)


#: What an optimizer tensor must hold, by role (each framework maps its names onto these): counts
#: are whole numbers >= 0, Adam's second moments (squared gradients) >= 0, learning rates > 0.
OPTIMIZER_VALUE_RULES = {
    "count": (lambda a: bool(np.all(a >= 0) and np.all(a == np.floor(a))), "a whole number >= 0"),
    "second_moment": (lambda a: bool(np.all(a >= 0)), ">= 0"),
    "learning_rate": (lambda a: bool(np.all(a > 0)), "> 0"),
}


def check_optimizer_value(where: str, name: str, role: str, array: np.ndarray) -> None:
    """Refuse optimizer tensor ``name`` unless its values suit ``role`` (:data:`OPTIMIZER_VALUE_RULES`)."""
    ok, what = OPTIMIZER_VALUE_RULES[role]
    if not ok(np.asarray(array)):
        raise CheckpointError(f"{where}: tensor {name!r} must hold {what} (it is a {role.replace('_', ' ')})")


def check_adam_hyperparameters(where: str, lr: object, betas: object, eps: object) -> None:
    """Adam's numbers from a state file: lr > 0, both betas in [0, 1), eps > 0, all finite."""
    def number(v: object) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if not (number(lr) and lr > 0):
        raise CheckpointError(f"{where}: learning rate {lr!r} must be a finite number > 0")
    if not (isinstance(betas, (list, tuple)) and len(betas) == 2 and all(number(b) and 0 <= b < 1 for b in betas)):
        raise CheckpointError(f"{where}: betas {betas!r} must be two numbers in [0, 1)")
    if not (number(eps) and eps > 0):
        raise CheckpointError(f"{where}: eps {eps!r} must be a finite number > 0")


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
        config = config_from_json(meta.get("config"), source=f"checkpoint {path}")
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
    step = parse_step(f"checkpoint {path}", meta.get("step", "0"))
    for name in sorted(tensors):
        if name.endswith(".running_var") and (tensors[name] < 0).any():
            raise CheckpointError(f"checkpoint {path}: tensor {name!r} (a BatchNorm variance) holds negative values")
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
