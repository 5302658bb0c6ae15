"""The built-in digits feature network (``core/metrics/networks/digits.onnx``, made by
``scripts/digits_features.py``): it loads in onnxruntime alone, its recorded held-out accuracy is
what the shipped file scores on the held-out scans, and the script reproduces its weights from the
seed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ROOT / "core" / "metrics" / "networks"


def _script():
    spec = importlib.util.spec_from_file_location("digits_features", ROOT / "scripts" / "digits_features.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_shipped_network_scores_its_recorded_heldout_accuracy():
    info = json.loads((FEATURES / "digits.json").read_text())
    assert info["network"] == "digits" and info["heldout_accuracy"] >= 0.95
    script = _script()
    _, _, x_held, y_held = script.load_digits_split(info["seed"])
    assert len(y_held) == info["heldout_images"]
    session = _session(FEATURES / "digits.onnx")
    features, logits = session.run(["features", "logits"], {"image": x_held})
    assert features.shape == (len(x_held), info["outputs"]["features"]) and logits.shape == (len(x_held), 10)
    assert np.all(features >= 0)  # after the ReLU
    assert float(np.mean(logits.argmax(1) == y_held)) == pytest.approx(info["heldout_accuracy"], abs=1e-9)


def test_split_is_stratified_and_disjoint():
    script = _script()
    x_train, y_train, x_held, y_held = script.load_digits_split(0)
    assert len(x_train) + len(x_held) == 1797
    counts = np.bincount(y_held, minlength=10) / np.bincount(np.concatenate([y_train, y_held]), minlength=10)
    assert np.all(np.abs(counts - 0.2) < 0.02)
    train_rows = {row.tobytes() for row in x_train}
    assert sum(row.tobytes() in train_rows for row in x_held) <= 2  # duplicate scans exist in the UCI set


def test_script_reproduces_its_weights_from_the_seed(tmp_path):
    import onnx
    from onnx import numpy_helper

    script = _script()
    weights = []
    for run in ("a", "b"):
        assert script.main(["--seed", "3", "--epochs", "1", "--out", str(tmp_path / run)]) == 0
        model = onnx.load(str(tmp_path / run / "digits.onnx"))
        weights.append({t.name: numpy_helper.to_array(t) for t in model.graph.initializer})
    assert weights[0].keys() == weights[1].keys()
    assert all(np.array_equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_training_leaves_the_processes_torch_settings_alone(tmp_path):
    import torch

    before = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    assert _script().main(["--seed", "1", "--epochs", "1", "--out", str(tmp_path)]) == 0
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == before
