"""Print every parity number the tests bound, measured in one run (for release notes).

    python bench/parity.py [--models conv_vae,vaegan] [--presets tiny,seed] [--seed 0]
                           [--seed-limit 20000000]

Every registered model (``core.registry.MODELS``; ``--models`` picks some) times every variant it
registers (``ModelSpec.variants``: config overrides, e.g. one per ParamTanh mode) - nothing here
names a model. Per model / variant / part the table shows max |diff| of:

* ``keras <preset>``: torch vs Keras in eval mode on the same random inputs
  (``export.validation.random_inputs``, batch 4), at every ``--presets`` preset. Seed configs above
  ``--seed-limit`` parameters (``config.parameter_count()``) are skipped with a note;
* ``onnx/torch``, ``onnx/keras``: the tiny model exported to ONNX via torch and via Keras
  (``export.pipeline.export_checkpoint``) vs the framework it was exported from (the exporter's
  own check: batch 3 against a batch-2 trace);
* ``runtime``: ``runtime.load`` on the via-torch export vs torch, on the tiny model. A model with
  a prior decodes 16 standard-normal latents (``bench.common.part_latents``) through the generator part (``session.decode``);
  a model whose prior is ``"none"`` (an autoencoder: nothing to generate from) reconstructs 8
  random images instead, encoder -> generator part, on a row of its own (``encoder->decoder``:
  ``session.encode_latents`` then ``session.decode`` in float, and ``session.reconstruct``'s
  uint8 output against the torch float output rescaled the same way, in uint8 levels).

Weights: ``torch_impl.init.initialize(model, --seed)`` (core's framework-neutral initial weights),
with BatchNorm running statistics then moved away from 0 / 1 (a fresh mean 0 / var 1 makes eval
BatchNorm nearly the identity, which would test little), copied to Keras through the checkpoint
bridge (``torch_impl.checkpoint.model_tensors`` -> ``keras_impl.checkpoint.load_tensors``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import cpu_count, cpu_model, part_latents, prepare_frameworks  # noqa: E402

prepare_frameworks()

import numpy as np  # noqa: E402
import torch  # noqa: E402

import keras_impl  # noqa: E402
import runtime  # noqa: E402
import torch_impl  # noqa: E402
from core.errors import ExportError  # noqa: E402
from core.registry import ENCODER_PART, MODELS, runtime_facts, sample_part  # noqa: E402
from export.pipeline import export_checkpoint  # noqa: E402
from export.validation import random_inputs  # noqa: E402
from keras_impl.checkpoint import load_tensors as keras_load_tensors  # noqa: E402
from keras_impl.parts import run_part as keras_run  # noqa: E402
from torch_impl.checkpoint import load_tensors as torch_load_tensors, model_tensors  # noqa: E402
from torch_impl.init import initialize  # noqa: E402
from torch_impl.parts import run_part as torch_run  # noqa: E402

PRESETS = ("tiny", "seed")
#: seed configs above this many parameters are skipped (slow on a few CPU cores)
SEED_PARAMETER_LIMIT = 30_000_000
COLUMNS = ("keras tiny", "keras seed", "onnx/torch", "onnx/keras", "runtime")


def lively_batchnorm(tensors: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """BatchNorm running statistics (canonical ``*.running_mean`` / ``*.running_var``) drawn in
    [-0.5, 0.5] / [0.5, 2.0]; every other tensor as given."""
    rng = np.random.default_rng(seed + 1000)
    out = {}
    for name in sorted(tensors):
        t = tensors[name]
        if name.endswith("running_mean"):
            t = rng.uniform(-0.5, 0.5, t.shape).astype(t.dtype)
        elif name.endswith("running_var"):
            t = rng.uniform(0.5, 2.0, t.shape).astype(t.dtype)
        out[name] = t
    return out


def twins(model: str, config, seed: int):
    """A torch model with core's initial weights of ``seed`` (BatchNorm statistics made lively)
    and its Keras twin holding the same tensors; torch in eval mode."""
    tm = initialize(torch_impl.build(model, config=config), seed)
    tensors = lively_batchnorm(model_tensors(tm), seed)
    torch_load_tensors(tm, tensors).eval()
    km = keras_load_tensors(keras_impl.build(model, config=config), tensors)
    return tm, km


def max_abs(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def eval_parity(tm, km, parts) -> dict[str, float]:
    """{part: max |diff| over its outputs}, torch vs Keras on the same random inputs (batch 4)."""
    out = {}
    for name, part in parts.items():
        x = random_inputs(part, 4, seed=1)
        out[name] = max(max_abs(a, b) for a, b in zip(torch_run(tm, name, *x), keras_run(km, name, *x)))
    return out


def runtime_parity(tm, spec, config, onnx_dir: Path, cells: dict, notes: list[str], label: str) -> None:
    """Runtime vs torch: generation for a model with a prior, reconstruction otherwise."""
    session = runtime.load(onnx_dir, providers="cpu")
    facts = runtime_facts(config)
    if spec.prior != "none":
        part = sample_part(config)
        z = part_latents(config, part, 16, 0)
        cells.setdefault(part, {})["runtime"] = max_abs(session.decode(z), torch_run(tm, part, z)[0])
        return
    if not (facts["reconstructs"] and hasattr(session, "reconstruct")):
        notes.append(f"{label}: prior 'none' and no reconstruction, runtime not compared")
        return
    part = sample_part(config)
    enc = spec.parts(config)[ENCODER_PART]
    x = np.random.default_rng(2).random(enc.inputs[0].concrete_shape(8), dtype=np.float32)
    want = torch_run(tm, part, torch_run(tm, ENCODER_PART, x)[0])[0]
    cell = cells.setdefault(f"{ENCODER_PART}->{part}", {})
    cell["runtime"] = max_abs(session.decode(session.encode_latents(x)), want)
    levels = max_abs(session.reconstruct(x).astype(np.int16), session.to_uint8(want).astype(np.int16))
    notes.append(f"{label}: runtime reconstruct (uint8) vs torch encoder->decoder: max {levels:.0f} level(s)")


def measure(model: str, variant: str, overrides: dict, presets: list[str], opts, notes: list[str]) -> dict:
    """{part: {column: max |diff| or a short string}} for one model x variant."""
    spec = MODELS[model]
    label = model if list(spec.variants) == ["default"] else f"{model}/{variant}"
    cells: dict[str, dict[str, object]] = {}
    tiny = None
    for preset in presets:
        config = spec.config_cls.preset(preset, **overrides)
        parts = spec.parts(config)
        n = config.parameter_count()
        if preset != "tiny" and n > opts.seed_limit:
            notes.append(f"{label}: {preset} preset skipped ({n / 1e6:.1f}M parameters > {opts.seed_limit / 1e6:.0f}M)")
            for name in parts:
                cells.setdefault(name, {})[f"keras {preset}"] = "skip"
            continue
        t0 = time.perf_counter()
        tm, km = twins(model, config, opts.seed)
        for name, diff in eval_parity(tm, km, parts).items():
            cells.setdefault(name, {})[f"keras {preset}"] = diff
        print(f"  {label} {preset}: torch vs keras in {time.perf_counter() - t0:.1f}s ({n:,} parameters)",
              file=sys.stderr, flush=True)
        if preset == "tiny":
            tiny = (tm, config)
        else:
            del tm, km
    if tiny is None:
        notes.append(f"{label}: no tiny preset measured, export and runtime not compared")
        return cells
    tm, config = tiny
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_parity_") as tmp:
        ckpt = torch_impl.save_model(tm, Path(tmp) / "ckpt.safetensors")
        for via in ("torch", "keras"):
            try:
                with contextlib.redirect_stdout(io.StringIO()):  # export prints its own table
                    reports = export_checkpoint(ckpt, Path(tmp) / via, via=via)
            except ExportError as exc:
                notes.append(f"{label}: export via {via} failed: {exc}")
                for name in spec.parts(config):
                    cells.setdefault(name, {})[f"onnx/{via}"] = "FAIL"
                continue
            for r in reports:
                cells.setdefault(r.part, {})[f"onnx/{via}"] = r.max_abs_diff
        if (Path(tmp) / "torch").is_dir():
            runtime_parity(tm, spec, config, Path(tmp) / "torch", cells, notes, label)
        else:
            notes.append(f"{label}: no via-torch export, runtime not compared")
    print(f"  {label} tiny: export + runtime in {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    return cells


def fmt(value: object) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else f"{value:.2e}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/parity.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(sorted(MODELS)),
                        help="comma-separated registered models (default: all)")
    parser.add_argument("--presets", default=",".join(PRESETS), help="comma-separated presets (default tiny,seed)")
    parser.add_argument("--seed", type=int, default=0, help="initial-weights seed (default 0)")
    parser.add_argument("--seed-limit", type=int, default=SEED_PARAMETER_LIMIT,
                        help=f"skip non-tiny presets above this many parameters (default {SEED_PARAMETER_LIMIT:,})")
    opts = parser.parse_args(argv)
    models = [m.strip() for m in opts.models.split(",") if m.strip()]
    presets = [p.strip() for p in opts.presets.split(",") if p.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        parser.error(f"--models: unknown {unknown}; registered: {','.join(sorted(MODELS))}")
    bad = [p for p in presets if p not in PRESETS]
    if bad or not presets:
        parser.error(f"--presets: unknown {bad}; choose from {','.join(PRESETS)}")

    torch.manual_seed(opts.seed)
    start = time.perf_counter()
    rows: list[tuple[str, str, str, dict]] = []
    notes: list[str] = []
    for model in models:
        for variant, overrides in MODELS[model].variants.items():
            cells = measure(model, variant, dict(overrides), presets, opts, notes)
            rows += [(model, variant, part, cell) for part, cell in cells.items()]

    columns = [c for c in COLUMNS if not c.startswith("keras ") or c.removeprefix("keras ") in presets]
    print(f"\nparity: max |diff| (float32 outputs); weights: core init seed {opts.seed}, BatchNorm statistics lively")
    print("keras <preset>: torch vs Keras eval; onnx/<fw>: ONNX export via <fw> vs <fw> (tiny); "
          "runtime: runtime.load (CPU) vs torch (tiny)\n")
    header = f"{'model':<10} {'variant':<12} {'part':<16}" + "".join(f" {c:>11}" for c in columns)
    print(header)
    print("-" * len(header))
    for model, variant, part, cell in rows:
        print(f"{model:<10} {variant:<12} {part:<16}" + "".join(f" {fmt(cell.get(c)):>11}" for c in columns))
    worst = max((v for *_, cell in rows for v in cell.values() if isinstance(v, float)), default=0.0)
    print(f"\nlargest difference: {worst:.2e}")
    for note in notes:
        print(f"note: {note}")
    print(f"cpu: {cpu_model()} ({cpu_count()} CPUs), torch {torch.__version__}; "
          f"wall time {time.perf_counter() - start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
