"""Generator throughput of the ONNX runtime vs torch eager vs Keras, with achieved GFLOP/s.

    python bench/runtime.py [--models conv_vae:tiny+seed,vaegan/time] [--presets tiny]
                            [--batches 1,64] [--repeats 7] [--warmup 1] [--seconds 60]
                            [--keras eager,function] [--threads N] [--out-json PATH]

A target is ``MODEL[/VARIANT][:PRESET[+PRESET...]]``, e.g. ``conv_vae:tiny+seed`` or
``vaegan/time:tiny``. ``VARIANT`` is a name from the model's ``ModelSpec.variants`` (config
overrides: ``vaegan/time`` is the ParamTanh ``time`` mode); ``MODEL`` alone (or ``MODEL/*``) is
every variant, as in ``bench/training.py``. An entry without presets gets every ``--presets``
preset (default tiny). The default ``--models`` is every registered model at its first variant
(``MODEL/FIRST``, read from the registry): nothing here names a model. For each target a torch model is built with core's initial weights
(``torch_impl.init.initialize(model, --seed)``), saved with ``torch_impl.save_model`` and
exported with ``export.pipeline.export_checkpoint(ckpt, dir, "torch")``.
Its generator part (``decoder`` / ``generator`` / ``video_generator``, :func:`core.registry.sample_part`)
is then timed, on the same latents, as

* ``ort``         ``runtime.load(dir, providers="cpu").decode(z, batch_size=len(z))``: raw float
                  output, CPUExecutionProvider, one session call per batch;
* ``torch``       the torch model's method in ``eval()`` under ``torch.no_grad()``, ``.numpy()``'d;
* ``k eager``     ``keras_impl.load_model(ckpt)`` run by ``keras_impl.parts.run_part`` (eager, with
                  its NHWC -> NCHW transpose and NumPy conversion: what the parity tests call);
* ``k tf.fn``     the same Keras model's method (``decode``/``generate``) inside one ``tf.function``
                  with a ``[None, *latent shape]`` input signature (no transpose; NHWC ``.numpy()``).

Measurements are interleaved round-robin (the order rotating every round) so machine noise hits
every framework alike; a warm-up round calibrates how many calls one sample holds (at least
``--min-sample-ms``); each number is the median over the timed rounds, and a cell stops early
(after at least 3 rounds) once it has used its share of the ``--seconds`` budget.

Achieved GFLOP/s: the generator's FLOPs are counted from the ONNX graph itself
(:func:`count_flops`: shape inference at the concrete batch, then 2 x MACs of Conv, ConvTranspose,
Gemm, MatMul and Einsum), times images/s. This machine's fp32 peak is measured in the same run
(best of several 2048 x 2048 sgemms, torch and NumPy, before and after the timings) and every
GFLOP/s is reported as a share of it.

The generator callables, the interleaved timing and the machine helpers are ``bench/common.py``'s.
Throughput counts images; a video generator's sample counts as its frames (``session.frames``).
"""

from __future__ import annotations

import argparse
import gc
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
    FRAMEWORKS, KERAS_PATHS, MIN_ROUNDS, CpuMeter, check_outputs, cpu_count, export_via_torch, fastest_keras,
    framework_environment, generator_fns, interleave, part_latents, prepare_frameworks, report_footer, setup_logging, write_json,
)

prepare_frameworks()  # before TensorFlow is imported

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402

import keras_impl  # noqa: E402  (imports TensorFlow + Keras)
import runtime  # noqa: E402
import torch_impl  # noqa: E402
from core.registry import MODELS, get_model_spec, sample_part  # noqa: E402
from torch_impl.init import initialize  # noqa: E402

log = logging.getLogger("bench.runtime")

#: every registered model at its first variant
DEFAULT_MODELS = ",".join(f"{name}/{next(iter(spec.variants))}" for name, spec in sorted(MODELS.items()))


# --------------------------------------------------------------------------- machine


