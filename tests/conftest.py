"""Shared fixtures. Tests never download anything: data comes from scikit-learn's bundled digits."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

# torch's CUDA wheels bring triton, whose libtriton.so carries its own LLVM. When TensorFlow (also
# LLVM inside) is loaded first, torch's later lazy import of triton (first optimizer step / backward)
# segfaults in LLVM's static initialisers. Loading triton before TensorFlow avoids the clash.
try:  # noqa: SIM105
    import triton  # noqa: F401,E402
except ImportError:  # pragma: no cover - CPU-only torch builds have no triton
    pass

import ast  # noqa: E402
import importlib.util  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# --------------------------------------------------------------------------- serving-only installs
# A serving host (`pip install .[serve] pytest httpx onnx`, as .ci/serving-only makes) has neither torch
# nor TensorFlow, so most test modules cannot even be imported there. In such an environment only the
# modules that declare themselves runnable there are collected: those with a module-level
# `pytestmark = pytest.mark.serving` (or a list/tuple containing it). Per-test `serving` marks in other
# modules need the frameworks to collect, so they run only in the full environment.

#: Without any of these the environment is a serving-only one.
FRAMEWORKS = ("torch", "tensorflow")
SERVING_ONLY = any(importlib.util.find_spec(name) is None for name in FRAMEWORKS)
_not_collected: set[str] = set()


def declares_serving(source: bytes) -> bool:
    """Whether a test module's source assigns ``pytestmark`` with ``serving`` in it at module level."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return True  # collect it, so pytest reports the real error
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in targets) and any(
            isinstance(n, ast.Attribute) and n.attr == "serving" for n in ast.walk(value)
        ):
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config):
    if not SERVING_ONLY or collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    try:
        source = collection_path.read_bytes()
    except OSError:
        return None
    if declares_serving(source):
        return None
    root = config.rootpath
    shown = collection_path.relative_to(root) if collection_path.is_relative_to(root) else collection_path
    _not_collected.add(str(shown))
    return True


def pytest_report_header(config):
    if SERVING_ONLY:
        missing = [name for name in FRAMEWORKS if importlib.util.find_spec(name) is None]
        return (f"serving-only environment ({', '.join(missing)} not installed): collecting only test modules "
                "with a module-level `pytestmark = pytest.mark.serving`")
    return None


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _not_collected:
        terminalreporter.write_line(
            f"serving-only environment: {len(_not_collected)} test module(s) without "
            f"`pytestmark = pytest.mark.serving` not collected: {', '.join(sorted(_not_collected))}")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Every test session prepares the embedded dataset in its own cache folder."""
    os.environ["AGE_CACHE_DIR"] = str(tmp_path_factory.mktemp("age-cache"))
    yield


def randomize_batchnorm(model, seed: int = 0):
    """Give a torch model non-trivial BatchNorm statistics and affine parameters (eval parity would be
    too easy with mean 0 / var 1)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.rand(c, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(c, generator=gen) * 0.4 - 0.2)
    return model


def part_inputs(part, batch: int, seed: int = 0) -> list[np.ndarray]:
    from export.validation import random_inputs

    return random_inputs(part, batch, seed)
