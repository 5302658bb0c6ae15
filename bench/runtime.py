"""Generator throughput of the runtime against its peers on the same model, with GFLOP/s and CPU cost.

    python bench/runtime.py [--models MODEL:tiny+seed,MODEL/VARIANT] [--presets tiny]
                            [--batches 1,64] [--paths ort,ort raw,torch,...] [--repeats 7] [--warmup 1]
                            [--seconds 60] [--threads N] [--out-json PATH]

A target is ``MODEL[/VARIANT][:PRESET[+PRESET...]]``, e.g. ``NAME:tiny+seed`` or
``NAME/VARIANT:tiny``. ``VARIANT`` is a name from the model's ``ModelSpec.variants`` (config
overrides, such as one ParamTanh mode); ``MODEL`` alone (or ``MODEL/*``) is
every variant, as in ``bench/train.py``. An entry without presets gets every ``--presets``
preset (default tiny). The default ``--models`` is every registered model at its first variant
(``MODEL/FIRST``, read from the registry): nothing here names a model.

For each target a torch model is built with core's initial weights (``torch_impl.init.initialize(model,
--seed)``), saved with ``torch_impl.save_model`` and exported twice with
``export.pipeline.export_checkpoint(ckpt, dir, "torch")``: as shipped (the graph rewrites of
:mod:`export.optimize` on, plus the ``--int8`` files when an int8 path is timed) and with
``optimize=False``. Its generator part (:func:`core.registry.sample_part`) is then timed, on the same
latents, along every path of :mod:`bench.peers` (``--paths``): the runtime (``ort``, ``ort raw``,
``rt openvino``), its fp32 peers (torch eager, torch ``inference_mode`` + channels_last,
``torch.compile``, Keras ``tf.function``, OpenVINO) and the reduced-precision paths (``ort int8``,
``rt auto``, OpenVINO at its default precision), whose PSNR against torch's fp32 output is printed.

Measurements are interleaved round-robin (the order rotating every round) so machine noise hits
every path alike; a warm-up round calibrates how many calls one sample holds (at least
``--min-sample-ms``; it also absorbs torch.compile's compilation); each number is the median over
the timed rounds, and a cell stops early (after at least 3 rounds) once it has used its share of
the ``--seconds`` budget. Each sample also records this process's CPU time (all threads), which
gives images per CPU-second, and :class:`bench.common.CpuMeter` reports the CPU other processes took.

Achieved GFLOP/s: the generator's FLOPs are counted from the *unoptimised* ONNX graph
(:func:`count_flops`: shape inference at the concrete batch, then 2 x MACs of Conv, ConvTranspose,
Gemm, MatMul and Einsum), so a rewritten graph's extra zero taps earn nothing, times calls/s. This
machine's fp32 peak is measured in the same run (best of several 2048 x 2048 sgemms, torch and
NumPy, at the same thread count, before and after the timings) and every GFLOP/s is reported as a
share of it. The CPU model and its ISA flags (AVX-512, VNNI, BF16, AMX) head the environment line,
so numbers from different machines can be read.

Throughput counts images; a video generator's sample counts as its frames (``session.frames``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import (  # noqa: E402
    KERAS_PATHS, MIN_ROUNDS, CpuMeter, check_outputs, cpu_count, cpu_isa, framework_environment, generator_fns,
    interleave, part_latents, prepare_frameworks, report_footer, setup_logging, write_json,
)
from bench.peers import DEFAULT_PATHS, PATHS, build_paths  # noqa: E402

prepare_frameworks(spin_off=False)  # before TensorFlow; the runtime at its own thread defaults (see --settle-ms)

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402

import keras_impl  # noqa: E402  (imports TensorFlow + Keras)
import runtime  # noqa: E402
import torch_impl  # noqa: E402
from core.registry import MODELS, get_model_spec, sample_part  # noqa: E402
from export.pipeline import export_checkpoint  # noqa: E402
from torch_impl.init import initialize  # noqa: E402

log = logging.getLogger("bench.runtime")

#: the paths that need the ``--int8`` files of the export
INT8_PATHS = {"ort int8", "rt auto", "rt ov auto"}


def openvino_version() -> str:
    try:
        import openvino

        return openvino.__version__
    except ImportError:
        return "not installed"


#: every registered model at its first variant
DEFAULT_MODELS = ",".join(f"{name}/{next(iter(spec.variants))}" for name, spec in sorted(MODELS.items()))


# --------------------------------------------------------------------------- machine


def _ort_matmul(n: int, threads: int):
    """An onnxruntime session of one n x n MatMul (MLAS, the kernels the runtime's graphs run on)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "sgemm",
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in "ab"],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def sgemm_peak(n: int = 2048, tries: int = 5, threads: int | None = None) -> dict[str, float]:
    """Best-of-``tries`` fp32 GFLOP/s of an n x n x n matrix product through torch (MKL / oneDNN),
    NumPy (its BLAS) and onnxruntime (MLAS), one warm-up each, at ``threads`` (default: all CPUs).
    The best of the three is the machine's peak the report divides by: on an AMD CPU MKL may not
    take its AVX-512 path, and a peak from it alone would flatter every share."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    session = _ort_matmul(n, threads or cpu_count())
    flops = 2.0 * n**3
    best: dict[str, float] = {}
    for name, fn in (("torch", lambda: torch.mm(ta, tb)), ("numpy", lambda: a @ b),
                     ("onnxruntime", lambda: session.run(None, {"a": a, "b": b}))):
        fn()
        times = []
        for _ in range(tries):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        best[name] = flops / min(times) / 1e9
    return best


# --------------------------------------------------------------------------- FLOP counting


@dataclass
class FlopCount:
    """What :func:`count_flops` found: total FLOPs at ``batch`` and the share of each op type."""

    batch: int
    flops: int
    by_op: dict[str, int] = field(default_factory=dict)
    nodes: dict[str, int] = field(default_factory=dict)
    #: op types present in the graph that were *not* counted (elementwise, reshapes, ...)
    uncounted: dict[str, int] = field(default_factory=dict)

    @property
    def per_sample(self) -> float:
        return self.flops / self.batch


def _pin_batch(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    """A copy whose graph inputs/outputs have a concrete leading axis and no stale value_info."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    for vi in [*graph.input, *graph.output]:
        if vi.name in initializers or not vi.type.tensor_type.HasField("shape"):
            continue
        dims = vi.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = batch
    del graph.value_info[:]  # symbolic ("batch", "s0", ...) shapes from the exporter: re-infer concretely
    return model


