"""Export a checkpoint to validated ONNX: the library behind ``python -m export.onnx``.

Reads a canonical checkpoint written by either framework, exports every part of the model
(:mod:`core.registry`) to ``DIR/<part>.onnx`` with a dynamic batch axis, runs the ONNX checker
(``full_check=True``), compares onnxruntime's outputs with the framework's on the same random
inputs (batch 3, while the export traced batch 2, so the dynamic axis is exercised), embeds
the metadata of :mod:`export.graph`, prints a table and raises :class:`ExportError` if any part
misses the tolerance. Files land only when every part passed (all or nothing).

Each part's graph is rewritten by :mod:`export.optimize` (BatchNorm and crop folding, the polyphase
decoder tail, ...) before that validation, unless ``optimize=False``.

Options beyond fp32: ``variants=("fp16", "int8")`` also write ``<part>.fp16.onnx`` /
``<part>.int8.onnx`` with their PSNR and CPU speed against fp32 (:mod:`export.variants`);
``triton=REPO`` also writes a Triton Inference Server model repository (:mod:`export.triton`).
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.checkpoint import load_checkpoint
from core.errors import ExportError, OutputError
from core.files import atomic_write_many
from core.registry import get_model_spec, part_filename

from .validation import ort_run, random_inputs
from .variants import GPU_VARIANTS

if TYPE_CHECKING:
    import onnx

log = logging.getLogger("export.pipeline")

DEFAULT_OPSET = 18
TOLERANCE = 1e-4
VIA = ("torch", "keras")


@dataclass
class PartReport:
    """One exported part: where it goes, how far onnxruntime was from the framework, and whether that passed."""

    part: str
    path: Path
    max_abs_diff: float
    size_bytes: int
    passed: bool


def export_checkpoint(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    via: str = "torch",
    opset: int = DEFAULT_OPSET,
    tolerance: float = TOLERANCE,
    variants: tuple[str, ...] = (),
    triton: str | os.PathLike | None = None,
    triton_name: str | None = None,
    triton_max_batch: int = 64,
    triton_delay_us: int = 5000,
    optimize: bool = True,
) -> list[PartReport]:
    """Export and validate every part; raises :class:`ExportError` if any part fails.

    ``variants`` ("fp16", "int8") are written next to each fp32 part with their PSNR reported;
    ``triton`` is a model repository directory to fill as well. ``optimize`` runs the graph
    rewrites of :mod:`export.optimize` on each part before it is checked and validated.
    """
    from .graph import embed_metadata, rename_io

    if via not in VIA:
        raise ExportError(f"--via must be one of {VIA}, got {via!r}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out {out_dir}: is a file, not a directory")
    ckpt = load_checkpoint(checkpoint)
    if triton is not None:
        from .triton import check_options

        check_options(triton_name or ckpt.model, triton_max_batch, triton_delay_us)
    backend = importlib.import_module(f"export.via_{via}")
    model = backend.load(ckpt)
    parts = get_model_spec(ckpt.model).parts(ckpt.config)
    reports, protos, blobs, gpu_protos, gpu_blobs = [], {}, {}, {}, {}
    for part in parts.values():
        log.info("exporting %s/%s via %s (opset %d)", ckpt.model, part.name, via, opset)
        try:
            proto = backend.export_part(model, part, opset)
        except Exception as exc:  # noqa: BLE001 - exporter internals raise anything
            raise ExportError(f"{checkpoint}: exporting part {part.name!r} via {via} failed: {exc}") from exc
        raw = rename_io(proto, part)
        what = f"{checkpoint}: part {part.name!r}"
        proto, target = optimize_part(raw, what) if optimize else (raw, None)
        inputs = random_inputs(part, batch=3)
        want = backend.run(model, part, inputs)
        proto = embed_metadata(proto, ckpt, part, via, target)
        blob, diff, shapes_ok = _checked(proto, part, inputs, want, what)
        protos[part.name], blobs[part.name] = proto, blob
        if optimize and (triton is not None or set(variants) & GPU_VARIANTS):
            # the GPU's graph: the rewrites onnxruntime has GPU kernels for (export.optimize.CPU_ONLY left out)
            gpu_proto, gpu_target = optimize_part(raw, what, portable=True)
            gpu_proto = embed_metadata(gpu_proto, ckpt, part, via, gpu_target)
            gpu_blob, gpu_diff, gpu_ok = _checked(gpu_proto, part, inputs, want, what)
            gpu_protos[part.name], gpu_blobs[part.name] = gpu_proto, gpu_blob
            diff, shapes_ok = max(diff, gpu_diff), shapes_ok and gpu_ok
        else:
            gpu_protos[part.name], gpu_blobs[part.name] = protos[part.name], blob
        reports.append(PartReport(part.name, out_dir / part_filename(part.name), diff, len(blob), shapes_ok and diff <= tolerance))
    print_table(reports, tolerance)
    failed = [r.part for r in reports if not r.passed]
    if failed:
        raise ExportError(f"{checkpoint}: part(s) {failed} differ from {via} by more than {tolerance:g}; nothing written")
    extra: dict[Path, bytes] = {}
    if variants:
        import tempfile

        from .variants import make_variant, print_variant_table

        variant_reports = []
        with tempfile.TemporaryDirectory(prefix="age-variant-") as tmp:
            for part in parts.values():
                for kind in variants:
                    log.info("making the %s variant of %s", kind, part.name)
                    path = out_dir / part_filename(part.name, kind)
                    try:
                        source, source_blob = ((gpu_protos, gpu_blobs) if kind in GPU_VARIANTS else (protos, blobs))
                        blob, report = make_variant(kind, source[part.name], source_blob[part.name], part, path, Path(tmp))
                    except ExportError:
                        raise
                    except Exception as exc:  # noqa: BLE001 - converter/quantizer internals
                        raise ExportError(f"{checkpoint}: the {kind} variant of {part.name!r} failed: {exc}") from exc
                    extra[path] = blob
                    variant_reports.append(report)
        print_variant_table(variant_reports)
    atomic_write_many({**{report.path: blobs[report.part] for report in reports}, **extra})
    if triton is not None:
        from .triton import write_repository

        name = triton_name or f"{ckpt.model}"
        metas = {p.name: {m.key: m.value for m in gpu_protos[p.name].metadata_props} for p in parts.values()}
        configs = write_repository(triton, name, {p.name: (p, gpu_blobs[p.name], metas[p.name]) for p in parts.values()},
                                   triton_max_batch, triton_delay_us)
        for config in configs:
            print(f"wrote {config}")
    return reports


def _checked(proto: onnx.ModelProto, part, inputs, want, what: str) -> tuple[bytes, float, bool]:
    """The ONNX checker on ``proto``, then onnxruntime on ``inputs`` against the framework's
    ``want``: (serialised bytes, max |difference|, whether every shape matched)."""
    import onnx

    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"{what}: ONNX checker rejected it: {exc}") from exc
    blob = proto.SerializeToString()
    got = ort_run(blob, {t.name: x for t, x in zip(part.inputs, inputs)})
    diff = max(float(np.max(np.abs(g - w))) for g, w in zip(got, want))
    return blob, diff, all(g.shape == w.shape for g, w in zip(got, want))


def optimize_part(proto: onnx.ModelProto, what: str, portable: bool = False) -> tuple[onnx.ModelProto, str | None]:
    """:func:`export.optimize.optimize` on one part, its passes logged, and what the result is tuned
    for (:func:`export.optimize.optimized_for`); a pass that raises is an :class:`ExportError`
    naming the part (``--no-optimize`` exports without the rewrites). ``portable``: without the
    passes whose ops onnxruntime runs on the CPU only."""
    from .optimize import describe, optimize, optimized_for

    try:
        proto, passes = optimize(proto, portable=portable)
    except Exception as exc:  # noqa: BLE001 - a bug in a pass must not pass silently
        raise ExportError(f"{what}: graph optimisation failed ({exc}); export with --no-optimize") from exc
    log.info("optimised%s: %s", " for GPUs" if portable else "", describe(passes))
    return proto, optimized_for(passes)


def print_table(reports: list[PartReport], tolerance: float) -> None:
    header = f"{'part':<20} {'max |diff|':>12} {'size':>12}  status"
    lines = [header, "-" * len(header)]
    for r in reports:
        status = "ok" if r.passed else f"FAIL (> {tolerance:g})"
        lines.append(f"{r.part:<20} {r.max_abs_diff:>12.3e} {r.size_bytes / 1e6:>10.2f}MB  {status}")
    print("\n".join(lines), flush=True)
