"""Benchmark training steps of any registered model in both frameworks, side by side.

    python bench/training.py [--models conv_vae,vaegan/time] [--preset tiny|seed] [--batch-size N]
                             [--repeats 5] [--warmup 1] [--seed 0] [--threads N] [--out-json PATH]

A target is ``MODEL`` or ``MODEL/*`` (every variant it registers in ``ModelSpec.variants``) or
``MODEL/VARIANT`` (the same syntax as ``bench/runtime.py``'s, without its ``:PRESET``);
the default is every registered model and variant at the tiny preset. Nothing here names a model.

For each target, the generic trainers (``torch_impl.train.make_trainer`` and
``keras_impl.train.make_trainer``) are built from the same config, the model's objective at its
registered hyperparameters (``core.cli.hyperparameter_defaults``, as the trainers' flags default)
and the same ``--seed``, so both start from core's identical initial weights; both step on one
fixed random batch of the data shape (``--batch-size``, default the model's
``ModelSpec.batch_size``).

Steps are grouped by what the objective's ``schedule(step)`` runs on them (``elbo``,
``critic``, ``critic+generator``, ...). Step indices are picked from the schedule so every kind
is timed equally often whatever the hyperparameters (a WGAN-GP with ``n_critic`` 5 gets as many
``critic+generator`` samples as ``critic`` ones). ``--warmup`` rounds of one step per kind come
first (they absorb Keras' ``tf.function`` tracing), then ``--repeats`` timed rounds, the
frameworks interleaved (order rotating every round). A kind's time is the median of its samples;
``per step`` weighs the kinds by how often the schedule runs them over the first
``SCHEDULE_SPAN`` steps. The first warm-up step's losses are compared across frameworks (same
weights, batch and step inputs) as a sanity check. The CPU model and the ISA torch dispatches to
are printed with the results.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import (  # noqa: E402
    CpuMeter, cpu_count, cpu_isa, framework_environment, median, prepare_frameworks, rel_iqr,
    report_footer, rotated, setup_logging, write_json,
)

prepare_frameworks()  # before TensorFlow is imported

import numpy as np  # noqa: E402
import torch  # noqa: E402

from core.cli import hyperparameter_defaults  # noqa: E402
from core.registry import MODELS, sample_part  # noqa: E402
from keras_impl.train import make_trainer as keras_trainer  # noqa: E402  (imports TensorFlow + Keras)
from torch_impl.train import make_trainer as torch_trainer  # noqa: E402

log = logging.getLogger("bench.training")

FACTORIES = {"torch": torch_trainer, "keras": keras_trainer}
#: the schedule is read over this many steps: which kinds of step exist and how often each runs
SCHEDULE_SPAN = 1000


def parse_targets(models: str) -> list[tuple[str, str]]:
    """``conv_vae,vaegan/time`` -> [(conv_vae, default), (vaegan, time)]; a bare model: every variant."""
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
    """A fixed [0, 1] batch of the data shape: the generator part's output, one frame of a video."""
    out = MODELS[config.model].parts(config)[sample_part(config)].outputs[0]
    shape = out.concrete_shape(batch_size)
    if out.kind == "video":  # a video generator trains on images
        shape = (shape[0], *shape[2:])
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def step_kinds(objective, span: int = SCHEDULE_SPAN) -> dict[str, list[int]]:
    """{kind: the step indices (0-based) in the first ``span`` steps whose schedule runs it};
    a kind is the ``+``-joined names of the updates the schedule runs on a step."""
    kinds: dict[str, list[int]] = {}
    for step in range(span):
        kinds.setdefault("+".join(u.name for u in objective.schedule(step)), []).append(step)
    return kinds