def _shape_table(model: onnx.ModelProto) -> dict[str, tuple[int, ...] | None]:
    """name -> concrete shape (None where any dimension is unknown) for every tensor with a type."""
    graph = model.graph
    table: dict[str, tuple[int, ...] | None] = {t.name: tuple(int(d) for d in t.dims) for t in graph.initializer}
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            table.setdefault(vi.name, None)
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        table[vi.name] = None if any(d is None for d in dims) else tuple(int(d) for d in dims)
    return table


def _einsum_macs(equation: str, shapes: list[tuple[int, ...]]) -> int:
    """Naive MACs of an explicit-letter einsum: product of every distinct index's size, times (operands - 1)."""
    lhs = equation.replace(" ", "").split("->")[0]
    terms = lhs.split(",")
    if "..." in lhs or len(terms) != len(shapes):
        raise ValueError(f"einsum {equation!r}: ellipsis or operand count not supported by the counter")
    sizes: dict[str, int] = {}
    for term, shape in zip(terms, shapes):
        if len(term) != len(shape):
            raise ValueError(f"einsum {equation!r}: term {term!r} does not match shape {shape}")
        for letter, size in zip(term, shape):
            sizes[letter] = max(sizes.get(letter, 1), size)  # broadcasting: the larger one
    return math.prod(sizes.values()) * max(1, len(terms) - 1)


