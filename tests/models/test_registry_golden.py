"""Golden outputs (timm's habit) for every registered model x variant: a silent numerical change in
either framework, or in core's initial weights, fails here.

``tests/golden/<case>_tiny.safetensors`` holds fixed inputs of every part (latents, images) and
the outputs torch produced for them at the tiny preset with the weights ``initialize(model, seed=0)``
draws in ``core.init`` (weights are not stored: core draws them). Both frameworks, each initialised
by its own ``initialize``, must reproduce them to 1e-5.

Regenerate (only after an intended numerical change, or for a new model)::

    AGE_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/models/test_registry_golden.py -p no:cacheprovider -q
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.models.registry_cases import Case, cases, compare, part_inputs, record, run_parts

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
TOL = 1e-5
REGEN = os.environ.get("AGE_REGEN_GOLDEN") == "1"
HOW = "AGE_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/models/test_registry_golden.py -p no:cacheprovider"


def golden_path(case: Case) -> Path:
    return GOLDEN / f"{case.id}_tiny.safetensors"


def _inputs(case: Case, parts) -> dict[str, list[np.ndarray]]:
    return {name: part_inputs(part, 2, seed=(99, i)) for i, (name, part) in enumerate(sorted(parts.items()))}


def _flat(inputs, outputs) -> dict[str, np.ndarray]:
    flat = {f"{p}.in.{i}": np.ascontiguousarray(x) for p, xs in inputs.items() for i, x in enumerate(xs)}
    flat.update({f"{p}.out.{k}": np.ascontiguousarray(v) for p, outs in outputs.items() for k, v in outs.items()})
    return flat


@pytest.mark.parametrize("framework", ["torch", "keras"])
@cases()
def test_outputs_match_the_golden_file(case: Case, framework: str):
    from safetensors.numpy import load_file, save_file

    impl = pytest.importorskip(f"{framework}_impl")
    init = __import__(f"{framework}_impl.init", fromlist=["initialize"])
    run_part = __import__(f"{framework}_impl.parts", fromlist=["run_part"]).run_part
    config = case.config("tiny")
    model = init.initialize(impl.build(case.model, config=config), 0)
    if framework == "torch":
        model.eval()
    parts = case.spec.parts(config)
    inputs = _inputs(case, parts)
    got = _flat(inputs, run_parts(run_part, model, parts, inputs))
    path = golden_path(case)
    if REGEN and framework == "torch":
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(got, str(path), metadata={"model": case.model, "variant": case.variant, "preset": "tiny",
                                            "weights": "initialize(model, seed=0)"})
    if not path.is_file():
        pytest.fail(f"{case.id}: no golden file {path.relative_to(GOLDEN.parents[1])}; generate it with {HOW}",
                    pytrace=False)
    golden = load_file(str(path))
    for key in (k for k in got if ".in." in k):
        assert key in golden and np.array_equal(golden[key], got[key]), \
            f"{case.id}: golden input {key} changed (the inputs' seeds or shapes moved); regenerate with {HOW}"
    want = {k: v for k, v in golden.items() if ".out." in k}
    record(case, f"golden {framework}", compare({k: v for k, v in got.items() if ".out." in k}, want, TOL))
