"""Reduced-precision variants of an exported part: fp16 (for GPUs) and int8 (for CPUs).

Both keep float32 inputs and outputs, so the runtime and the server load a variant exactly like
the fp32 file (``<part>.fp16.onnx``, ``<part>.int8.onnx`` next to ``<part>.onnx``). Each variant
is measured against its fp32 source on the same inputs: PSNR over the first output, taking the
part's value range (or the reference's own range when unbounded) as the peak, plus the
onnxruntime CPU speed of both, timed interleaved in one process.

* fp16: every float initializer and activation in float16 (onnxconverter-common's converter,
  ``keep_io_types=True``), ops without fp16 kernels left in fp32 by that converter. Made from
  the graph optimised for GPUs (``export.optimize.optimize(..., portable=True)``: no Col2Im).
* int8: onnxruntime's static quantization in QDQ format, per-channel weights, calibrated on
  inputs drawn like the real ones (latents N(0, 1) from :mod:`core.noise`; images uniform).
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from core.errors import ExportError
from core.metrics.psnr import psnr
from core.registry import PRECISIONS, PartSpec

from .validation import cpu_session, random_feed

log = logging.getLogger("export.variants")

VARIANTS = tuple(p for p in PRECISIONS if p != "fp32")
#: variants meant for GPUs: made from the graph optimised without export.optimize.CPU_ONLY's passes.
GPU_VARIANTS = frozenset({"fp16"})


@dataclass
class VariantReport:
    part: str
    variant: str
    path: Path
    psnr_db: float
    max_abs_diff: float
    size_bytes: int
    fp32_ms: float
    variant_ms: float

    @property
    def speedup(self) -> float:
        return self.fp32_ms / self.variant_ms if self.variant_ms > 0 else float("nan")


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        from onnxconverter_common import float16
    except ImportError as exc:  # pragma: no cover - installed with the project
        raise ExportError("--fp16 needs onnxconverter-common (pip install onnxconverter-common)") from exc
    with warnings.catch_warnings(record=True) as caught:
        # it warns once per weight below fp16's smallest normal it clamps (to 1e-7): say it once
        warnings.simplefilter("always", UserWarning)
        converted = float16.convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    clamped = sum("truncated" in str(w.message) for w in caught)
    if clamped:
        log.info("fp16: %d weight value(s) below float16's range were clamped to +-1e-7 (the PSNR includes it)",
                 clamped)
    return converted


def to_int8(model: onnx.ModelProto, part: PartSpec, workdir: Path, seed: int = 0) -> onnx.ModelProto:
    """Static QDQ quantization (uint8 activations: asymmetric ranges suit ReLU/Sigmoid outputs,
    measured 41 dB vs 29 dB PSNR for int8 ones on conv_vae's decoder; int8 per-channel weights),
    calibrated on 8 batches of 16 representative inputs."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter([random_feed(part, 16, (seed, 7, i)) for i in range(8)])

        def get_next(self):
            return next(self.feeds, None)

    src, pre, dst = workdir / "fp32.onnx", workdir / "pre.onnx", workdir / "int8.onnx"
    onnx.save(model, src)
    try:
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=False)
    except Exception as exc:  # noqa: BLE001 - pre-processing is an optimisation; quantize without it
        log.debug("quant_pre_process failed (%s); quantizing the raw graph", exc)
        pre = src
    quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    quantized = onnx.load(dst)
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(model.metadata_props)  # keep the age.* metadata
    return quantized


def measure(part: PartSpec, fp32: bytes, variant: bytes, batch: int = 16, repeats: int = 5,
            seed: int = 1) -> tuple[float, float, float, float]:
    """(PSNR dB, max |diff|, fp32 ms per call, variant ms per call) on one held-out batch."""
    feed = random_feed(part, batch, (seed,))  # not one of the calibration batches
    a, b = cpu_session(fp32), cpu_session(variant)
    ref, got = a.run(None, feed)[0], b.run(None, feed)[0]
    times = {id(a): [], id(b): []}
    for _ in range(repeats):  # interleaved, so machine noise hits both alike
        for s in (a, b):
            t0 = time.perf_counter()
            s.run(None, feed)
            times[id(s)].append(time.perf_counter() - t0)
    ms = [1000.0 * float(np.median(times[id(s)])) for s in (a, b)]
    return psnr(ref, got, part.value_range), float(np.max(np.abs(ref - got))), ms[0], ms[1]


def make_variant(kind: str, model: onnx.ModelProto, fp32: bytes, part: PartSpec, path: Path,
                 workdir: Path) -> tuple[bytes, VariantReport]:
    """The ``kind`` variant of the fp32 ``model`` (``fp32``: its serialised bytes), checked and
    measured against it."""
    if kind == "fp16":
        converted = to_fp16(model)
    elif kind == "int8":
        converted = to_int8(model, part, workdir)
    else:
        raise ExportError(f"unknown variant {kind!r}; choose from {VARIANTS}")
    for prop in converted.metadata_props:
        if prop.key == "age.precision":
            prop.value = kind
            break
    else:
        converted.metadata_props.add(key="age.precision", value=kind)
    try:
        onnx.checker.check_model(converted)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"{path}: ONNX checker rejected the {kind} variant of {part.name!r}: {exc}") from exc
    blob = converted.SerializeToString()
    db, diff, fp32_ms, variant_ms = measure(part, fp32, blob)
    return blob, VariantReport(part.name, kind, path, db, diff, len(blob), fp32_ms, variant_ms)


def print_variant_table(reports: list[VariantReport]) -> None:
    header = f"{'part':<18} {'variant':<7} {'PSNR dB':>8} {'max |diff|':>11} {'size':>9} {'fp32 ms':>8} {'ms':>8} {'speed-up':>8}"
    lines = [header, "-" * len(header)]
    for r in reports:
        lines.append(f"{r.part:<18} {r.variant:<7} {r.psnr_db:>8.1f} {r.max_abs_diff:>11.3e} "
                     f"{r.size_bytes / 1e6:>7.2f}MB {r.fp32_ms:>8.2f} {r.variant_ms:>8.2f} {r.speedup:>7.2f}x")
    print("\n".join(lines), flush=True)