def count_flops(model: onnx.ModelProto | str | os.PathLike, batch: int = 1) -> FlopCount:
    """FLOPs of one run of an ONNX graph at a concrete ``batch`` (2 FLOPs per multiply-accumulate).

    The graph's leading (batch) axis is pinned to ``batch``, the exporter's symbolic value_info is
    dropped and :func:`onnx.shape_inference.infer_shapes` (``strict_mode``, ``data_prop`` so that
    Reshape targets resolve) gives every tensor a concrete shape. Then, per node:

    * ``Conv``           MACs = numel(Y) x (C_in / group) x prod(kernel)  = numel(Y) x prod(W.shape[1:])
    * ``ConvTranspose``  MACs = numel(X) x (C_out / group) x prod(kernel) = numel(X) x prod(W.shape[1:])
                         (every input pixel is scattered through the whole kernel; taps that land in
                         the cropped padding are counted too, as every FLOP counter does)
    * ``Gemm``           MACs = M x N x K = numel(Y) x K, K = A.shape[1] (A.shape[0] with ``transA``)
    * ``MatMul``         MACs = numel(Y) x K, K = A.shape[-1] (batched and broadcast alike)
    * ``Einsum``         MACs = product of the distinct indices' sizes (x (operands - 1)), no ellipsis

    Biases, BatchNorm (the torch exporter folds it into the convolutions anyway), activations,
    reshapes and other elementwise ops are not counted: they are memory-bound and small next to the
    above. They are listed in :attr:`FlopCount.uncounted`. Nodes in subgraphs (If/Loop) are not
    visited; a counted node whose shapes stay unknown raises ``ValueError``.
    """
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    inferred = onnx.shape_inference.infer_shapes(_pin_batch(model, batch), check_type=True, strict_mode=True,
                                                 data_prop=True)
    shapes = _shape_table(inferred)
    result = FlopCount(batch=batch, flops=0)

    def shape(name: str, node: onnx.NodeProto) -> tuple[int, ...]:
        s = shapes.get(name)
        if s is None:
            raise ValueError(f"count_flops: no concrete shape for {name!r} (input of {node.op_type} {node.name!r})")
        return s

    for node in inferred.graph.node:
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            result.uncounted[f"{node.domain}.{op}"] = result.uncounted.get(f"{node.domain}.{op}", 0) + 1
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if op == "Conv":
            macs = math.prod(shape(node.output[0], node)) * math.prod(shape(node.input[1], node)[1:])
        elif op == "ConvTranspose":
            macs = math.prod(shape(node.input[0], node)) * math.prod(shape(node.input[1], node)[1:])
        elif op == "Gemm":
            a = shape(node.input[0], node)
            k = a[0] if attrs.get("transA", 0) else a[1]
            macs = math.prod(shape(node.output[0], node)) * k
        elif op == "MatMul":
            a = shape(node.input[0], node)
            macs = math.prod(shape(node.output[0], node)) * a[-1]
        elif op == "Einsum":
            eq = attrs["equation"]
            macs = _einsum_macs(eq.decode() if isinstance(eq, bytes) else eq, [shape(i, node) for i in node.input])
        else:
            result.uncounted[op] = result.uncounted.get(op, 0) + 1
            continue
        result.flops += 2 * macs
        result.by_op[op] = result.by_op.get(op, 0) + 2 * macs
        result.nodes[op] = result.nodes.get(op, 0) + 1
    return result


# --------------------------------------------------------------------------- models


@dataclass
class Target:
    model: str
    variant: str
    preset: str
    overrides: dict[str, Any]

    @property
    def label(self) -> str:
        """``model:preset``, or ``model/variant:preset`` for a model with more than one variant."""
        variant = "" if len(get_model_spec(self.model).variants) == 1 else f"/{self.variant}"
        return f"{self.model}{variant}:{self.preset}"

    def config(self):
        return get_model_spec(self.model).config_cls.preset(self.preset, **self.overrides)


