"""Benchmark the ``vaegan`` model in every framework, in one process, so the ratios sit side by side.

    python bench/vaegan.py [--modes single,matrix,time,transformer] [--preset tiny|seed]
                           [--batch-size 16] [--repeats 10] [--warmup 3] [--out-json PATH]

For each ``tanh_mode``:

1. training: a torch and a Keras ``VAEGANTrainer`` built from the same config and trainer args
   (``core.cli.train_parser``) step on one fixed random (B, 3, S, S) batch. Critic-only steps and
   critic + generator steps are timed separately (``--n-critic 2``, so steps alternate), and the
   per-step cost at the trainers' default ``--n-critic`` is derived from the two. Warm-up steps
   (one of each kind at least) absorb Keras' ``tf.function`` tracing.
2. generation: the torch model is exported to ONNX (``export.pipeline.export_checkpoint``, via torch)
   in a temporary directory and served by ``runtime.load(dir, providers="cpu")``; its ``decode``
   (raw float output, ``ort``) is timed against torch eager (``eval()``, ``no_grad``; ``torch``)
   and Keras, eager (``keras_impl.parts.run_part``: the registry part's method, ``generate`` or
   ``generate_video``, with ``training=False`` and its NHWC -> NCHW transpose; ``k eager``) and
   that method as a ``tf.function`` graph (``k tf.fn``), on a Keras twin that holds the torch
   weights (the outputs are compared once, so all of them compute the same thing). Throughput
   counts images; a ``time``-mode clip counts as its T frames (a clips/s row follows).

Measurements are interleaved (round-robin, the order rotating every repeat) so that machine noise
hits every framework alike; each number is the median over ``--repeats``, timed with
``time.perf_counter``. A short batch-1 call is repeated inside one sample so a sample lasts at
least ``--min-sample-ms``. The generator callables, the interleaved timing and the machine helpers
are ``bench/common.py``'s, shared with ``bench/runtime.py``.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import (  # noqa: E402
    BUSY_WARNING, CpuMeter, check_outputs, cpu_count, export_via_torch, fastest_keras, framework_environment,
    generator_fns, interleave, median, prepare_frameworks, rel_iqr, report_footer, rotated, setup_logging, write_json,
)

prepare_frameworks()  # before TensorFlow is imported

import numpy as np  # noqa: E402
import torch  # noqa: E402

import keras_impl  # noqa: E402  (imports TensorFlow + Keras)
from keras_impl.checkpoint import load_tensors as keras_load_tensors  # noqa: E402
from keras_impl.train import VAEGANTrainer as KerasTrainer  # noqa: E402
from core.cli import train_parser  # noqa: E402
from core.models.vaegan import TANH_MODES  # noqa: E402
from core.noise import latents  # noqa: E402
from core.registry import get_model_spec, make_config, sample_part  # noqa: E402
from core.trainer_base import frames_per_sample, is_generator_step  # noqa: E402
from torch_impl.checkpoint import model_tensors  # noqa: E402
from torch_impl.train import VAEGANTrainer as TorchTrainer  # noqa: E402

log = logging.getLogger("bench.vaegan")

MODEL = "vaegan"
#: trainer --n-critic while timing: steps alternate critic-only / critic + generator
TIMING_N_CRITIC = 2
#: generation table's column order (labels of bench.common.FRAMEWORKS)
GEN_COLUMNS = ("torch", "k eager", "k tf.fn", "ort")


def trainer_args(preset: str, mode: str, batch_size: int) -> argparse.Namespace:
    """The namespace ``python -m {torch,keras}_impl.train`` would see, with the model's --lr."""
    args = train_parser("bench/vaegan.py").parse_args(
        ["--out", "unused", "--model", MODEL, "--preset", preset, "--tanh-mode", mode,
         "--batch-size", str(batch_size), "--n-critic", str(TIMING_N_CRITIC)])
    if args.lr is None:  # as core.training._apply_model_defaults
        args.lr = float(get_model_spec(MODEL).train_defaults["lr"])
    return args


# --------------------------------------------------------------------------- training


