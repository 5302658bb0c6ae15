"""Projection onto the unit sphere (twin: ``keras_impl/layers/sphere.py``).

x / sqrt(Σ_j x_j^2 + eps) per sample, the sum over every value but the batch axis. The eps
(:data:`core.priors.SPHERE_EPS`, 1e-12) keeps the gradient finite at x = 0 and is the same
in both twins, the prior's noise (:func:`core.priors.to_sphere`) and the ONNX exports
(ReduceSum, Add, Sqrt, Div: no op either exporter lacks).
"""

from __future__ import annotations

import torch

from core.priors import SPHERE_EPS


def to_sphere(x: torch.Tensor, eps: float = SPHERE_EPS) -> torch.Tensor:
    """``x`` (B, ...) with each sample divided by sqrt(sum of its squares + eps)."""
    dims = tuple(range(1, x.dim()))
    return x / torch.sqrt(torch.sum(x * x, dim=dims, keepdim=True) + eps)
