"""Benchmark training steps of any registered model: torch as shipped, channels_last and compiled, and Keras.

    python bench/train.py [--models MODEL,MODEL/VARIANT] [--preset tiny|seed] [--batch-size N]
                          [--contenders shipped,channels_last,compiled,keras] [--repeats 5] [--warmup 1]
                          [--settle-ms 60] [--min-sample-ms 50] [--seed 0] [--threads N] [--out-json PATH]

A target is ``MODEL`` or ``MODEL/*`` (every variant it registers in ``ModelSpec.variants``) or
``MODEL/VARIANT`` (the same syntax as ``bench/runtime.py``'s, without its ``:PRESET``);
the default is every registered model and variant at the tiny preset. Nothing here names a model.

Contenders (:data:`CONTENDERS`; ``--contenders`` picks and orders them), each a generic trainer
(``torch_impl.train.make_trainer`` / ``keras_impl.train.make_trainer``) with its
:class:`core.trainer_base.SpeedOptions` and the C allocator's setting (:mod:`core.allocator`),
each in its own worker process that loads only its framework: in one process, TensorFlow's idle
thread pool and heap doubled torch's CPU time on the 150x150 seed VAE (measured: channels_last 2.1
CPU-s a step beside Keras, 1.1 without). The parent only orders the steps and collects timings:

* ``shipped``        torch NCHW eager, glibc's default large-block handling: the trainer before
                     ``--memory-format`` existed;
* ``nchw+alloc``     the same with freed blocks retained (not in the default set: it splits the
                     next contender's gain between the allocator and the memory format);
* ``channels_last``  torch as the trainer now runs by default (channels_last, blocks retained);
* ``compiled``       the same with ``--compile`` (``torch.compile``; its compilation is in the warm-up);
* ``keras``          the Keras trainer as it runs by default (blocks retained, as its CLI does);
* ``keras_xla``      the Keras trainer with ``--compile`` (XLA; not in the default set).

All are built from the same config, the model's objective at its registered hyperparameters
(``core.cli.hyperparameter_defaults``, as the trainers' flags default) and the same ``--seed``, so
they start from core's identical initial weights; all step on one fixed random batch of the data
shape (``--batch-size``, default the model's ``ModelSpec.batch_size``).

Steps are grouped by what the objective's ``schedule(step)`` runs on them (``elbo``,
``critic``, ``critic+generator``, ...). Step indices are picked from the schedule so every kind
is timed equally often whatever the hyperparameters (a WGAN-GP with ``n_critic`` 5 gets as many
``critic+generator`` samples as ``critic`` ones). ``--warmup`` rounds of one step per kind come
first (they absorb Keras' ``tf.function`` tracing and torch.compile's compilation), then
``--repeats`` timed rounds, the contenders interleaved (order rotating every round). A kind's time
is the median of its samples; ``per step`` weighs the kinds by how often the schedule runs them
over the first ``SCHEDULE_SPAN`` steps. A sample of a step shorter than ``--min-sample-ms`` is the
mean of as many repeats of that step as fill it (counted from the warm-up), and the parent waits
``--settle-ms`` before every sample: both frameworks' thread pools keep spinning for a while after a
call (OpenMP's and TensorFlow's), which otherwise took CPU from the next contender's step (measured
on the 3-6 ms steps of the smallest seed models: in one process a Keras step took 2.2 and 5.4 ms,
interleaved right after torch's 5.2 and 11.3 ms). The process's CPU time (user and system, all threads) is
taken around every step too: ``sys`` is the system share of it, what page faults cost. The first
warm-up step's losses of every contender are compared with the first contender's (same weights,
batch and step inputs) as a sanity check. The CPU model, the ISA torch dispatches to and the CPU
other processes took are printed with the results.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import (  # noqa: E402
    CpuMeter, busy_note, cpu_count, cpu_isa, framework_environment, median, prepare_frameworks, rel_iqr,
    report_footer, rotated, setup_logging, write_json,
)

prepare_frameworks()  # before TensorFlow is imported

import importlib  # noqa: E402
import multiprocessing  # noqa: E402
import traceback  # noqa: E402

import numpy as np  # noqa: E402

from core.allocator import retain_freed_memory  # noqa: E402
from core.cli import hyperparameter_defaults  # noqa: E402
from core.registry import MODELS, sample_part  # noqa: E402
from core.trainer_base import SpeedOptions  # noqa: E402

log = logging.getLogger("bench.train")


@dataclass(frozen=True)
class Contender:
    """One way of training: a framework's trainer factory, its speed options, the allocator setting."""

    module: str  # the trainer module whose make_trainer builds it
    speed: SpeedOptions
    retain_memory: bool
    description: str


