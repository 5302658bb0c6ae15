"""Objectives (twin: ``torch_impl/losses.py``)."""

from __future__ import annotations

from keras import ops


def vae_loss(recon, target, mu, logvar, kl_weight=1.0) -> dict:
    """Negative ELBO with a Gaussian decoder, averaged over the batch.

    recon = sum over pixels of (x_hat - x)^2;  kl = -0.5 * sum_j (1 + logvar_j - mu_j^2 - exp(logvar_j));
    loss = recon + kl_weight * kl.
    """
    rec = ops.mean(ops.sum((recon - target) ** 2, axis=tuple(range(1, len(recon.shape)))))
    kl = ops.mean(-0.5 * ops.sum(1.0 + logvar - mu**2 - ops.exp(logvar), axis=1))
    return {"loss": rec + kl_weight * kl, "recon": rec, "kl": kl}
