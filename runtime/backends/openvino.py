"""The OpenVINO backend: the same checked ONNX bytes, compiled for the CPU by OpenVINO.

Optional (``pip install .[openvino]``); imported only when ``backend="openvino"`` is asked for.
What stays the same as with onnxruntime: the bytes it compiles are the ones
:func:`runtime.session.read_model` read and scanned (so the same refusals apply before OpenVINO
sees them), the ``age.*`` metadata is parsed by the session, and the graph's inputs and outputs are
checked against it. Differences, and why:

* **precision**: OpenVINO's CPU plugin computes in bf16 by default on CPUs that have it
  (AVX-512 BF16 or AMX), which moves outputs by ~1e-2. The runtime promises fp32 outputs within
  1e-4 of onnxruntime's, so it asks for f32 (``INFERENCE_PRECISION_HINT``) unless bf16 is chosen
  explicitly (``--precision auto`` measures it as a candidate, :mod:`runtime.precision`);
* **external data**: OpenVINO reads a model from memory without a folder to resolve a tensor's
  external file against, so a model with external data is refused on this backend (onnxruntime
  opens it);
* **threads**: a policy's ``intra_op`` becomes ``INFERENCE_NUM_THREADS``; OpenVINO has no
  spin-wait switch, so ``spin`` does not apply. One stream (``PERFORMANCE_HINT`` ``LATENCY``):
  the batcher already makes one call per batch.
* **CPU only**: no GPU here; CUDA stays onnxruntime's.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from core.errors import ModelFileError

from ..providers import ProviderChoice
from . import BackendError, GraphArg

try:
    import openvino as ov
except ImportError as exc:  # pragma: no cover - depends on the install
    raise BackendError("backend 'openvino' needs OpenVINO, which is not installed: pip install '.[openvino]' "
                       f"(age-toolkit[openvino]) ({exc})") from None

#: The one device this backend compiles for.
DEVICE = "CPU"
#: OpenVINO's names of the inference precisions the runtime may ask for.
INFERENCE_PRECISIONS = ("f32", "bf16")

_core: Any = None
_core_lock = threading.Lock()


def core() -> Any:
    """The process's ``openvino.Core`` (made once: it loads the device plugins)."""
    global _core
    with _core_lock:
        if _core is None:
            _core = ov.Core()
        return _core


def supports_bf16() -> bool:
    """Whether the CPU plugin can compute in bf16 here (``OPTIMIZATION_CAPABILITIES`` lists BF16)."""
    try:
        return "BF16" in core().get_property(DEVICE, "OPTIMIZATION_CAPABILITIES")
    except Exception:  # noqa: BLE001 - a plugin that cannot say is treated as one that cannot
        return False


def _type_name(element_type: Any) -> str:
    name = element_type.get_type_name()
    return {"f32": "tensor(float)", "f16": "tensor(float16)", "f64": "tensor(double)"}.get(name, f"tensor({name})")


def _graph_arg(port: Any, names: Sequence[str] = ()) -> GraphArg:
    """A port as the runtime's checks see it. OpenVINO may give a tensor several names (fusing
    ``Reshape(z) -> Reshape`` leaves the graph input named ``z`` and after the reshapes too): the one
    the metadata declares is reported where the port has it, else any."""
    shape = port.get_partial_shape()
    dims: tuple[int | str, ...] = ()
    if shape.rank.is_static:
        dims = tuple(d.get_length() if d.is_static else "?" for d in shape)
    declared = [n for n in names if n in port.get_names()]
    return GraphArg(declared[0] if declared else port.get_any_name(), _type_name(port.get_element_type()), dims)


class OpenVinoRunner:
    """A compiled model; each calling thread gets its own infer request (a request is not thread-safe)."""

    backend = "openvino"

    def __init__(self, compiled: Any, choice: ProviderChoice, names: Sequence[str] = ()):
        self.session = compiled
        self.choice = choice
        self._inputs = [_graph_arg(p, names) for p in compiled.inputs]
        self._outputs = [_graph_arg(p, names) for p in compiled.outputs]
        self._local = threading.local()

    def inputs(self) -> Sequence[GraphArg]:
        return self._inputs

    def outputs(self) -> Sequence[GraphArg]:
        return self._outputs

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.session.create_infer_request()
        result = request.infer({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in feeds.items()},
                               share_outputs=False)
        return [np.asarray(result[port]) for port in self.session.outputs]


def open_runner(path: Path, blob: bytes, options: Any, has_external_data: bool = False,
                names: Sequence[str] = ()) -> OpenVinoRunner:
    """Compile ``blob`` for the CPU (f32 unless ``options.inference_precision`` says bf16)."""
    if has_external_data:
        raise ModelFileError(f"{path}: keeps tensors in external data files, which backend 'openvino' cannot "
                             "open from the checked bytes; use backend 'onnxruntime'")
    precision = options.inference_precision or "f32"
    if precision not in INFERENCE_PRECISIONS:
        raise BackendError(f"openvino inference precision must be one of {', '.join(INFERENCE_PRECISIONS)}, "
                           f"got {precision!r}")
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
    policy = options.threads
    if policy is not None and policy.intra_op > 0:
        config["INFERENCE_NUM_THREADS"] = policy.intra_op
    ov_core = core()
    model = ov_core.read_model(model=blob)
    compiled = ov_core.compile_model(model, DEVICE, config)
    why = f"OpenVINO {ov.__version__.split('-')[0]}, inference precision {precision}"
    return OpenVinoRunner(compiled, ProviderChoice(f"openvino:{DEVICE}", why), names)
