"""Evaluation speed: feature extraction through onnxruntime vs torch eager, and an FID end to end.

    python bench/evaluate.py [--batch 64] [--inception-batch N] [--threads N] [--repeats 7]
                             [--inception-rounds 3] [--picture-side 64] [--n 2048] [--e2e-rounds 3]
                             [--no-cold] [--model conv_vae:tiny] [--quick] [--json PATH]

**Feature extraction** (images/s, batch ``--batch``, default 64) of the two feature networks the
metrics read (:mod:`core.metrics.features`):

* ``digits``     the built-in network, ``core/metrics/networks/digits.onnx`` (28 x 28 luma -> 128-d
                 ``features`` + 10 ``logits``). The torch side is the module it was exported from
                 (``scripts/digits_features.py``'s ``build``) with the ONNX file's initializers
                 loaded into it (by name, then by shape), so both sides compute the same function;
* ``inception``  FID's Inception-v3 (``export.inception.FIDInceptionV3``, 299 x 299 RGB -> 2048-d
                 ``pool`` + 1008 ``logits_unbiased``; ~5.7 GFLOP an image). No real weights exist here
                 and none are downloaded: it runs with random weights (:func:`randomize_inception`,
                 He-normal convolutions and perturbed BatchNorm statistics, so activations stay O(1)
                 like trained ones; PyTorch's default initialisation lets them decay to ~1e-7 by
                 ``Mixed_7c``, which would make the parity check vacuous). Speed does not depend on
                 the values. It is exported to a temporary ONNX file with ``export_inception``'s
                 settings (opset 17, TorchScript exporter, dynamic batch axis, outputs
                 ``pool``/``logits``/``logits_unbiased``).

``ort`` is ``onnxruntime.InferenceSession(..., CPUExecutionProvider)`` run on the network's two
outputs (what :func:`core.metrics.features.extract` reads), ``torch`` the module in ``eval()`` under
``torch.no_grad()`` with ``.numpy()``'d outputs. Both use ``--threads`` threads (torch
``set_num_threads``, ORT ``intra_op_num_threads``; default: the CPUs this process may use), and ORT's
threads do not spin-wait between runs (``$AGE_RUNTIME_SPIN``, default 0 here: see
``bench/common.prepare_frameworks``). Before timing, the outputs of both on the same batch must
agree to 1e-4 (max |diff|, a warning otherwise); the table's parity column is the worse of that
check and the last timed outputs.

The first row of each network counts the network alone on an **already-prepared** float32 batch
(n, C, S, S). The ``+ prepare`` row adds :func:`core.metrics.features.prepare` (the one resize
path: Pillow bicubic to the network's side, luma for digits, [0, 1] float32) of ``--batch``
uint8 RGB pictures of ``--picture-side`` pixels, timed in the same rounds: that is the real cost
of extracting features from pictures. The prepare cost is the same for both frameworks, so it
pulls the ratio towards 1.

**Reading the ratio**: ``ORT/torch`` = ORT images/s / torch images/s, measured side by side
(interleaved round-robin, the order rotating every round, :func:`bench.common.interleave`;
medians). Above 1, onnxruntime is faster. On a shared machine the absolute numbers move with
the load, and so does the ratio when ``--threads`` > 1: torch's OpenMP threads meet at a barrier
after every op, so one descheduled thread stalls them all (the small ops of ``digits`` most),
where ORT's pool degrades far less. The CPU share other processes took is printed with the
results (with a note when it is high); compare a ``--threads 1`` run before reading much into a
large ratio measured on a busy machine.

**FID end to end**: a generator (``--model``, default ``conv_vae:tiny``, core's initial weights) is
exported with ``torch_impl.save_model`` + ``export.pipeline.export_checkpoint``, then
``runtime.evaluate`` runs at ``--n`` (2048) generated vs 2048 real digits on the built-in digits
network, with ``--metrics fid`` and with every metric. Timed in process
(``runtime.evaluate.evaluate(build_parser().parse_args([...]))``, after one untimed warm-up run;
the wall time around the call, with a breakdown into generation, drawing the real pictures,
prepare, the feature network and the metrics) and as a subprocess (``python -m runtime.evaluate``:
cold start, imports included). ``runtime.evaluate`` opens its own ORT sessions with ORT's
default threads, not ``--threads``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import logging
import subprocess
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import (  # noqa: E402
    BUSY_WARNING, CpuMeter, busy_note, cpu_count, cpu_isa, environment, interleave, median, prepare_frameworks,
    rel_iqr, report_footer, setup_logging, write_json,
)

prepare_frameworks()  # ORT threads do not spin between runs ($AGE_RUNTIME_SPIN=0 unless set)

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from onnx import numpy_helper  # noqa: E402
from torch import nn  # noqa: E402

from core.metrics import features  # noqa: E402
from export.inception import DEFAULT_OPSET, INPUT_NAME, OUTPUT_NAMES, SIZE, FIDInceptionV3  # noqa: E402
from runtime.providers import SPIN_ENV_VAR, session_options  # noqa: E402

log = logging.getLogger("bench.evaluate")

#: ORT and torch outputs must agree to this (max |diff|) or the timings compare different work
PARITY_TOLERANCE = 1e-4
#: every metric runtime.evaluate knows, the "all metrics" run
ALL_METRICS = "is,fid,kid,pr,dc"
#: --quick: a smoke run (a few seconds of timing per cell, a small Inception batch)
QUICK = {"repeats": 3, "min_sample_ms": 50.0, "inception_batch": 8, "inception_rounds": 2, "e2e_rounds": 1}


# --------------------------------------------------------------------------- networks


def ort_session(path: str | Path, threads: int) -> ort.InferenceSession:
    """A CPU session with ``threads`` intra-op threads (and the runtime's spinning setting)."""
    options = session_options()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def load_onnx_initializers(module: nn.Module, path: str | Path) -> dict[str, str]:
    """Copy the ONNX file's initializers into ``module``'s parameters and buffers: by name, then
    the rest in order among initializers of the same shape. Returns {torch name: ONNX name};
    raises ``ValueError`` when a tensor finds no match."""
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    state = module.state_dict()
    matched = {k: k for k, v in state.items() if k in inits and inits[k].shape == tuple(v.shape)}
    free = [n for n in inits if n not in matched.values()]
    for key, value in state.items():
        if key in matched:
            continue
        name = next((n for n in free if inits[n].shape == tuple(value.shape)), None)
        if name is None:
            raise ValueError(f"{path}: no initializer for {key} {tuple(value.shape)}")
        matched[key] = name
        free.remove(name)
    module.load_state_dict({k: torch.from_numpy(inits[n].copy()) for k, n in matched.items()}, strict=True)
    return matched


def digits_torch(network: features.FeatureNetwork) -> nn.Module:
    """``scripts/digits_features.py``'s module with ``network``'s ONNX weights, in eval mode."""
    spec = importlib.util.spec_from_file_location("digits_features", ROOT / "scripts" / "digits_features.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    module = script.build(torch)
    mapping = load_onnx_initializers(module, network.path)
    renamed = {k: v for k, v in mapping.items() if k != v}
    if renamed:
        log.info("digits: initializers matched by shape: %s", renamed)
    return module.eval()


def randomize_inception(model: nn.Module, seed: int) -> nn.Module:
    """Random weights with O(1) activations through the whole network (see the module docstring):
    He-normal convolutions, BatchNorm scale/shift/statistics near the identity (so the exporter's
    BatchNorm folding is exercised), fc normal with std 1/sqrt(fan_in)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=gen)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.8, 1.2, generator=gen)
                m.bias.uniform_(-0.1, 0.1, generator=gen)
                m.running_mean.uniform_(-0.1, 0.1, generator=gen)
                m.running_var.uniform_(0.8, 1.2, generator=gen)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=m.in_features ** -0.5, generator=gen)
                m.bias.uniform_(-0.1, 0.1, generator=gen)
    return model.eval().requires_grad_(False)


def export_inception_onnx(model: nn.Module, path: str | Path, opset: int = DEFAULT_OPSET, seed: int = 0) -> Path:
    """``model`` to ONNX as ``export.inception.export_inception`` writes it (batch-1 trace, dynamic
    batch axis, TorchScript exporter), without its weights-file checks and metadata."""
    path = Path(path)
    traced = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, (traced,), str(path), input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                          opset_version=opset, dynamo=False,
                          dynamic_axes={n: {0: "batch"} for n in (INPUT_NAME, *OUTPUT_NAMES)})
    return path


def extractors(network: features.FeatureNetwork, module: nn.Module, session: ort.InferenceSession,
               last: dict[str, list[np.ndarray]]) -> dict[str, Callable[[np.ndarray], list[np.ndarray]]]:
    """{"ort", "torch"}: prepared float32 batch -> [features, logits] as NumPy; each keeps its last
    outputs in ``last[name]``. torch returns all its outputs; the ones ``network.outputs`` names
    are picked (digits: both; Inception: ``pool`` and ``logits_unbiased``)."""
    names, image = list(network.outputs), session.get_inputs()[0].name
    picks = [0, 1] if network.name == "digits" else [OUTPUT_NAMES.index(n) for n in names]

    def ort_fn(x: np.ndarray) -> list[np.ndarray]:
        last["ort"] = session.run(names, {image: x})
        return last["ort"]

    def torch_fn(x: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            out = module(torch.from_numpy(x))
        last["torch"] = [out[i].numpy() for i in picks]
        return last["torch"]

    return {"ort": ort_fn, "torch": torch_fn}


def max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.abs(x - y).max()) if x.shape == y.shape else float("inf") for x, y in zip(a, b))


def bench_network(network: features.FeatureNetwork, module: nn.Module, batch: int, opts: argparse.Namespace,
                  repeats: int, min_sample_s: float, min_rounds: int) -> dict:
    """Parity check, then the ``ort`` / ``torch`` / ``prepare`` callables timed interleaved on one batch."""
    meter = CpuMeter()
    session = ort_session(network.path, opts.threads)
    rng = np.random.default_rng(opts.seed)
    pictures = rng.integers(0, 256, (batch, opts.picture_side, opts.picture_side, 3), dtype=np.uint8)
    x = features.prepare(pictures, network)
    last: dict[str, list[np.ndarray]] = {}
    fns = extractors(network, module, session, last)
    small = x[:2]
    check = max_diff(fns["ort"](small), fns["torch"](small))
    scale = max(float(np.abs(o).max()) for o in last["torch"])
    log.info("%s: ort vs torch on batch 2: max |diff| %.2g (outputs up to %.3g)", network.name, check, scale)
    if not check <= PARITY_TOLERANCE:
        log.warning("%s: ort differs from torch by %.3g (> %g): the timings compare different work",
                    network.name, check, PARITY_TOLERANCE)
    ort_fn, torch_fn = fns["ort"], fns["torch"]
    timed: dict[str, Callable[[Any], Any]] = {
        "ort": lambda _: ort_fn(x),
        "torch": lambda _: torch_fn(x),
        "prepare": lambda _: features.prepare(pictures, network),
    }
    log.info("%s: batch %d, %d warm-up + up to %d timed rounds", network.name, batch, opts.warmup, repeats)
    cell = interleave(timed, None, repeats, opts.warmup, min_sample_s, min_rounds=min_rounds)
    final = max_diff(last["ort"], last["torch"])
    s = cell["s_per_call"]
    cell.update({
        "network": network.name, "batch": batch, "input": list(x.shape), "picture": list(pictures.shape[1:]),
        "parity_batch2": check, "parity_timed_batch": final, "parity": max(check, final), "output_scale": scale,
        "images_per_s": {"ort": batch / s["ort"], "torch": batch / s["torch"],
                         "ort+prepare": batch / (s["ort"] + s["prepare"]),
                         "torch+prepare": batch / (s["torch"] + s["prepare"]), "prepare": batch / s["prepare"]},
        "others_cpu_share": meter.others(),
    })
    return cell


# --------------------------------------------------------------------------- FID end to end


@contextlib.contextmanager
def instrumented(stages: dict[str, float]) -> Iterator[None]:
    """Time the stages of ``runtime.evaluate.evaluate`` into ``stages`` (seconds, summed over calls):
    generate, real draw, prepare, extract (prepare included), metrics. Module attributes are
    patched for the duration and put back after."""
    from runtime import evaluate as ev
    from runtime.session import GeneratorSession

    def timed(key: str, fn: Callable) -> Callable:
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                stages[key] += time.perf_counter() - t0
        return wrapper

    patches = [(GeneratorSession, "generate"), (ev, "real_images"), (features, "prepare"), (features, "extract"),
               (ev, "compute")]
    keys = ["generate", "real draw", "prepare", "extract", "metrics"]
    saved = [getattr(obj, name) for obj, name in patches]
    try:
        for (obj, name), key, fn in zip(patches, keys, saved):
            setattr(obj, name, timed(key, fn))
        yield
    finally:
        for (obj, name), fn in zip(patches, saved):
            setattr(obj, name, fn)


class _Once(logging.Filter):
    """Let each distinct message through once (runtime.evaluate's 'the real set repeats' warning)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if msg in self.seen:
            return False
        self.seen.add(msg)
        return True


def export_generator(target: str, seed: int, workdir: Path) -> tuple[Path, float]:
    """``MODEL:PRESET`` built with core's initial weights (``--seed``) and exported via torch into
    ``workdir/onnx``; returns (that folder, seconds)."""
    import torch_impl
    from bench.common import export_via_torch
    from core.registry import get_model_spec
    from torch_impl.init import initialize

    model, _, preset = target.partition(":")
    config = get_model_spec(model).config_cls.preset(preset or "tiny")
    tmodel = initialize(torch_impl.build(model, config=config), seed).eval()
    _, reports, seconds = export_via_torch(tmodel, workdir / "ckpt.safetensors", workdir / "onnx")
    log.info("%s: exported %s via torch in %.1fs", target, [r.part for r in reports], seconds)
    return workdir / "onnx", seconds


def bench_fid(opts: argparse.Namespace, workdir: Path) -> dict:
    """Wall seconds of ``runtime.evaluate`` at ``--n``: in process and (unless ``--no-cold``) as a subprocess."""
    from runtime import evaluate as ev

    meter = CpuMeter()
    export_dir, export_s = export_generator(opts.model, opts.seed, workdir)
    logging.getLogger("runtime.evaluate").addFilter(_Once())
    breakdowns: dict[str, list[dict[str, float]]] = defaultdict(list)
    reports: dict[str, dict] = {}

    def in_process(metrics: str) -> Callable[[Any], None]:
        def run(_: Any) -> None:
            stages: dict[str, float] = defaultdict(float)
            args = ev.build_parser().parse_args([str(export_dir), "--n", str(opts.n), "--metrics", metrics,
                                                 "--seed", str(opts.seed)])
            t0 = time.perf_counter()
            with instrumented(stages):
                reports[metrics] = ev.evaluate(args)
            stages["total"] = time.perf_counter() - t0
            breakdowns[metrics].append(dict(stages))
        return run

    def cold(metrics: str) -> Callable[[Any], None]:
        cmd = [sys.executable, "-m", "runtime.evaluate", str(export_dir), "--n", str(opts.n), "--metrics", metrics,
               "--seed", str(opts.seed), "--log-level", "ERROR"]

        def run(_: Any) -> None:
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        return run

    fns: dict[str, Callable[[Any], None]] = {f"in-process {m}": in_process(m) for m in ("fid", ALL_METRICS)}
    if not opts.no_cold:
        fns.update({f"subprocess {m}": cold(m) for m in ("fid", ALL_METRICS)})
    log.info("runtime.evaluate n=%d: %s, 1 warm-up (in-process fid) + %d timed rounds", opts.n, list(fns),
             opts.e2e_rounds)
    fns["in-process fid"](None)  # warm-up: the digits cache, imports, first ORT sessions
    cell = interleave(fns, None, opts.e2e_rounds, 0, 0.0, min_rounds=opts.e2e_rounds)
    stages = {}
    for metrics, runs in breakdowns.items():
        timed = runs[-cell["rounds"]:]  # the warm-up run first
        stages[metrics] = {k: median([r[k] for r in timed]) for k in timed[0]}
    first = next(iter(reports.values()))
    cell.update({
        "model": opts.model, "export_s": export_s, "n": opts.n, "features": first["features"],
        "resize": first["resize"], "stages_s": stages,
        "metric_values": {m: {k: v["value"] for k, v in r["metrics"].items()} for m, r in reports.items()},
        "others_cpu_share": meter.others(),
    })
    return cell


# --------------------------------------------------------------------------- report


def print_report(cells: list[dict], fid: dict | None, opts: argparse.Namespace, env: dict, wall_s: float) -> None:
    out = [f"\nmachine: {env['cpu']}; ISA: {env['isa (torch dispatch; cpu flags)']}; {env['cpus (affinity)']} CPUs "
           f"(affinity); threads used: torch {torch.get_num_threads()}, ORT intra-op {opts.threads} "
           f"(spinning {'off' if env['ort thread spinning ($AGE_RUNTIME_SPIN)'] == '0' else 'on'})",
           f"\nFeature extraction, images/s (median of up to {opts.repeats} (digits) / {opts.inception_rounds} "
           f"(inception) interleaved rounds after {opts.warmup} warm-up; ratio > 1: onnxruntime faster)",
           f"  network rows: already-prepared float32 (n, C, S, S) batches, the network alone; "
           f"'+ prepare' rows: plus features.prepare\n  of uint8 {opts.picture_side}x{opts.picture_side} RGB pictures "
           f"(Pillow bicubic resize; the same cost on both sides)"]
    header = (f"{'network':<22} {'batch':>5} {'ORT img/s':>10} {'torch img/s':>11} {'ORT/torch':>9} "
              f"{'parity max|diff|':>16} {'rounds':>6} {'noise':>6}")
    out += [header, "-" * len(header)]
    for c in cells:
        ips, noise = c["images_per_s"], max(c["rel_iqr"].values())
        out.append(f"{c['network']:<22} {c['batch']:>5} {ips['ort']:>10.1f} {ips['torch']:>11.1f} "
                   f"{ips['ort'] / ips['torch']:>9.2f} {c['parity']:>16.1e} {c['rounds']:>6} {noise:>6.0%}")
        out.append(f"{'  + prepare':<22} {c['batch']:>5} {ips['ort+prepare']:>10.1f} {ips['torch+prepare']:>11.1f} "
                   f"{ips['ort+prepare'] / ips['torch+prepare']:>9.2f} {'':>16} {'':>6} {'':>6}")
    out.append("  prepare alone: " + ", ".join(
        f"{c['network']} {c['images_per_s']['prepare']:.0f} img/s ({c['picture'][0]}->{c['input'][-1]})" for c in cells))
    out.append("  noise: inter-quartile range / median of the cell's noisiest sample set; CPU used by other "
               "processes: " + ", ".join(f"{c['network']} {busy_note(c['others_cpu_share'])}" for c in cells))
    if opts.threads > 1 and any((c["others_cpu_share"] or 0) > BUSY_WARNING for c in cells):
        out.append(f"  note: with other processes on the CPUs, torch's {opts.threads} OpenMP threads wait on each "
                   "other at every op (small ops most: digits); ORT's pool suffers much less. Compare --threads 1.")
    if fid:
        out.append(f"\nFID end to end: runtime.evaluate, n = {fid['n']} generated ({fid['model']}, core's initial "
                   f"weights) vs {fid['n']} real digits, {fid['features']['network']} features "
                   f"({fid['features']['dim']}-d), resize {fid['resize']};")
        out.append(f"  wall seconds, median of {fid['rounds']} interleaved runs after 1 in-process warm-up; in-process = "
                   f"evaluate(build_parser().parse_args(...)), subprocess = python -m runtime.evaluate (cold start)")
        stage_keys = ["generate", "real draw", "prepare", "network", "metrics", "other"]
        header = f"{'run':<30} {'median s':>9} {'min s':>7} {'noise':>6}   " + " ".join(f"{k:>9}" for k in stage_keys)
        out += [header, "-" * len(header)]
        for name, s in fid["s_per_call"].items():
            samples = fid["samples_s"][name]
            mode, _, metrics = name.partition(" ")
            st = fid["stages_s"].get(metrics) if mode == "in-process" else None
            if st:
                split = {"generate": st["generate"], "real draw": st["real draw"], "prepare": st["prepare"],
                         "network": st["extract"] - st["prepare"], "metrics": st["metrics"]}
                split["other"] = st["total"] - sum(split.values())
                stages = " ".join(f"{split[k]:>9.2f}" for k in stage_keys)
            else:
                stages = f"{'(imports and start-up included)':>59}"
            out.append(f"{name:<30} {s:>9.2f} {min(samples):>7.2f} {rel_iqr(samples):>6.0%}   {stages}")
        out.append(f"  breakdown: medians of the in-process runs' stages (network = extract - prepare; other = loading "
                   f"the export and the ORT sessions); export {fid['export_s']:.1f}s (not in the runs); "
                   f"CPU used by other processes: {busy_note(fid['others_cpu_share'])}")
    out += report_footer(env, wall_s, " (after imports)")
    print("\n".join(out), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/evaluate.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64, help="feature-extraction batch (default 64)")
    parser.add_argument("--inception-batch", type=int, default=None,
                        help="Inception's batch (default: --batch; 8 with --quick)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads and ORT intra-op threads (default: the CPUs this process may use)")
    parser.add_argument("--repeats", type=int, default=7, help="most timed rounds of the digits cell (default 7)")
    parser.add_argument("--inception-rounds", type=int, default=3,
                        help="timed rounds of the Inception cell (default 3; one batch-64 call takes seconds)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calibration rounds first, >= 1 (default 1)")
    parser.add_argument("--min-sample-ms", type=float, default=200.0,
                        help="repeat a short call inside one sample until it lasts this long (default 200)")
    parser.add_argument("--picture-side", type=int, default=64,
                        help="side of the uint8 RGB pictures the '+ prepare' rows resize (default 64)")
    parser.add_argument("--n", type=int, default=2048, help="runtime.evaluate --n of the FID runs (default 2048)")
    parser.add_argument("--e2e-rounds", type=int, default=3, help="timed runs of each FID end-to-end case (default 3)")
    parser.add_argument("--no-cold", action="store_true", help="skip the subprocess (cold start) FID runs")
    parser.add_argument("--no-fid", action="store_true", help="skip the FID end-to-end runs")
    parser.add_argument("--networks", default="digits,inception", help="feature networks to time (default both)")
    parser.add_argument("--model", default="conv_vae:tiny", help="MODEL:PRESET exported for the FID runs "
                                                                 "(default conv_vae:tiny)")
    parser.add_argument("--seed", type=int, default=0, help="weights, pictures and runtime.evaluate seed (default 0)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: " + ", ".join(f"--{k.replace('_', '-')} {v:g}" for k, v in QUICK.items()))
    parser.add_argument("--json", "--out-json", dest="json", default=None,
                        help="also write every number (and raw samples) here")
    parser.add_argument("--log-level", default="INFO")
    opts = parser.parse_args(argv)
    if opts.quick:
        for key, value in QUICK.items():
            if getattr(opts, key) == parser.get_default(key):
                setattr(opts, key, value)
    opts.threads = opts.threads or cpu_count()
    opts.inception_batch = opts.inception_batch or opts.batch
    opts.network_list = [n.strip() for n in opts.networks.split(",") if n.strip()]
    if any(n not in ("digits", "inception") for n in opts.network_list):
        parser.error("--networks: choose from digits,inception")
    if min(opts.batch, opts.inception_batch, opts.threads, opts.repeats, opts.inception_rounds, opts.warmup,
           opts.picture_side, opts.e2e_rounds) < 1:
        parser.error("--batch, --inception-batch, --threads, --repeats, --inception-rounds, --warmup, "
                     "--picture-side and --e2e-rounds must be >= 1")
    if not 2 <= opts.n <= 50_000:
        parser.error("--n must be between 2 and 50000")

    setup_logging(opts.log_level, ("runtime", "export", "torch", "onnxscript"))
    torch.set_num_threads(opts.threads)
    env = environment({
        "torch": torch.__version__, "onnx": onnx.__version__,
        "isa (torch dispatch; cpu flags)": cpu_isa(),
        "threads (torch intra, ORT intra-op)": [torch.get_num_threads(), opts.threads],
    })
    log.info("environment: %s (ORT spinning $%s)", env, SPIN_ENV_VAR)
    start = time.perf_counter()
    meter = CpuMeter()
    cells, fid = [], None
    with tempfile.TemporaryDirectory(prefix="bench_evaluate_") as tmp:
        if "digits" in opts.network_list:
            network = features.digits()
            cells.append(bench_network(network, digits_torch(network), opts.batch, opts, opts.repeats,
                                       opts.min_sample_ms / 1e3, min(3, opts.repeats)))
        if "inception" in opts.network_list:
            t0 = time.perf_counter()
            model = randomize_inception(FIDInceptionV3(), opts.seed)
            path = export_inception_onnx(model, Path(tmp) / "inception_fid.onnx", seed=opts.seed)
            log.info("inception: random weights exported to ONNX in %.1fs", time.perf_counter() - t0)
            cells.append(bench_network(features.inception(path), model, opts.inception_batch, opts,
                                       opts.inception_rounds, 0.0, opts.inception_rounds))
            del model
        if not opts.no_fid:
            with contextlib.redirect_stdout(io.StringIO()):  # nothing of the runs' own printing
                fid = bench_fid(opts, Path(tmp) / "fid")
    env["others_cpu_share_during"] = meter.others()
    wall_s = time.perf_counter() - start
    print_report(cells, fid, opts, env, wall_s)
    if opts.json:
        write_json(opts.json, {"environment": env, "options": vars(opts), "wall_s": wall_s,
                               "feature_extraction": cells, "fid_end_to_end": fid})
    return 0


if __name__ == "__main__":
    sys.exit(main())