def sgemm_peak(n: int = 2048, tries: int = 5) -> dict[str, float]:
    """Best-of-``tries`` fp32 GFLOP/s of an n x n x n matrix product, torch and NumPy (one warm-up each)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    flops = 2.0 * n**3
    best: dict[str, float] = {}
    for name, fn in (("torch", lambda: torch.mm(ta, tb)), ("numpy", lambda: a @ b)):
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
    """``conv_vae:tiny+seed,vaegan`` x ``tiny`` -> conv_vae:tiny, conv_vae:seed and every
    variant of vaegan at tiny; ``MODEL/VARIANT`` is one variant."""
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


def bench_target(target: Target, opts: argparse.Namespace, workdir: Path, budget_s: float) -> dict:
    meter = CpuMeter()
    tmodel = initialize(torch_impl.build(target.model, config=target.config()), opts.seed).eval()
    config = tmodel.config
    part = sample_part(config)
    folder = workdir / f"{target.model}_{target.variant}_{target.preset}"
    ckpt, reports, export_s = export_via_torch(tmodel, folder / "ckpt.safetensors", folder / "onnx")
    log.info("%s: exported %s via torch in %.1fs", target.label, [r.part for r in reports], export_s)
    session = runtime.load(folder / "onnx", providers="cpu")
    kmodel = keras_impl.load_model(ckpt)
    fns = generator_fns(tmodel, kmodel, session, part, opts.keras_list)
    diffs = check_outputs(fns, config, part)
    onnx_model = onnx.load(str(session.path))
    per_img = session.frames or 1
    result = {
        "target": target.label, "model": target.model, "variant": target.variant, "preset": target.preset,
        "overrides": target.overrides,
        "part": part, "onnx": str(session.path.name), "ort_provider": session.provider, "export_s": export_s,
        "export_max_abs_diff": {r.part: r.max_abs_diff for r in reports}, "max_abs_diff_vs_torch": diffs,
        "images_per_sample": per_img, "output_shape": list(session.output_shape), "cells": [],
    }
    first = count_flops(onnx_model, 1)
    result["flops_per_sample"] = first.flops
    result["flops_by_op"] = first.by_op
    result["flop_nodes"] = first.nodes
    result["uncounted_ops"] = first.uncounted
    for batch in opts.batch_list:
        flops = count_flops(onnx_model, batch)
        if flops.flops != batch * first.flops:
            log.warning("%s: FLOPs at batch %d are %d, not %d x batch 1", target.label, batch, flops.flops, batch)
        z = part_latents(config, part, batch, 1)
        log.info("%s: batch %d (%.3f GFLOP per call)", target.label, batch, flops.flops / 1e9)
        cell = interleave(fns, z, opts.repeats, opts.warmup, opts.min_sample_ms / 1e3, budget_s)
        cell["batch"] = batch
        cell["flops_per_call"] = flops.flops
        cell["images_per_s"] = {n: batch * per_img / s for n, s in cell["s_per_call"].items()}
        cell["gflops"] = {n: flops.flops / s / 1e9 for n, s in cell["s_per_call"].items()}
        result["cells"].append(cell)
    del fns, tmodel, kmodel, session
    gc.collect()
    result["others_cpu_share"] = meter.others()
    return result


# --------------------------------------------------------------------------- report


def print_report(results: list[dict], opts: argparse.Namespace, env: dict, peak: dict, wall_s: float) -> None:
    names = [n for n in FRAMEWORKS if n == "ort" or n == "torch" or n in {KERAS_PATHS[k] for k in opts.keras_list}]
    peak_best = max(peak.values())
    out = [f"\nGenerator throughput (images/s, a video's frames counted; median of up to {opts.repeats} interleaved rounds after "
           f"{opts.warmup} warm-up; ort = runtime.load(dir, 'cpu').decode,\ntorch = eager no_grad eval, "
           "k eager = keras_impl.parts.run_part, k tf.fn = tf.function(model.<method>); "
           "keras* = the faster Keras path)"]
    cols = "".join(f" {n:>9}" for n in names)
    header = f"{'model':<22} {'part':<15} {'batch':>5} {'MFLOP/img':>10}{cols} {'ort/torch':>9} {'ort/keras*':>10}  keras*  rounds"
    out += [header, "-" * len(header)]
    for res in results:
        for cell in res["cells"]:
            ips = cell["images_per_s"]
            fast = fastest_keras(ips)
            vals = "".join(f" {ips[n]:>9.1f}" for n in names)
            k_ratio = f"{ips['ort'] / ips[fast]:>10.2f}" if fast else f"{'-':>10}"
            out.append(f"{res['target']:<22} {res['part']:<15} {cell['batch']:>5} "
                       f"{res['flops_per_sample'] / res['images_per_sample'] / 1e6:>10.1f}{vals} "
                       f"{ips['ort'] / ips['torch']:>9.2f} {k_ratio}  {(fast or '-').removeprefix('k '):<7} "
                       f"{cell['rounds']:>5}")

    out.append(f"\nAchieved GFLOP/s (generator FLOPs counted from the ONNX graph x calls/s) and share of this "
               f"machine's fp32 sgemm peak {peak_best:.1f} GFLOP/s")
    cols = "".join(f" {n:>16}" for n in names)
    header = f"{'model':<22} {'batch':>5} {'GFLOP/call':>10}{cols}"
    out += [header, "-" * len(header)]
    for res in results:
        for cell in res["cells"]:
            vals = "".join(f" {cell['gflops'][n]:>8.2f} ({cell['gflops'][n] / peak_best:>4.0%})" for n in names)
            out.append(f"{res['target']:<22} {cell['batch']:>5} {cell['flops_per_call'] / 1e9:>10.4f}{vals}")

    out.append("\nFLOPs per sample by op (2 x MACs; not counted: "
               + "; ".join(f"{r['target']}: {', '.join(f'{k} x{v}' for k, v in r['uncounted_ops'].items())}"
                           for r in results) + ")")
    for res in results:
        by_op = ", ".join(f"{op} x{res['flop_nodes'][op]} {f / 1e6:.2f}M" for op, f in res["flops_by_op"].items())
        out.append(f"  {res['target']:<22} {res['onnx']:<16} {res['flops_per_sample'] / 1e6:>10.2f} MFLOP = {by_op}")

    out.append("\nfp32 sgemm 2048^3, best of 5, before / after the timings: "
               + ", ".join(f"{k} {v:.1f}" for k, v in peak.items()) + " GFLOP/s")
    worst = max(((v, f"{r['target']} b{c['batch']} {n}") for r in results for c in r["cells"]
                 for n, v in c["rel_iqr"].items()), default=(0.0, "-"))
    out.append(f"noise: largest inter-quartile range / median of a cell: {worst[0]:.0%} ({worst[1]})")
    diffs = [f"{r['target']} " + " ".join(f"{k} {v:.1e}" for k, v in r["max_abs_diff_vs_torch"].items())
             for r in results]
    out.append("outputs vs torch, max |diff|: " + "; ".join(diffs))
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
    parser.add_argument("--keras", default="eager,function", help="Keras paths to time: eager, function (default both)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: the CPUs this process may use)")
    parser.add_argument("--seed", type=int, default=0, help="initial-weights seed of every model (default 0)")
    parser.add_argument("--out-json", default=None, help="also write every number (and raw samples) here")
    parser.add_argument("--log-level", default="INFO")
    opts = parser.parse_args(argv)
    try:
        targets = parse_targets(opts.models, opts.presets)
        opts.batch_list = [int(b) for b in opts.batches.split(",") if b.strip()]
    except ValueError as exc:
        parser.error(str(exc))
    opts.keras_list = [k.strip() for k in opts.keras.split(",") if k.strip()]
    if any(k not in KERAS_PATHS for k in opts.keras_list):
        parser.error(f"--keras: choose from {','.join(KERAS_PATHS)}")
    if not opts.batch_list or min(opts.repeats, opts.warmup, *opts.batch_list) < 1 or (opts.threads or 1) < 1:
        parser.error("--batches, --repeats, --warmup and --threads must be >= 1")
    if opts.seconds <= 0:
        parser.error("--seconds must be > 0")

    setup_logging(opts.log_level, ("runtime", "export", "absl", "tensorflow", "torch", "onnxscript"))
    torch.set_num_threads(opts.threads or cpu_count())
    env = framework_environment({"onnx": onnx.__version__,
                                 "ort intra-op threads": "ORT default (0 = one per physical core)"})
    log.info("environment: %s", env)
    start = time.perf_counter()
    meter = CpuMeter()
    peak = {f"{k} before": v for k, v in sgemm_peak().items()}
    log.info("sgemm peak: %s GFLOP/s", {k: round(v, 1) for k, v in peak.items()})
    budget = opts.seconds / (len(targets) * len(opts.batch_list))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_runtime_") as tmp:
        for target in targets:
            results.append(bench_target(target, opts, Path(tmp), budget))
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
