"""A Triton Inference Server model repository from exported parts (``--triton REPO``).

Layout (Triton's model repository convention)::

    REPO/<name>_<part>/config.pbtxt
    REPO/<name>_<part>/1/model.onnx

``config.pbtxt`` is protobuf text of Triton's ``ModelConfig`` (model_config.proto): platform
``onnxruntime_onnx``, ``max_batch_size``, dynamic batching with a queue delay, the part's input
and output names, dims (without the batch axis, which ``max_batch_size > 0`` implies) and types,
and the ``age.*`` metadata as string parameters. The tests parse every file with the schema
shipped in ``tritonclient`` so a malformed config cannot pass.
"""

from __future__ import annotations

import re
from pathlib import Path

from core.errors import ExportError
from core.files import atomic_write_bytes, atomic_write_text
from core.registry import PartSpec, TensorSpec

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _quote(text: str) -> str:
    """A protobuf text-format string literal (UTF-8 passes through; quotes, backslashes and
    control characters are escaped)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _tensor(t: TensorSpec) -> str:
    dims = ", ".join(str(int(d)) for d in t.shape[1:])
    return f'  {{\n    name: {_quote(t.name)}\n    data_type: TYPE_FP32\n    dims: [ {dims} ]\n  }}'


def config_pbtxt(name: str, part: PartSpec, metadata: dict[str, str], max_batch_size: int,
                 max_queue_delay_us: int) -> str:
    if any(t.shape[0] != "batch" for t in (*part.inputs, *part.outputs)):
        raise ExportError(f"part {part.name!r}: Triton batching needs a leading batch axis on every tensor")
    params = "\n".join(
        f"parameters {{\n  key: {_quote(k)}\n  value: {{ string_value: {_quote(v)} }}\n}}"
        for k, v in sorted(metadata.items())
    )
    return "\n".join([
        f"name: {_quote(name)}",
        'platform: "onnxruntime_onnx"',
        f"max_batch_size: {int(max_batch_size)}",
        "input [\n" + ",\n".join(_tensor(t) for t in part.inputs) + "\n]",
        "output [\n" + ",\n".join(_tensor(t) for t in part.outputs) + "\n]",
        f"dynamic_batching {{\n  max_queue_delay_microseconds: {int(max_queue_delay_us)}\n}}",
        "instance_group [\n  {\n    kind: KIND_AUTO\n    count: 1\n  }\n]",
        params,
        "",
    ])


def check_options(name: str, max_batch_size: int, max_queue_delay_us: int) -> None:
    """Refuse bad options before anything is exported or written."""
    if not _NAME.match(name) or name in (".", ".."):
        raise ExportError(f"--triton-name {name!r}: use letters, digits, '_', '-', '.' only")
    if max_batch_size < 1:
        raise ExportError(f"--triton-max-batch must be >= 1, got {max_batch_size}")
    if max_queue_delay_us < 0:
        raise ExportError(f"--triton-delay-us must be >= 0, got {max_queue_delay_us}")


def write_repository(repo: str | Path, name: str, parts: dict[str, tuple[PartSpec, bytes, dict[str, str]]],
                     max_batch_size: int = 64, max_queue_delay_us: int = 5000) -> list[Path]:
    """Write ``REPO/<name>_<part>/{config.pbtxt,1/model.onnx}`` for every part; returns the configs."""
    check_options(name, max_batch_size, max_queue_delay_us)
    written = []
    for part_name, (part, blob, metadata) in parts.items():
        model_dir = Path(repo) / f"{name}_{part_name}"
        atomic_write_bytes(model_dir / "1" / "model.onnx", blob)
        config = model_dir / "config.pbtxt"
        atomic_write_text(config, config_pbtxt(model_dir.name, part, metadata, max_batch_size, max_queue_delay_us))
        written.append(config)
    return written
