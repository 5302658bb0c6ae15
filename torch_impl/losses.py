"""Objectives (twin: ``keras_impl/losses.py``). Formulas are documented once, here and in the twin."""

from __future__ import annotations

import torch


def vae_loss(recon: torch.Tensor, target: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             kl_weight: float | torch.Tensor = 1.0) -> dict[str, torch.Tensor]:
    """Negative ELBO with a Gaussian decoder, averaged over the batch.

    recon = sum over pixels of (x_hat - x)^2;  kl = -0.5 * sum_j (1 + logvar_j - mu_j^2 - exp(logvar_j));
    loss = recon + kl_weight * kl.
    """
    rec = torch.sum((recon - target) ** 2, dim=tuple(range(1, recon.dim()))).mean()
    kl = (-0.5 * torch.sum(1.0 + logvar - mu**2 - torch.exp(logvar), dim=1)).mean()
    return {"loss": rec + kl_weight * kl, "recon": rec, "kl": kl}