def bench_training(config, args, batch: np.ndarray, repeats: int, warmup: int) -> tuple[dict, torch.nn.Module]:
    """Median ms of critic-only and critic+generator steps, torch vs Keras, interleaved.

    Returns the numbers and the torch trainer's model (which generation then exports)."""
    trainers = {"torch": TorchTrainer(config, args), "keras": KerasTrainer(config, args)}
    names = list(trainers)
    steps = dict.fromkeys(names, 0)
    samples: dict[tuple[str, str], list[float]] = {(f, k): [] for f in names for k in ("critic", "critic+gen")}
    for r in range(warmup + repeats):
        for fw in rotated(names, r):
            for _ in range(TIMING_N_CRITIC):  # one critic-only and one critic+generator step
                step = steps[fw]
                kind = "critic+gen" if is_generator_step(step, args.n_critic) else "critic"
                t0 = time.perf_counter()
                losses = trainers[fw].train_step(batch, step)
                dt = time.perf_counter() - t0
                steps[fw] += 1
                if not all(math.isfinite(v) for v in losses.values()):
                    log.warning("%s step %d: non-finite loss %s", fw, step, losses)
                if r >= warmup:
                    samples[(fw, kind)].append(dt * 1e3)
    default_n_critic = train_parser("x").get_default("n_critic")
    out = {"samples_ms": {f"{f}/{k}": v for (f, k), v in samples.items()}, "ms": {}, "rel_iqr": {}}
    for fw in names:
        c, g = median(samples[(fw, "critic")]), median(samples[(fw, "critic+gen")])
        out["ms"][fw] = {"critic": c, "critic+gen": g,
                         f"per step @n_critic={default_n_critic}": ((default_n_critic - 1) * c + g) / default_n_critic}
        out["rel_iqr"][fw] = max(rel_iqr(samples[(fw, "critic")]), rel_iqr(samples[(fw, "critic+gen")]))
    out["default_n_critic"] = default_n_critic
    return out, trainers["torch"].model


# --------------------------------------------------------------------------- one mode


def bench_mode(mode: str, opts: argparse.Namespace) -> dict:
    meter = CpuMeter()
    config = make_config(MODEL, opts.preset, tanh_mode=mode)
    args = trainer_args(opts.preset, mode, opts.batch_size)
    s = config.image_size
    batch = np.random.default_rng(0).random((opts.batch_size, config.in_channels, s, s), dtype=np.float32)
    log.info("%s: training, batch %s, %d warm-up + %d timed rounds", mode, batch.shape, opts.warmup, opts.repeats)
    t0 = time.perf_counter()
    training, tmodel = bench_training(config, args, batch, opts.repeats, opts.warmup)
    log.info("%s: training done in %.1fs", mode, time.perf_counter() - t0)

    import runtime

    result = {"mode": mode, "config": json.loads(config.to_json()), "training": training, "generation": []}
    kmodel = keras_load_tensors(keras_impl.build(MODEL, config=config), model_tensors(tmodel))
    part = sample_part(config)
    with tempfile.TemporaryDirectory(prefix="bench_vaegan_") as tmp:
        _, reports, result["export_s"] = export_via_torch(tmodel, Path(tmp) / "ckpt.safetensors", Path(tmp) / "onnx")
        result["export_max_abs_diff"] = {r.part: r.max_abs_diff for r in reports}
        log.info("%s: exported %s to ONNX via torch in %.1fs", mode, [r.part for r in reports], result["export_s"])
        session = runtime.load(Path(tmp) / "onnx", providers="cpu")
        result["ort_provider"] = session.provider
        fns = generator_fns(tmodel, kmodel, session, part)
        result["max_abs_diff_vs_torch"] = check_outputs(fns, config, part)
        per_sample = frames_per_sample(config)
        for b in opts.gen_batches:
            log.info("%s: generation at batch %d", mode, b)
            cell = interleave(fns, latents(b, config.latent_dim, 1), opts.repeats, opts.warmup,
                              opts.min_sample_ms / 1e3)
            result["generation"].append({
                "batch": b, "frames_per_sample": per_sample, **cell,
                "ms_per_call": {n: s * 1e3 for n, s in cell["s_per_call"].items()},
                "images_per_s": {n: b * per_sample / s for n, s in cell["s_per_call"].items()},
            })
    del tmodel, kmodel, fns, session
    gc.collect()
    result["others_cpu_share"] = meter.others()
    if result["others_cpu_share"] is not None and result["others_cpu_share"] > BUSY_WARNING:
        log.warning("%s: other processes used %.0f%% of the CPUs meanwhile: these timings are distorted "
                    "(multi-threaded torch the most); rerun on an idle machine", mode, 100 * result["others_cpu_share"])
    return result


# --------------------------------------------------------------------------- report