CONTENDERS: dict[str, Contender] = {
    "shipped": Contender("torch_impl.train", SpeedOptions("contiguous"), False, "torch NCHW eager, glibc default"),
    "nchw+alloc": Contender("torch_impl.train", SpeedOptions("contiguous"), True, "torch NCHW eager, blocks retained"),
    "channels_last": Contender("torch_impl.train", SpeedOptions("channels_last"), True, "torch default: channels_last"),
    "compiled": Contender("torch_impl.train", SpeedOptions("channels_last", compile=True), True,
                          "torch channels_last + torch.compile"),
    "keras": Contender("keras_impl.train", SpeedOptions(), True, "Keras default (tf.function)"),
    "keras_xla": Contender("keras_impl.train", SpeedOptions(compile=True), True, "Keras + jit_compile (XLA)"),
}
DEFAULT_CONTENDERS = ("shipped", "channels_last", "compiled", "keras")
#: the printed ratios: (name, numerator contender, denominator contender); > 1 means the denominator is faster
RATIOS = (("cl x", "shipped", "channels_last"), ("comp x", "shipped", "compiled"),
          ("k/cl", "keras", "channels_last"), ("k/comp", "keras", "compiled"))
#: the schedule is read over this many steps: which kinds of step exist and how often each runs
SCHEDULE_SPAN = 1000


def parse_targets(models: str) -> list[tuple[str, str]]:
    """``A,B/V`` -> [(A, its first variant), (B, V)]; a bare model: every variant."""
    out = []
    for item in (m.strip() for m in models.split(",")):
        if not item:
            continue
        name, _, variant = item.partition("/")
        if name not in MODELS:
            raise ValueError(f"unknown model {name!r}; registered: {','.join(sorted(MODELS))}")
        variants = MODELS[name].variants
        if variant and variant not in variants:
            raise ValueError(f"model {name!r} has no variant {variant!r}; it has {','.join(variants)}")
        out += [(name, v) for v in ([variant] if variant not in ("", "*") else variants)]
    return out


def target_label(model: str, variant: str) -> str:
    return model if list(MODELS[model].variants) == ["default"] else f"{model}/{variant}"


def data_batch(config, batch_size: int, seed: int) -> np.ndarray:
    """A fixed [0, 1] batch of the data shape: the generator part's output (one frame of it for a model
    that makes videos from images, whose registration says it trains on images)."""
    out = MODELS[config.model].parts(config)[sample_part(config)].outputs[0]
    shape = out.concrete_shape(batch_size)
    if out.kind == "video" and MODELS[config.model].data != "video":  # a video decoder trained on images
        shape = (shape[0], *shape[2:])
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def step_kinds(objective, span: int = SCHEDULE_SPAN) -> dict[str, list[int]]:
    """{kind: the step indices (0-based) in the first ``span`` steps whose schedule runs it};
    a kind is the ``+``-joined names of the updates the schedule runs on a step."""
    kinds: dict[str, list[int]] = {}
    for step in range(span):
        kinds.setdefault("+".join(u.name for u in objective.schedule(step)), []).append(step)
    return kinds