def parse_targets(models: str, presets: str) -> list[Target]:
    """``A:tiny+seed,B`` x ``tiny`` -> A:tiny, A:seed and every variant of B at tiny;
    ``MODEL/VARIANT`` is one variant."""
    default_presets = [p.strip() for p in presets.split(",") if p.strip()]
    targets = []
    for entry in (e.strip() for e in models.split(",") if e.strip()):
        head, _, only = entry.partition(":")
        name, _, variant = head.partition("/")
        if name not in MODELS:
            raise ValueError(f"--models: unknown model {name!r}; known: {sorted(MODELS)}")
        spec = get_model_spec(name)
        if variant in ("", "*"):
            variants = list(spec.variants)
        else:
            if variant not in spec.variants:
                raise ValueError(f"--models: {name} has no variant {variant!r}; choose from {list(spec.variants)} or *")
            variants = [variant]
        wanted = [p for p in only.split("+") if p] if only else default_presets
        known = spec.config_cls.presets
        for v in variants:
            for preset in wanted:
                if preset not in known:
                    raise ValueError(f"--models/--presets: {name} has no preset {preset!r}; choose from {sorted(known)}")
                target = Target(name, v, preset, dict(spec.variants[v]))
                target.config()  # validates
                targets.append(target)
    if not targets:
        raise ValueError("--models/--presets select nothing")
    return targets


# --------------------------------------------------------------------------- one model


def _psnr(reference: np.ndarray, candidate: np.ndarray, value_range) -> float:
    from core.metrics.psnr import psnr

    return psnr(reference, candidate, value_range)


def bench_target(target: Target, opts: argparse.Namespace, workdir: Path, budget_s: float) -> dict:
    meter = CpuMeter()
    tmodel = initialize(torch_impl.build(target.model, config=target.config()), opts.seed).eval()
    config = tmodel.config
    part = sample_part(config)
    folder = workdir / f"{target.model}_{target.variant}_{target.preset}"
    wanted = set(opts.path_list)
    t0 = time.perf_counter()
    ckpt = torch_impl.save_model(tmodel, folder / "ckpt.safetensors")
    with contextlib.redirect_stdout(io.StringIO()):  # the exports print their own tables
        reports = export_checkpoint(ckpt, folder / "onnx", "torch", variants=("int8",) if wanted & INT8_PATHS else ())
        export_checkpoint(ckpt, folder / "raw", "torch", optimize=False)
    export_s = time.perf_counter() - t0
    log.info("%s: exported %s via torch (optimised and raw) in %.1fs", target.label, [r.part for r in reports], export_s)
    session = runtime.load(folder / "onnx", providers="cpu")
    kmodel = keras_impl.load_model(ckpt)
    keras_paths = [k for k, label in KERAS_PATHS.items() if label in wanted]
    base = generator_fns(tmodel, kmodel, session, part, keras_paths)
    paths = build_paths(wanted, {"onnx": folder / "onnx", "raw": folder / "raw"}, tmodel, kmodel, part, base)
    fns = {label: paths.fns[label] for label in PATHS if label in paths.fns}
    exact = {label: fn for label, fn in fns.items() if PATHS[label] != "reduced"}
    diffs = check_outputs({"torch": base["torch"], **exact}, config, part)
    z_check = part_latents(config, part, 4, 0)
    reference = base["torch"](z_check)
    value_range = get_model_spec(config.model).parts(config)[part].value_range
    psnr = {label: _psnr(reference, fn(z_check), value_range) for label, fn in fns.items() if PATHS[label] == "reduced"}
    raw_model = onnx.load(str(folder / "raw" / session.path.name))
    per_img = session.frames or 1
    result = {
        "target": target.label, "model": target.model, "variant": target.variant, "preset": target.preset,
        "overrides": target.overrides,
        "part": part, "onnx": str(session.path.name), "ort_provider": session.provider, "export_s": export_s,
        "export_max_abs_diff": {r.part: r.max_abs_diff for r in reports}, "max_abs_diff_vs_torch": diffs,
        "psnr_vs_torch_db": psnr, "missing_paths": paths.missing, "path_notes": paths.notes,
        "images_per_sample": per_img, "output_shape": list(session.output_shape), "cells": [],
    }
    first = count_flops(raw_model, 1)  # the model's arithmetic: the rewritten graph's zero taps do not count
    result["flops_per_sample"] = first.flops
    result["flops_by_op"] = first.by_op
    result["flop_nodes"] = first.nodes
    result["uncounted_ops"] = first.uncounted
    for batch in opts.batch_list:
        flops = count_flops(raw_model, batch)
        if flops.flops != batch * first.flops:
            log.warning("%s: FLOPs at batch %d are %d, not %d x batch 1", target.label, batch, flops.flops, batch)
        z = part_latents(config, part, batch, 1)
        log.info("%s: batch %d (%.3f GFLOP per call; %s)", target.label, batch, flops.flops / 1e9, ", ".join(fns))
        for fn in fns.values():  # untimed: torch.compile compiles for this batch size here
            fn(z)
        cell = interleave(fns, z, opts.repeats, opts.warmup, opts.min_sample_ms / 1e3, budget_s,
                          settle_s=opts.settle_ms / 1e3)
        cell["batch"] = batch
        cell["flops_per_call"] = flops.flops
        cell["images_per_s"] = {n: batch * per_img / s for n, s in cell["s_per_call"].items()}
        cell["images_per_cpu_s"] = {n: batch * per_img / s for n, s in cell["cpu_s_per_call"].items() if s > 0}
        cell["gflops"] = {n: flops.flops / s / 1e9 for n, s in cell["s_per_call"].items()}
        result["cells"].append(cell)
    del fns, exact, paths, base, tmodel, kmodel, session
    gc.collect()
    result["others_cpu_share"] = meter.others()
    return result


