"""Planar normalizing flows (twin: ``keras_impl/layers/flows.py``).

Planar flow (Rezende & Mohamed 2015, "Variational Inference with Normalizing Flows", ICML,
eq. 10-12 and appendix A), on z of shape (B, D), with parameters u, w (D,) and b (1,):

    f(z) = z + u_hat * tanh(w^T z + b)

* invertibility constraint (appendix A.1): f is invertible when w^T u_hat >= -1, which
  u_hat = u + (m(w^T u) - w^T u) * w / ||w||^2, m(x) = -1 + softplus(x) = -1 + log(1 + e^x)
  guarantees: w^T u_hat = m(w^T u) > -1. No epsilon is added to ||w||^2 (w = 0 exactly is a
  degenerate flow; the initial w is drawn from a continuous distribution);
* log-determinant of the Jacobian (eq. 11-12): psi(z) = tanh'(w^T z + b) * w with
  tanh'(a) = 1 - tanh(a)^2, and log|det df/dz| = log|1 + psi(z)^T u_hat|
  = log|1 + (1 - tanh(w^T z + b)^2) * w^T u_hat|, one value per sample;
* initial values (pyro's ``Planar.reset_parameters``): u, w ~ U(-1/sqrt(D), 1/sqrt(D)), b = 0.

``forward(z)`` returns (f(z), log|det J|) of shapes (B, D) and (B,).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.init import Init, uniform, zeros


class PlanarFlow(nn.Module):
    """One planar flow f(z) = z + u_hat * tanh(w^T z + b); see the module docstring."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        bound = 1.0 / math.sqrt(dim)
        self.u = nn.Parameter(torch.empty(dim).uniform_(-bound, bound))
        self.w = nn.Parameter(torch.empty(dim).uniform_(-bound, bound))
        self.b = nn.Parameter(torch.zeros(1))

    def u_hat(self) -> torch.Tensor:
        """u + (softplus(w^T u) - 1 - w^T u) * w / ||w||^2, so that w^T u_hat >= -1."""
        wu = torch.sum(self.w * self.u)
        return self.u + (F.softplus(wu) - 1.0 - wu) * self.w / torch.sum(self.w * self.w)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u_hat = self.u_hat()
        h = torch.tanh(torch.sum(z * self.w, dim=1) + self.b)  # (B,)
        out = z + h.unsqueeze(1) * u_hat
        log_det = torch.log(torch.abs(1.0 + (1.0 - h * h) * torch.sum(self.w * u_hat)))
        return out, log_det

    def init_rules(self) -> dict[str, Init]:
        """u, w ~ U(-1/sqrt(D), 1/sqrt(D)); b = 0."""
        bound = 1.0 / math.sqrt(self.dim)
        return {"u": uniform(bound), "w": uniform(bound), "b": zeros()}
