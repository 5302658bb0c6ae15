"""The ELBO (Kingma & Welling 2014) of a VAE, with or without a flow posterior.

loss = recon + beta * KL', averaged over the batch, where recon = sum over pixels of
(x_hat - x)^2 (a Gaussian decoder), beta the KL weight in force (:mod:`core.objectives.kl`) and
KL' the KL after free bits. The KL is analytic for a Gaussian posterior,
KL = -0.5 * sum_j (1 + logvar_j - mu_j^2 - exp(logvar_j)); a posterior pushed through K flows
(Rezende & Mohamed 2015, eq. 15) uses the one-sample estimate
KL = log q0(z0) - sum_k log|det J_k| - log p(zK), which is what the twins compute when the model's
forward pass returns its flows' log-determinants.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..noise import step_noise
from .base import Objective, OptimizerSpec, StepContext, Update, hyper, scalar
from .kl import KLHyperparameters, kl_weight


@dataclass(frozen=True)
class ELBOHyperparameters(KLHyperparameters):
    lr: float = hyper(1e-3, 0.0, 1.0, low_open=True, help="Adam learning rate (seed 004: 1e-3)")


def latent_shape(config) -> tuple[int, ...]:
    """Per-sample shape of the latent noise (reparameterisation eps, generator input): the shape
    the model's generator part takes (:func:`core.registry.latent_shape`)."""
    from ..registry import latent_shape as generator_input  # the registry imports every objective

    return generator_input(config)


class ELBO(Objective):
    name = "elbo"
    hyperparameters = ELBOHyperparameters
    updates = (Update("update", "model", "loss", ("loss", "recon", "kl")),)

    def optimizers(self) -> tuple[OptimizerSpec, ...]:
        return (OptimizerSpec("model", self.hp.lr),)

    def step_inputs(self, ctx: StepContext) -> dict[str, np.ndarray]:
        eps = step_noise(ctx.seed, ctx.step, (ctx.batch, *latent_shape(self.config)), "eps")
        return {"eps": eps, "kl_weight": scalar(kl_weight(self.hp, ctx.step, ctx.total_steps))}

    def logged(self, ctx: StepContext) -> dict[str, float]:
        return {"kl_weight": kl_weight(self.hp, ctx.step, ctx.total_steps)}