def print_report(results: list[dict], opts: argparse.Namespace, env: dict, wall_s: float) -> None:
    out = []
    n_critic = results[0]["training"]["default_n_critic"] if results else 5
    out.append(f"\nvaegan benchmark: preset {opts.preset}, training batch {opts.batch_size}, "
               f"median of {opts.repeats} interleaved repeats after {opts.warmup} warm-up")
    out.append("\nTraining step (ms; critic+gen = a critic step then a generator step; "
               f"per step = ({n_critic - 1} x critic + critic+gen) / {n_critic}, the default --n-critic;\n"
               "keras/torch < 1: Keras is faster)")
    header = f"{'mode':<12} {'step':<22} {'torch':>9} {'keras':>9} {'keras/torch':>12}"
    out += [header, "-" * len(header)]
    for res in results:
        ms = res["training"]["ms"]
        for key in ms["torch"]:
            t, k = ms["torch"][key], ms["keras"][key]
            out.append(f"{res['mode']:<12} {key:<22} {t:>9.1f} {k:>9.1f} {k / t:>12.2f}")

    out.append("\nGeneration throughput (images/s, a video's frames counted; ort = runtime.load(...).decode on "
               "CPUExecutionProvider;\nk eager = keras_impl.parts.run_part, k tf.fn = tf.function(model.<method>); "
               "keras* = the faster Keras path, named in the last column; ort/x > 1: onnxruntime is faster)")
    header = (f"{'mode':<18} {'batch':>5}" + "".join(f" {n:>9}" for n in GEN_COLUMNS)
              + f" {'ort/torch':>9} {'ort/keras*':>10}  keras*")
    out += [header, "-" * len(header)]
    for res in results:
        for gen in res["generation"]:
            fast = fastest_keras(gen["images_per_s"])
            for unit, div in (("", 1), (" (clips/s)", gen["frames_per_sample"])):
                if unit and div == 1:
                    continue
                ips = {n: v / div for n, v in gen["images_per_s"].items()}
                vals = "".join(f" {ips[n]:>9.0f}" for n in GEN_COLUMNS)
                out.append(f"{res['mode'] + unit:<18} {gen['batch']:>5}{vals} {ips['ort'] / ips['torch']:>9.2f} "
                           f"{ips['ort'] / ips[fast]:>10.2f}  {fast.removeprefix('k ')}")

    worst = max(((v, f"{r['mode']} training {fw}") for r in results for fw, v in r["training"]["rel_iqr"].items()),
                default=(0.0, "-"))
    worst = max([worst] + [(v, f"{r['mode']} generation b{g['batch']} {fw}") for r in results
                           for g in r["generation"] for fw, v in g["rel_iqr"].items()])
    out.append(f"\nnoise: largest inter-quartile range / median of a cell: {worst[0]:.0%} ({worst[1]})")
    diffs = [f"{r['mode']} {max(r['max_abs_diff_vs_torch'].values()):.1e}" for r in results]
    out.append("outputs vs torch, max |diff| over ort / keras: " + ", ".join(diffs))
    shares = [f"{r['mode']} {r['others_cpu_share']:.0%}" for r in results if r["others_cpu_share"] is not None]
    if shares:
        out.append("CPU used by other processes, per mode: " + ", ".join(shares))
    out += report_footer(env, wall_s)
    print("\n".join(out), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/vaegan.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default=",".join(TANH_MODES),
                        help=f"comma-separated tanh modes (default {','.join(TANH_MODES)})")
    parser.add_argument("--preset", default="tiny", choices=sorted(make_config(MODEL).presets),
                        help="config preset (default tiny)")
    parser.add_argument("--batch-size", type=int, default=16, help="training batch (default 16)")
    parser.add_argument("--gen-batches", default="1,16", help="generation batch sizes (default 1,16)")
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds per measurement (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first, >= 1 (default 3)")
    parser.add_argument("--min-sample-ms", type=float, default=50.0,
                        help="generation: repeat a call inside a sample until it lasts this long (default 50)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: the CPUs this process may use)")
    parser.add_argument("--out-json", default=None, help="also write every number (and raw samples) here")
    parser.add_argument("--log-level", default="INFO")
    opts = parser.parse_args(argv)
    opts.mode_list = [m.strip() for m in opts.modes.split(",") if m.strip()]
    bad = [m for m in opts.mode_list if m not in TANH_MODES]
    if bad or not opts.mode_list:
        parser.error(f"--modes: unknown {bad}; choose from {','.join(TANH_MODES)}")
    try:
        opts.gen_batches = [int(b) for b in opts.gen_batches.split(",")]
    except ValueError:
        parser.error(f"--gen-batches: not a comma-separated list of integers: {opts.gen_batches!r}")
    if min(opts.batch_size, opts.repeats, opts.warmup, *opts.gen_batches) < 1 or (opts.threads or 1) < 1:
        parser.error("--batch-size, --repeats, --warmup, --threads and --gen-batches must be >= 1")

    setup_logging(opts.log_level, ("runtime", "export", "absl", "tensorflow", "torch", "onnxscript"))
    torch.set_num_threads(opts.threads or cpu_count())
    env = framework_environment()
    log.info("environment: %s", env)
    idle = CpuMeter()
    time.sleep(1.0)
    env["others_cpu_share_before"] = idle.others()
    if env["others_cpu_share_before"] is not None and env["others_cpu_share_before"] > BUSY_WARNING:
        log.warning("other processes are using %.0f%% of the CPUs: timings will be distorted",
                    100 * env["others_cpu_share_before"])

    start = time.perf_counter()
    meter = CpuMeter()
    results = [bench_mode(mode, opts) for mode in opts.mode_list]
    wall_s = time.perf_counter() - start
    env["others_cpu_share_during"] = meter.others()
    print_report(results, opts, env, wall_s)
    if opts.out_json:
        payload = {"environment": env, "options": {k: v for k, v in vars(opts).items()}, "wall_s": wall_s,
                   "results": results}
        write_json(opts.out_json, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