def bench_target(model: str, variant: str, opts: argparse.Namespace) -> dict:
    spec = MODELS[model]
    label = target_label(model, variant)
    config = spec.config_cls.preset(opts.preset, **spec.variants[variant])
    hp = spec.objective.hyperparameters.from_dict(hyperparameter_defaults(model))
    batch_size = opts.batch_size or spec.batch_size
    batch = data_batch(config, batch_size, opts.seed)
    meter = CpuMeter()
    t0 = time.perf_counter()
    trainers = {fw: make(config, spec.objective(config, hp), opts.seed, SCHEDULE_SPAN) for fw, make in FACTORIES.items()}
    build_s = time.perf_counter() - t0
    kinds = step_kinds(trainers["torch"].objective)
    log.info("%s: batch %s, step kinds %s, %d warm-up + %d timed rounds", label, batch.shape,
             {k: len(v) for k, v in kinds.items()}, opts.warmup, opts.repeats)
    samples = {(fw, k): [] for fw in trainers for k in kinds}
    first_losses: dict[str, dict[str, float]] = {}
    nonfinite = []
    for r in range(opts.warmup + opts.repeats):
        for fw in rotated(list(trainers), r):
            for kind, steps in kinds.items():
                step = steps[r % len(steps)]
                t = time.perf_counter()
                losses = trainers[fw].train_step(batch, step)
                dt = time.perf_counter() - t
                if r == 0 and kind == next(iter(kinds)):
                    first_losses[fw] = losses
                if not all(math.isfinite(v) for v in losses.values()):
                    nonfinite.append(f"{fw} step {step}")
                if r >= opts.warmup:
                    samples[(fw, kind)].append(dt * 1e3)
    share = {k: len(v) / SCHEDULE_SPAN for k, v in kinds.items()}
    ms = {fw: {k: median(samples[(fw, k)]) for k in kinds} for fw in trainers}
    for fw in trainers:
        ms[fw]["per step"] = sum(share[k] * ms[fw][k] for k in kinds)
    common = set(first_losses["torch"]) & set(first_losses["keras"])
    loss_diff = max((abs(first_losses["torch"][k] - first_losses["keras"][k]) for k in common), default=0.0)
    if nonfinite:
        log.warning("%s: non-finite losses at %s", label, ", ".join(nonfinite[:4]))
    return {
        "target": label, "model": model, "variant": variant, "batch": list(batch.shape),
        "config": json.loads(config.to_json()), "hyperparameters": hp.to_dict(),
        "parameters": config.parameter_count(), "build_s": build_s, "kind_share": share, "ms": ms,
        "rel_iqr": {f"{fw}/{k}": rel_iqr(s) for (fw, k), s in samples.items()},
        "samples_ms": {f"{fw}/{k}": s for (fw, k), s in samples.items()},
        "first_step_loss_max_abs_diff": loss_diff, "nonfinite": nonfinite, "others_cpu_share": meter.others(),
    }


def print_report(results: list[dict], opts: argparse.Namespace, env: dict, wall_s: float) -> None:
    out = [f"\ntraining-step benchmark: preset {opts.preset}, median of {opts.repeats} interleaved rounds after "
           f"{opts.warmup} warm-up; per step = the kinds weighted by how often the schedule runs them",
           "(keras/torch < 1: Keras is faster; |dloss| = largest loss difference on the first step, same weights)"]
    header = (f"{'target':<20} {'batch':<18} {'step':<22} {'share':>6} {'torch ms':>9} {'keras ms':>9} "
              f"{'keras/torch':>11} {'|dloss|':>8}")
    out += [header, "-" * len(header)]
    for res in results:
        shown = [*res["kind_share"], "per step"] if len(res["kind_share"]) > 1 else list(res["kind_share"])
        for i, kind in enumerate(shown):
            t, k = res["ms"]["torch"][kind], res["ms"]["keras"][kind]
            share = f"{res['kind_share'][kind]:.0%}" if kind in res["kind_share"] else ""
            target, shape, dloss = res["target"], "x".join(map(str, res["batch"])), res["first_step_loss_max_abs_diff"]
            if i:
                target = shape = ""
            out.append(f"{target:<20} {shape:<18} {kind:<22} {share:>6} {t:>9.1f} {k:>9.1f} {k / t:>11.2f} "
                       f"{f'{dloss:.1e}' if not i else '':>8}")
    worst = max(((v, f"{r['target']} {key}") for r in results for key, v in r["rel_iqr"].items()), default=(0.0, "-"))
    out.append(f"\nnoise: largest inter-quartile range / median of a cell: {worst[0]:.0%} ({worst[1]})")
    bad = [r["target"] for r in results if r["nonfinite"]]
    if bad:
        out.append("non-finite losses: " + ", ".join(bad))
    out += report_footer(env, wall_s)
    print("\n".join(out), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/training.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(sorted(MODELS)),
                        help="comma-separated MODEL (every variant) or MODEL/VARIANT (default: all registered)")
    parser.add_argument("--preset", default="tiny", choices=("tiny", "seed"), help="config preset (default tiny)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="training batch (default: each model's ModelSpec.batch_size)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first, >= 1 (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="initial weights, batch and step noise (default 0)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: the CPUs this process may use)")
    parser.add_argument("--out-json", default=None, help="also write every number (and raw samples) here")
    parser.add_argument("--log-level", default="INFO")
    opts = parser.parse_args(argv)
    try:
        targets = parse_targets(opts.models)
    except ValueError as exc:
        parser.error(f"--models: {exc}")
    if not targets:
        parser.error("--models: no targets")
    if min(opts.repeats, opts.warmup, opts.batch_size or 1, opts.threads or 1) < 1:
        parser.error("--repeats, --warmup, --batch-size and --threads must be >= 1")

    setup_logging(opts.log_level, ("absl", "tensorflow", "torch"))
    torch.set_num_threads(opts.threads or cpu_count())
    env = framework_environment({"isa (torch dispatch; cpu flags)": cpu_isa()})
    log.info("environment: %s", env)
    start = time.perf_counter()
    meter = CpuMeter()
    results = [bench_target(model, variant, opts) for model, variant in targets]
    wall_s = time.perf_counter() - start
    env["others_cpu_share_during"] = meter.others()
    print_report(results, opts, env, wall_s)
    if opts.out_json:
        write_json(opts.out_json, {"environment": env, "options": vars(opts), "wall_s": wall_s, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
