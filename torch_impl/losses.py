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


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017, eq. 3), differentiable w.r.t. the critic.

    x_hat = c * real + (1 - c) * fake with one c ~ U(0, 1) per sample (``coeffs``, (B,));
    penalty = mean over the batch of (||grad_x D(x_hat)||_2 - 1)^2, the norm taken over all of
    a sample's values as sqrt(sum g^2 + 1e-12) (the 1e-12 keeps the norm's gradient finite at 0).
    """
    c = coeffs.reshape(-1, *([1] * (real.dim() - 1)))
    x_hat = (c * real + (1.0 - c) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    norm = torch.sqrt(grad.flatten(1).pow(2).sum(1) + 1e-12)
    return ((norm - 1.0) ** 2).mean()


def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor, penalty: torch.Tensor,
                gp_weight: float) -> dict[str, torch.Tensor]:
    """critic = mean D(fake) - mean D(real) + gp_weight * penalty; ``wasserstein`` is the
    critic's estimate of the distance, mean D(real) - mean D(fake)."""
    distance = real_scores.mean() - fake_scores.mean()
    return {"critic": -distance + gp_weight * penalty, "wasserstein": distance, "gp": penalty}


def vaegan_generator_loss(fake_scores: torch.Tensor, recon: torch.Tensor, target: torch.Tensor,
                          mu: torch.Tensor, logvar: torch.Tensor, kl_weight: float | torch.Tensor,
                          adv_weight: float) -> dict[str, torch.Tensor]:
    """The seeds' combined loss for the generator: adv_weight * (-mean D(G(z))) + the ELBO of
    :func:`vae_loss` (z ~ N(0, 1) for the adversarial term, the encoder's posterior for the ELBO)."""
    elbo = vae_loss(recon, target, mu, logvar, kl_weight)
    adversarial = -fake_scores.mean()
    return {"generator": adv_weight * adversarial + elbo["loss"], "adversarial": adversarial,
            "recon": elbo["recon"], "kl": elbo["kl"]}
