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

import numpy as np  # noqa: E402
import pytest  # noqa: E402


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
    from export.onnx import random_inputs

    return random_inputs(part, batch, seed)
