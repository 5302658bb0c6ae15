"""Golden outputs (timm's habit): a silent numerical change in either framework fails here.

``tests/golden/conv_vae_tiny.safetensors`` holds deterministic weights' seed-derived inputs and the
outputs every part produced when the file was made. Weights are not stored: they are derived
from NumPy's seeded generator (:func:`golden_weights`), so the file stays small. Regenerate
(only after an intended numerical change) with ``python tests/parity/test_golden.py --update``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "conv_vae_tiny.safetensors"
TOL = 1e-5


def golden_weights(shapes: dict[str, tuple[int, ...]], seed: int = 1234) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for name in sorted(shapes):
        shape = shapes[name]
        if name.endswith("running_var"):
            out[name] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        elif name.endswith("running_mean"):
            out[name] = rng.uniform(-0.5, 0.5, shape).astype(np.float32)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            out[name] = (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)
    return out


def golden_case():
    import torch_impl
    from core.registry import get_model_spec
    from torch_impl.checkpoint import expected_shapes, load_tensors

    model = torch_impl.build("conv_vae", preset="tiny")
    load_tensors(model, golden_weights(expected_shapes(model)))
    model.eval()
    parts = get_model_spec("conv_vae").parts(model.config)
    rng = np.random.default_rng(99)
    inputs = {
        f"{p}.{t.name}": (rng.random(t.concrete_shape(2), dtype=np.float32) if t.kind == "image"
                          else rng.standard_normal(t.concrete_shape(2), dtype=np.float32))
        for p, part in parts.items() for t in part.inputs
    }
    return model, parts, inputs


def _outputs(run_part, model, parts, inputs) -> dict[str, np.ndarray]:
    out = {}
    for p, part in parts.items():
        results = run_part(model, p, *[inputs[f"{p}.{t.name}"] for t in part.inputs])
        out.update({f"{p}.out.{t.name}": r for t, r in zip(part.outputs, results)})
    return out


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_outputs_match_the_golden_file(framework):
    from safetensors.numpy import load_file

    golden = load_file(str(GOLDEN))
    model, parts, inputs = golden_case()
    for key, value in inputs.items():
        np.testing.assert_array_equal(golden[key], value, err_msg=f"golden input {key} changed")
    if framework == "torch":
        from torch_impl.parts import run_part
    else:
        import keras_impl
        from keras_impl.checkpoint import load_tensors
        from keras_impl.parts import run_part
        from torch_impl.checkpoint import model_tensors

        model = load_tensors(keras_impl.build("conv_vae", config=model.config), model_tensors(model))
    got = _outputs(run_part, model, parts, inputs)
    assert set(got) == {k for k in golden if ".out." in k}
    for key, value in got.items():
        diff = float(np.max(np.abs(value - golden[key])))
        assert diff <= TOL, f"{framework} {key}: max |diff| {diff:.3e} vs golden"


if __name__ == "__main__" and "--update" in sys.argv:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from safetensors.numpy import save_file

    from torch_impl.parts import run_part

    model, parts, inputs = golden_case()
    save_file({**inputs, **_outputs(run_part, model, parts, inputs)}, str(GOLDEN))
    print(f"wrote {GOLDEN}")
