"""Print every parity number the tests bound, measured in one run (for release notes).

    python bench/parity.py [--model conv_vae|vaegan]

torch vs Keras per part at the seed config and tiny preset (eval), ONNX via torch / via keras vs
its framework, and the runtime vs torch decoding spec noise; for vaegan, each of the four ParamTanh modes.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import prepare_frameworks  # noqa: E402

prepare_frameworks()

import numpy as np  # noqa: E402
import torch  # noqa: E402

import keras_impl  # noqa: E402
import torch_impl  # noqa: E402
from export.pipeline import export_checkpoint  # noqa: E402
from export.validation import random_inputs  # noqa: E402
from keras_impl.checkpoint import load_tensors  # noqa: E402
from keras_impl.parts import run_part as keras_run  # noqa: E402
from core.noise import latents  # noqa: E402
from core.models.vaegan import TANH_MODES  # noqa: E402
from core.registry import MODELS, get_model_spec, sample_part  # noqa: E402
from torch_impl.checkpoint import model_tensors  # noqa: E402
from torch_impl.parts import run_part as torch_run  # noqa: E402


def randomize_bn(model):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


def variants(model: str) -> list[dict]:
    """Config overrides to measure: every ParamTanh mode for vaegan, the config itself otherwise."""
    if model == "vaegan":
        return [{"tanh_mode": mode} for mode in TANH_MODES]
    return [{}]


def measure(model: str, overrides: dict, rows: list) -> None:
    label = f" {overrides['tanh_mode']}" if overrides else ""
    for preset in ("seed", "tiny"):
        torch.manual_seed(0)
        tm = randomize_bn(torch_impl.build(model, preset=preset, **overrides))
        km = load_tensors(keras_impl.build(model, config=tm.config), model_tensors(tm))
        for name, part in get_model_spec(model).parts(tm.config).items():
            x = random_inputs(part, 4, seed=1)
            diff = max(float(np.abs(a - b).max()) for a, b in zip(torch_run(tm, name, *x), keras_run(km, name, *x)))
            rows.append((f"torch vs keras ({preset}{label})", name, diff))
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "ckpt.safetensors"
        torch_impl.save_model(tm, ckpt)
        for via in ("torch", "keras"):
            with contextlib.redirect_stdout(io.StringIO()):
                reports = export_checkpoint(ckpt, Path(tmp) / via, via=via)
            for r in reports:
                rows.append((f"onnx via {via} vs {via} (tiny{label})", r.part, r.max_abs_diff))
        import runtime

        session = runtime.load(Path(tmp) / "torch")
        z = latents(16, tm.config.latent_dim, 0)
        part = sample_part(tm.config)
        diff = float(np.abs(session.decode(z) - torch_run(tm, part, z)[0]).max())
        rows.append((f"runtime vs torch (tiny{label})", part, diff))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="conv_vae", choices=sorted(MODELS))
    args = parser.parse_args()
    rows: list[tuple[str, str, float]] = []
    for overrides in variants(args.model):
        measure(args.model, overrides, rows)
    print(f"\n{'comparison':<44} {'part':<16} {'max |diff|':>12}")
    for what, part, diff in rows:
        print(f"{what:<44} {part:<16} {diff:>12.3e}")


if __name__ == "__main__":
    main()