# --------------------------------------------------------------------------- report


def _best(values: dict[str, float], labels) -> tuple[str | None, float]:
    present = [(values[n], n) for n in labels if n in values]
    if not present:
        return None, float("nan")
    value, name = max(present)
    return name, value


def _path_table(results: list[dict], names: list[str], width: int, lead_header: str,
                lead: Any, values: Any) -> list[str]:
    """A header and one row per (model, batch): ``lead(res, cell)`` after the batch, then
    ``values(res, cell)[path]`` under each path of ``names`` ("-" where a path did not run)."""
    header = f"{'model':<22} {'batch':>5} {lead_header}" + "".join(f" {n:>{width}}" for n in names)
    rows = [header, "-" * len(header)]
    for res in results:
        for cell in res["cells"]:
            shown = values(res, cell)
            rows.append(f"{res['target']:<22} {cell['batch']:>5} {lead(res, cell)}"
                        + "".join(f" {shown.get(n, '-'):>{width}}" for n in names))
    return rows


def print_report(results: list[dict], opts: argparse.Namespace, env: dict, peak: dict, wall_s: float) -> None:
    names = [n for n in PATHS if any(n in c["images_per_s"] for r in results for c in r["cells"])]
    peers = [n for n in names if PATHS[n] == "peer"]
    reduced_runtime = [n for n in names if PATHS[n] == "reduced" and not n.startswith("openvino")]
    from runtime.precision import MIN_PSNR_DB
    peak_best = max(peak.values())
    width = max(10, *(len(n) for n in names))
    out = [f"\nGenerator throughput, images/s (a video's frames counted; median of up to {opts.repeats} interleaved "
           f"rounds after {opts.warmup} warm-up; paths: bench/peers.py)"]
    out += _path_table(results, names, width, f"{'MFLOP/img':>10}",
                       lambda res, cell: f"{res['flops_per_sample'] / res['images_per_sample'] / 1e6:>10.1f}",
                       lambda res, cell: {n: f"{v:.1f}" for n, v in cell["images_per_s"].items()})

    out.append("\nThe runtime against its peers (ratios of images/s in the same interleaved cell; > 1: the runtime is faster; "
               "reduced-precision paths count only at PSNR >= 40 dB against torch's fp32)")
    header = (f"{'model':<22} {'batch':>5} {'ort/raw':>8} {'ort / best fp32 peer':>28} {'best reduced runtime path':>30} "
              f"{'/ openvino default':>18} {'ort % peak':>10}")
    out += [header, "-" * len(header)]
    for res in results:
        for cell in res["cells"]:
            ips = cell["images_per_s"]
            peer, peer_v = _best(ips, peers)
            good = [n for n in reduced_runtime if res["psnr_vs_torch_db"].get(n, 0.0) >= MIN_PSNR_DB]
            red, red_v = _best(ips, good)
            raw = f"{ips['ort'] / ips['ort raw']:>8.2f}" if "ort raw" in ips else f"{'-':>8}"
            vs_peer = f"{ips['ort'] / peer_v:>6.2f} ({peer})" if peer else "-"
            red_txt = f"{red} {red_v:.1f}/s" if red else "-"
            vs_ov = (f"{red_v / ips['openvino default']:>18.2f}" if red and "openvino default" in ips else f"{'-':>18}")
            share = f"{cell['gflops']['ort'] / peak_best:>10.0%}"
            out.append(f"{res['target']:<22} {cell['batch']:>5} {raw} {vs_peer:>28} {red_txt:>30} {vs_ov} {share}")

    out.append(f"\nAchieved GFLOP/s (the model's FLOPs, counted on the unoptimised ONNX graph, x calls/s) and share of "
               f"this machine's fp32 sgemm peak {peak_best:.1f} GFLOP/s")
    out += _path_table(results, names, max(width, 15), f"{'GFLOP/call':>10}",
                       lambda res, cell: f"{cell['flops_per_call'] / 1e9:>10.4f}",
                       lambda res, cell: {n: f"{g:.1f} ({g / peak_best:.0%})" for n, g in cell["gflops"].items()})

    out.append("\nImages per CPU-second (this process's CPU time, every thread: what a call costs the machine)")
    out += _path_table(results, names, width, "", lambda res, cell: "",
                       lambda res, cell: {n: f"{v:.1f}" for n, v in cell["images_per_cpu_s"].items()})

    out.append("\nFLOPs per sample by op (2 x MACs; not counted: "
               + "; ".join(f"{r['target']}: {', '.join(f'{k} x{v}' for k, v in r['uncounted_ops'].items())}"
                           for r in results) + ")")
    for res in results:
        by_op = ", ".join(f"{op} x{res['flop_nodes'][op]} {f / 1e6:.2f}M" for op, f in res["flops_by_op"].items())
        out.append(f"  {res['target']:<22} {res['onnx']:<16} {res['flops_per_sample'] / 1e6:>10.2f} MFLOP = {by_op}")

    out.append(f"\nfp32 sgemm 2048^3 ({opts.threads or cpu_count()} threads), best of 5, before / after the timings: "
               + ", ".join(f"{k} {v:.1f}" for k, v in peak.items()) + " GFLOP/s")
    worst = max(((v, f"{r['target']} b{c['batch']} {n}") for r in results for c in r["cells"]
                 for n, v in c["rel_iqr"].items()), default=(0.0, "-"))
    out.append(f"noise: largest inter-quartile range / median of a cell: {worst[0]:.0%} ({worst[1]})")
    diffs = [f"{r['target']} " + " ".join(f"{k} {v:.1e}" for k, v in r["max_abs_diff_vs_torch"].items())
             for r in results]
    out.append("fp32 outputs vs torch, max |diff|: " + "; ".join(diffs))
    psnrs = [f"{r['target']} " + " ".join(f"{k} {v:.1f}" for k, v in r["psnr_vs_torch_db"].items())
             for r in results if r["psnr_vs_torch_db"]]
    if psnrs:
        out.append("reduced precision vs torch fp32, PSNR dB: " + "; ".join(psnrs))
    notes = sorted({f"{k}: {v}" for r in results for k, v in r["path_notes"].items()})
    if notes:
        out.append("what the paths ran: " + "; ".join(notes))
    missing = sorted({f"{k} ({v})" for r in results for k, v in r["missing_paths"].items()})
    if missing:
        out.append("left out: " + "; ".join(missing))
    shares = [f"{r['target']} {r['others_cpu_share']:.0%}" for r in results if r["others_cpu_share"] is not None]
    if shares:
        out.append("CPU used by other processes, per model: " + ", ".join(shares))
    out += report_footer(env, wall_s, " (after imports)")
    print("\n".join(out), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/runtime.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=DEFAULT_MODELS,
                        help="comma-separated MODEL[/VARIANT][:PRESET[+PRESET]]; MODEL alone: every variant "
                             "(default: every registered model at its first variant)")
    parser.add_argument("--presets", default="tiny", help="presets for --models entries without one (default tiny)")
    parser.add_argument("--batches", default="1,64", help="comma-separated batch sizes (default 1,64)")
    parser.add_argument("--repeats", type=int, default=7, help="most timed rounds per cell (default 7)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calibration rounds first, >= 1 (default 1)")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help=f"time budget of all timed cells together; a cell stops after {MIN_ROUNDS} rounds once "
                             "past its share (default 60)")
    parser.add_argument("--min-sample-ms", type=float, default=50.0,
                        help="repeat a short call inside one sample until it lasts this long (default 50)")
    parser.add_argument("--settle-ms", type=float, default=60.0,
                        help="pause after every sample so onnxruntime's spinning threads (~35 ms) do not slow the next "
                             "path; their CPU is charged to the path that spun (default 60)")
    parser.add_argument("--paths", default=",".join(DEFAULT_PATHS),
                        help=f"comma-separated paths to time, from {', '.join(PATHS)} (default all but 'k eager'; "
                             "see bench/peers.py)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: the CPUs this process may use)")
    parser.add_argument("--seed", type=int, default=0, help="initial-weights seed of every model (default 0)")
    parser.add_argument("--out-json", default=None, help="also write every number (and raw samples) here")
    parser.add_argument("--report-from", default=None, metavar="JSON",
                        help="print the report of an earlier run's --out-json file and exit (nothing is timed)")
    parser.add_argument("--log-level", default="INFO")
    opts = parser.parse_args(argv)
    if opts.report_from:
        import json

        saved = json.loads(Path(opts.report_from).read_text())
        print_report(saved["results"], argparse.Namespace(**saved["options"]), saved["environment"],
                     saved["peak_gflops"], saved["wall_s"])
        return 0
    try:
        targets = parse_targets(opts.models, opts.presets)
        opts.batch_list = [int(b) for b in opts.batches.split(",") if b.strip()]
    except ValueError as exc:
        parser.error(str(exc))
    opts.path_list = [p.strip() for p in opts.paths.split(",") if p.strip()]
    unknown = [p for p in opts.path_list if p not in PATHS]
    if unknown:
        parser.error(f"--paths: unknown {unknown}; choose from {', '.join(PATHS)}")
    opts.path_list = sorted({*opts.path_list, "ort", "torch"}, key=list(PATHS).index)  # the references
    if not opts.batch_list or min(opts.repeats, opts.warmup, *opts.batch_list) < 1 or (opts.threads or 1) < 1:
        parser.error("--batches, --repeats, --warmup and --threads must be >= 1")
    if opts.seconds <= 0:
        parser.error("--seconds must be > 0")

    setup_logging(opts.log_level, ("runtime", "export", "absl", "tensorflow", "torch", "onnxscript"))
    torch.set_num_threads(opts.threads or cpu_count())
    env = framework_environment({"onnx": onnx.__version__, "openvino": openvino_version(),
                                 "isa (torch dispatch; cpu flags)": cpu_isa(),
                                 "ort threads": "the runtime's default policy (runtime.threads)"})
    log.info("environment: %s", env)
    start = time.perf_counter()
    meter = CpuMeter()
    peak = {f"{k} before": v for k, v in sgemm_peak().items()}
    log.info("sgemm peak: %s GFLOP/s", {k: round(v, 1) for k, v in peak.items()})
    budget = opts.seconds / (len(targets) * len(opts.batch_list))
    results = []
    failed = {}
    with tempfile.TemporaryDirectory(prefix="bench_runtime_") as tmp:
        for target in targets:
            try:
                results.append(bench_target(target, opts, Path(tmp), budget))
            except Exception as exc:  # noqa: BLE001 - one model's failure must not lose the others' numbers
                log.exception("%s: failed; the other models go on", target.label)
                failed[target.label] = f"{type(exc).__name__}: {exc}"
    env["failed targets"] = failed or "none"
    peak.update({f"{k} after": v for k, v in sgemm_peak().items()})
    env["others_cpu_share_during"] = meter.others()
    wall_s = time.perf_counter() - start
    print_report(results, opts, env, peak, wall_s)
    if opts.out_json:
        payload = {"environment": env, "options": {k: v for k, v in vars(opts).items()}, "peak_gflops": peak,
                   "wall_s": wall_s, "results": results}
        write_json(opts.out_json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
