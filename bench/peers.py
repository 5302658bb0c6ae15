"""The ways ``bench/runtime.py`` runs one generator: the runtime's paths and its peers'.

Every path is a callable ``z (N, *latent shape) float32 -> NumPy output`` (canonical layout, except
``k tf.fn``'s, which :func:`bench.common.check_outputs` converts), built by :func:`build_paths` from
the export folders and the two framework models. A path that cannot be built here (OpenVINO not
installed, no C++ compiler for torch.compile) is left out with the reason, which the report prints.

Runtime (what ``runtime.load`` serves; ``runtime`` group):

``ort``            ``runtime.load(dir, providers="cpu").decode``: the default export (optimised graph,
                   :mod:`export.optimize`) at the runtime's default settings;
``ort raw``        the same checkpoint exported with ``--no-optimize`` (what the graph rewrites gain);
``rt openvino``    ``runtime.load(dir, backend="openvino")``: the runtime's OpenVINO backend, fp32.

fp32 peers on the same model (``peer`` group):

``torch``          eager, ``no_grad``, NCHW (how the trainer's model runs);
``torch cl``       ``inference_mode`` + ``channels_last`` weights (``channels_last_3d`` for 5-D ones, as
                   the trainer's ``--memory-format channels_last``);
``torch.compile``  ``torch.compile`` of the part's method (inductor, static shapes: compiled per
                   batch size during the warm-up round), ``inference_mode``;
``k tf.fn`` / ``k eager``  Keras: the method in one ``tf.function`` / ``keras_impl.parts.run_part``;
``openvino``       OpenVINO's CPU plugin on the *unoptimised* ONNX file, inference precision f32.

Reduced precision (``reduced`` group; PSNR against ``torch``'s fp32 output is reported next to them):

``ort int8``       ``runtime.load(dir, precision="int8")`` (static QDQ int8 file of ``--int8``);
``rt auto``        ``runtime.load(dir, precision="auto")``: what the runtime picks on this CPU;
``rt ov auto``     ``runtime.load(dir, backend="openvino", precision="auto")``: the same on the
                   OpenVINO backend, where bf16 is a candidate when the CPU has it;
``openvino default`` OpenVINO's CPU plugin at its own default precision (bf16 where the CPU has
                   bf16 arithmetic: AMX or AVX-512 BF16; else f32).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

log = logging.getLogger("bench.peers")

Fn = Callable[[np.ndarray], np.ndarray]

#: label -> group, in the order the report prints them
PATHS: dict[str, str] = {
    "ort": "runtime", "ort raw": "runtime", "rt openvino": "runtime",
    "torch": "peer", "torch cl": "peer", "torch.compile": "peer", "k tf.fn": "peer", "k eager": "peer",
    "openvino": "peer",
    "ort int8": "reduced", "rt auto": "reduced", "rt ov auto": "reduced", "openvino default": "reduced",
}
#: what ``--paths`` selects by default (``k eager`` is slow and says little)
DEFAULT_PATHS = tuple(p for p in PATHS if p != "k eager")


@dataclass
class Paths:
    fns: dict[str, Fn] = field(default_factory=dict)
    #: label -> why it is missing
    missing: dict[str, str] = field(default_factory=dict)
    #: label -> what it really ran (a precision picked by the runtime, OpenVINO's default precision)
    notes: dict[str, str] = field(default_factory=dict)


def _runtime_path(folder: Path, **kwargs) -> tuple[Fn, object]:
    import runtime

    session = runtime.load(folder, providers="cpu", **kwargs)
    return (lambda z: session.decode(z, batch_size=len(z))), session


def _openvino_path(onnx_file: Path, precision: str | None) -> tuple[Fn, str]:
    import openvino as ov

    core = ov.Core()
    config = {"PERFORMANCE_HINT": "LATENCY"}
    if precision is not None:
        config["INFERENCE_PRECISION_HINT"] = precision
    compiled = core.compile_model(core.read_model(str(onnx_file)), "CPU", config)
    request = compiled.create_infer_request()
    used = str(compiled.get_property("INFERENCE_PRECISION_HINT"))

    def run(z):
        return np.array(request.infer({0: z})[0], copy=True)

    return run, used


def _torch_paths(tmodel, method: str, wanted: set[str], paths: Paths) -> None:
    import copy

    import torch

    if "torch cl" in wanted:
        from torch_impl.train import to_memory_format  # 4-D weights channels_last, 5-D channels_last_3d

        cl_model = to_memory_format(copy.deepcopy(tmodel).eval(), "channels_last")
        cl_method = getattr(cl_model, method)

        def channels_last(z):
            with torch.inference_mode():
                return cl_method(torch.from_numpy(z)).contiguous().numpy()

        paths.fns["torch cl"] = channels_last
    if "torch.compile" in wanted:
        if shutil.which("g++") is None and shutil.which("c++") is None:
            paths.missing["torch.compile"] = "no C++ compiler for inductor"
            return
        compiled = torch.compile(getattr(tmodel, method), dynamic=False)

        def compiled_fn(z):
            with torch.inference_mode():
                return compiled(torch.from_numpy(z)).numpy()

        paths.fns["torch.compile"] = compiled_fn


def build_paths(wanted: set[str], folders: dict[str, Path], tmodel, kmodel, part: str, base_fns: dict[str, Fn]) -> Paths:
    """The wanted paths that can run here. ``folders``: ``onnx`` (default export, with the int8 files),
    ``raw`` (``--no-optimize`` export); ``base_fns``: :func:`bench.common.generator_fns`' ``ort``,
    ``torch`` and Keras callables, reused as they are."""
    from core.registry import get_model_spec

    paths = Paths()
    for label in ("ort", "torch", "k tf.fn", "k eager"):
        if label in wanted and label in base_fns:
            paths.fns[label] = base_fns[label]
    method = get_model_spec(tmodel.config.model).parts(tmodel.config)[part].method
    if "ort raw" in wanted:
        paths.fns["ort raw"] = _runtime_path(folders["raw"])[0]
    if "ort int8" in wanted:
        paths.fns["ort int8"] = _runtime_path(folders["onnx"], precision="int8")[0]
    _torch_paths(tmodel, method, wanted, paths)
    for label, kwargs in (("rt openvino", {"backend": "openvino"}), ("rt auto", {"precision": "auto"}),
                          ("rt ov auto", {"backend": "openvino", "precision": "auto"})):
        if label not in wanted:
            continue
        try:
            fn, session = _runtime_path(folders["onnx"], **kwargs)
        except (TypeError, ValueError, ImportError) as exc:
            paths.missing[label] = f"runtime.load({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}): {exc}"
            continue
        except Exception as exc:  # noqa: BLE001 - a backend's own errors (no OpenVINO, ...)
            paths.missing[label] = f"{type(exc).__name__}: {str(exc)[:160]}"
            continue
        paths.fns[label] = fn
        described = [f"{key} {getattr(session, key)}" for key in ("backend", "precision", "inference_precision")
                     if getattr(session, key, None) is not None]
        if described:
            paths.notes[label] = ", ".join(described)
    raw_file = next(iter(sorted(folders["raw"].glob(f"{part}.onnx"))), None)
    for label, precision in (("openvino", "f32"), ("openvino default", None)):
        if label not in wanted:
            continue
        try:
            fn, used = _openvino_path(raw_file, precision)
        except ImportError:
            paths.missing[label] = "openvino is not installed (pip install .[openvino])"
            continue
        paths.fns[label] = fn
        paths.notes[label] = f"inference precision {used}"
    for label in wanted - set(paths.fns) - set(paths.missing):
        paths.missing[label] = "not available for this model"
    return paths