def cpu_s() -> tuple[float, float]:
    """(user, system) CPU seconds of this process so far, all threads."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def worker(name: str, model: str, variant: str, preset: str, seed: int, batch_size: int, threads: int,
           conn: Any) -> None:
    """One contender's process: build its trainer, then answer ``(step, calls)`` requests with
    (seconds, user CPU-s, system CPU-s per call, losses) until ``None``; an error is answered as a string."""
    c = CONTENDERS[name]
    try:
        if c.module.startswith("torch"):
            import torch

            torch.set_num_threads(threads)
        retain_freed_memory(c.retain_memory)
        spec = MODELS[model]
        config = spec.config_cls.preset(preset, **spec.variants[variant])
        hp = spec.objective.hyperparameters.from_dict(hyperparameter_defaults(model))
        trainer = importlib.import_module(c.module).make_trainer(config, spec.objective(config, hp), seed,
                                                                 SCHEDULE_SPAN, c.speed)
        batch = data_batch(config, batch_size, seed)
    except Exception as exc:  # noqa: BLE001 - reported in the table
        conn.send(f"build: {type(exc).__name__}: {exc}")
        return
    conn.send("ready")
    while (request := conn.recv()) is not None:
        step, calls = request
        try:
            u0, s0 = cpu_s()
            t = time.perf_counter()
            for _ in range(calls):
                losses = trainer.train_step(batch, step)
            dt = (time.perf_counter() - t) / calls
            u1, s1 = cpu_s()
            conn.send((dt, (u1 - u0) / calls, (s1 - s0) / calls, losses))
        except Exception as exc:  # noqa: BLE001 - e.g. a model torch.compile cannot take
            log.debug("%s", traceback.format_exc())
            conn.send(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200])


class Worker:
    """The parent's handle on one contender's process."""

    def __init__(self, name: str, model: str, variant: str, batch_size: int, opts: argparse.Namespace):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=worker, name=f"bench-{name}", daemon=True,
                                   args=(name, model, variant, opts.preset, opts.seed, batch_size,
                                         opts.threads or cpu_count(), child))
        self.process.start()
        self.ready = self.conn.recv()

    def step(self, step: int, calls: int = 1) -> Any:
        self.conn.send((step, calls))
        return self.conn.recv()

    def close(self) -> None:
        if self.process.is_alive():
            self.conn.send(None)
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()


def bench_target(model: str, variant: str, opts: argparse.Namespace) -> dict:
    spec = MODELS[model]
    label = target_label(model, variant)
    config = spec.config_cls.preset(opts.preset, **spec.variants[variant])
    hp = spec.objective.hyperparameters.from_dict(hyperparameter_defaults(model))
    batch_size = opts.batch_size or spec.batch_size
    batch = data_batch(config, batch_size, opts.seed)
    meter = CpuMeter()
    t0 = time.perf_counter()
    trainers, failed = {}, {}
    for name in opts.contenders:
        trainers[name] = Worker(name, model, variant, batch_size, opts)
        if trainers[name].ready != "ready":
            failed[name] = trainers[name].ready
    build_s = time.perf_counter() - t0
    meter = CpuMeter(tuple(w.process.pid for w in trainers.values()))
    kinds = step_kinds(spec.objective(config, hp))
    log.info("%s: batch %s, step kinds %s, %d warm-up + %d timed rounds", label, batch.shape,
             {k: len(v) for k, v in kinds.items()}, opts.warmup, opts.repeats)
    samples = {(n, k): [] for n in trainers for k in kinds}
    cpu = {n: [0.0, 0.0] for n in trainers}  # user, system over the timed steps
    first_losses: dict[str, dict[str, float]] = {}
    nonfinite = []
    warmup_s = dict.fromkeys(trainers, 0.0)
    calls = {(n, k): 1 for n in trainers for k in kinds}  # repeats per sample, set from the last warm-up round
    for r in range(opts.warmup + opts.repeats):
        for name in rotated(list(trainers), r):
            for kind, steps in kinds.items():
                if name in failed:
                    break
                step = steps[r % len(steps)]
                time.sleep(opts.settle_ms / 1e3)
                answer = trainers[name].step(step, calls[(name, kind)] if r >= opts.warmup else 1)
                if isinstance(answer, str):
                    failed[name] = answer
                    log.warning("%s %s: step failed: %s", label, name, answer)
                    break
                dt, user, system, losses = answer
                if r == 0 and kind == next(iter(kinds)):
                    first_losses[name] = losses
                if not all(math.isfinite(v) for v in losses.values()):
                    nonfinite.append(f"{name} step {step}")
                if r >= opts.warmup:
                    samples[(name, kind)].append(dt * 1e3)
                    cpu[name][0] += user
                    cpu[name][1] += system
                else:
                    warmup_s[name] += dt
                    again = trainers[name].step(step)  # timed once more after tracing / compiling
                    if not isinstance(again, str):
                        calls[(name, kind)] = max(1, math.ceil(opts.min_sample_ms / 1e3 / max(again[0], 1e-6)))
    others = meter.others()
    for w in trainers.values():
        w.close()
    ran = [n for n in trainers if n not in failed]
    share = {k: len(v) / SCHEDULE_SPAN for k, v in kinds.items()}
    ms = {n: {k: median(samples[(n, k)]) for k in kinds} for n in ran}
    for n in ran:
        ms[n]["per step"] = sum(share[k] * ms[n][k] for k in kinds)
    steps_timed = opts.repeats * len(kinds)
    cpu_per_step = {n: {"user_s": cpu[n][0] / steps_timed, "sys_s": cpu[n][1] / steps_timed} for n in ran}
    ref = next((n for n in opts.contenders if n in first_losses), None)
    loss_diff = {}
    for n, losses in first_losses.items():
        common = set(losses) & set(first_losses[ref])
        loss_diff[n] = max((abs(losses[k] - first_losses[ref][k]) for k in common), default=0.0)
    if nonfinite:
        log.warning("%s: non-finite losses at %s", label, ", ".join(nonfinite[:4]))
    return {
        "target": label, "model": model, "variant": variant, "batch": list(batch.shape),
        "config": json.loads(config.to_json()), "hyperparameters": hp.to_dict(),
        "parameters": config.parameter_count(), "build_s": build_s, "warmup_s": warmup_s, "kind_share": share,
        "ms": ms, "cpu_per_step": cpu_per_step, "failed": failed, "loss_reference": ref,
        "rel_iqr": {f"{n}/{k}": rel_iqr(s) for (n, k), s in samples.items() if s},
        "samples_ms": {f"{n}/{k}": s for (n, k), s in samples.items()},
        "first_step_loss_max_abs_diff": loss_diff, "nonfinite": nonfinite, "others_cpu_share": others,
    }


def print_report(results: list[dict], opts: argparse.Namespace, env: dict, wall_s: float) -> None:
    names = list(opts.contenders)
    ratios = [(label, a, b) for label, a, b in RATIOS if a in names and b in names]
    out = [f"\ntraining-step benchmark: preset {opts.preset}, median ms of {opts.repeats} interleaved rounds after "
           f"{opts.warmup} warm-up; per step = the kinds weighted by how often the schedule runs them",
           "contenders: " + "; ".join(f"{n} = {CONTENDERS[n].description}" for n in names),
           "ratios: 'cl x' / 'comp x' = shipped ms over channels_last / compiled ms (speed-up, > 1 faster); "
           "'k/cl' / 'k/comp' = Keras ms over channels_last / compiled ms (< 1: Keras faster)"]
    header = (f"{'target':<20} {'batch':<16} {'step':<18} {'share':>5} "
              + " ".join(f"{n[:13]:>13}" for n in names) + " " + " ".join(f"{r[0]:>7}" for r in ratios))
    out += [header, "-" * len(header)]
    for res in results:
        shown = [*res["kind_share"], "per step"] if len(res["kind_share"]) > 1 else list(res["kind_share"])
        for i, kind in enumerate(shown):
            share = f"{res['kind_share'][kind]:.0%}" if kind in res["kind_share"] else ""
            target, shape = (res["target"], "x".join(map(str, res["batch"]))) if not i else ("", "")
            cells = [f"{res['ms'][n][kind]:>13.1f}" if n in res["ms"] else f"{'failed':>13}" for n in names]
            rcells = [f"{res['ms'][a][kind] / res['ms'][b][kind]:>7.2f}" if a in res["ms"] and b in res["ms"]
                      else f"{'-':>7}" for _, a, b in ratios]
            out.append(f"{target:<20} {shape:<16} {kind:<18} {share:>5} " + " ".join(cells) + " " + " ".join(rcells))
        cpu = "  ".join(f"{n} {c['user_s'] + c['sys_s']:.2f} ({c['sys_s'] / max(c['user_s'] + c['sys_s'], 1e-9):.0%} sys)"
                        for n, c in res["cpu_per_step"].items())
        dl = ", ".join(f"{n} {d:.1e}" for n, d in res["first_step_loss_max_abs_diff"].items()
                       if n != res["loss_reference"])
        out.append(f"{'':<20} CPU-s/step: {cpu}")
        out.append(f"{'':<20} first-step |dloss| vs {res['loss_reference']}: {dl or '-'}; other processes "
                   f"{busy_note(res['others_cpu_share'])}; warm-up s: "
                   + ", ".join(f"{n} {s:.1f}" for n, s in res["warmup_s"].items()))
        for n, why in res["failed"].items():
            out.append(f"{'':<20} {n} failed: {why}")
    worst = max(((v, f"{r['target']} {key}") for r in results for key, v in r["rel_iqr"].items()), default=(0.0, "-"))
    out.append(f"\nnoise: largest inter-quartile range / median of a cell: {worst[0]:.0%} ({worst[1]})")
    bad = [r["target"] for r in results if r["nonfinite"]]
    if bad:
        out.append("non-finite losses: " + ", ".join(bad))
    out += report_footer(env, wall_s)
    print("\n".join(out), flush=True)


def parse_contenders(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONTENDERS]
    if unknown or not names:
        raise ValueError(f"unknown {','.join(unknown) or '(none given)'}; known: {','.join(CONTENDERS)}")
    return list(dict.fromkeys(names))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/train.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(sorted(MODELS)),
                        help="comma-separated MODEL (every variant) or MODEL/VARIANT (default: all registered)")
    parser.add_argument("--preset", default="tiny", choices=("tiny", "seed"), help="config preset (default tiny)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="training batch (default: each model's ModelSpec.batch_size)")
    parser.add_argument("--contenders", default=",".join(DEFAULT_CONTENDERS),
                        help=f"comma-separated, of {','.join(CONTENDERS)} (default {','.join(DEFAULT_CONTENDERS)})")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first, >= 1 (default 1)")
    parser.add_argument("--settle-ms", type=float, default=60.0,
                        help="pause before every sample, so the last contender's spinning threads stop (default 60)")
    parser.add_argument("--min-sample-ms", type=float, default=50.0,
                        help="a sample repeats its step until it lasts this long (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="initial weights, batch and step noise (default 0)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads in the torch workers (default: the CPUs this process may use)")
    parser.add_argument("--out-json", default=None, help="also write every number (and raw samples) here")
    parser.add_argument("--log-level", default="INFO")
    opts = parser.parse_args(argv)
    try:
        targets = parse_targets(opts.models)
    except ValueError as exc:
        parser.error(f"--models: {exc}")
    try:
        opts.contenders = parse_contenders(opts.contenders)
    except ValueError as exc:
        parser.error(f"--contenders: {exc}")
    if not targets:
        parser.error("--models: no targets")
    if min(opts.repeats, opts.warmup, opts.batch_size or 1, opts.threads or 1) < 1:
        parser.error("--repeats, --warmup, --batch-size and --threads must be >= 1")
    if opts.settle_ms < 0 or opts.min_sample_ms < 0:
        parser.error("--settle-ms and --min-sample-ms must be >= 0")

    setup_logging(opts.log_level, ("absl", "tensorflow", "torch"))
    env = framework_environment({"isa (torch dispatch; cpu flags)": cpu_isa()})
    log.info("environment: %s", env)
    start = time.perf_counter()
    meter = CpuMeter()
    results = [bench_target(model, variant, opts) for model, variant in targets]
    wall_s = time.perf_counter() - start
    shares = [r["others_cpu_share"] for r in results if r["others_cpu_share"] is not None]
    # the workers are other processes to this one's meter: each target's (workers excluded) instead
    env["others_cpu_share_during"] = sum(shares) / len(shares) if shares else meter.others()
    print_report(results, opts, env, wall_s)
    if opts.out_json:
        write_json(opts.out_json, {"environment": env, "options": vars(opts), "wall_s": wall_s, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
