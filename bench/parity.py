"""Print every parity number the tests bound, measured in one run (for release notes).

    python bench/parity.py [--model conv_vae]

torch vs Keras per part at the seed config and tiny preset (eval), ONNX via torch / via keras vs
its framework, and the runtime vs torch decoding spec noise.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
try:  # see README "Known issue": triton must load before TensorFlow
    import triton  # noqa: F401
except ImportError:
    pass

import numpy as np  # noqa: E402
import torch  # noqa: E402

import keras_impl  # noqa: E402
import torch_impl  # noqa: E402
from export.onnx import export_checkpoint, random_inputs  # noqa: E402
from keras_impl.checkpoint import load_tensors  # noqa: E402
from keras_impl.parts import run_part as keras_run  # noqa: E402
from spec.noise import latents  # noqa: E402
from spec.registry import get_model_spec  # noqa: E402
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="conv_vae")
    args = parser.parse_args()
    rows = []
    for preset in ("seed", "tiny"):
        torch.manual_seed(0)
        tm = randomize_bn(torch_impl.build(args.model, preset=preset))
        km = load_tensors(keras_impl.build(args.model, config=tm.config), model_tensors(tm))
        for name, part in get_model_spec(args.model).parts(tm.config).items():
            x = random_inputs(part, 4, seed=1)
            diff = max(float(np.abs(a - b).max()) for a, b in zip(torch_run(tm, name, *x), keras_run(km, name, *x)))
            rows.append((f"torch vs keras ({preset})", name, diff))
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "ckpt.safetensors"
        torch_impl.save_model(tm, ckpt)
        for via in ("torch", "keras"):
            for r in export_checkpoint(ckpt, Path(tmp) / via, via=via):
                rows.append((f"onnx via {via} vs {via} (tiny)", r.part, r.max_abs_diff))
        import runtime

        session = runtime.load(Path(tmp) / "torch")
        z = latents(16, tm.config.latent_dim, 0)
        got = session.decode(z)
        rows.append(("runtime vs torch decode (tiny)", "decoder", float(np.abs(got - torch_run(tm, "decoder", z)[0]).max())))
    print(f"\n{'comparison':<34} {'part':<10} {'max |diff|':>12}")
    for what, part, diff in rows:
        print(f"{what:<34} {part:<10} {diff:>12.3e}")


if __name__ == "__main__":
    main()
