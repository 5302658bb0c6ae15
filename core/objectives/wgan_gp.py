"""WGAN-GP (Gulrajani et al. 2017): a critic trained every step, the generator every
``n_critic``-th; and the VAE-GAN objective of seeds 000/001 built on it.

critic = mean D(G(z)) - mean D(x) + gp_weight * penalty, penalty = mean (||grad D(x_hat)|| - 1)^2
at x_hat = c x + (1 - c) G(z), c ~ U(0, 1) per sample (per frame for video generators, which the
critic judges frame by frame); generator = -mean D(G(z)). Adam betas (0, 0.9) as in the paper's
Algorithm 1. A step on which the generator does not train logs its last losses (restored from the
history on ``--resume``), so the curves have no holes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..configs import MAX_INT
from ..noise import step_noise
from .base import Hyperparameters, Objective, OptimizerSpec, StepContext, Update, hyper, scalar
from .elbo import latent_shape
from .kl import KLHyperparameters, kl_weight


@dataclass(frozen=True)
class WGANGPHyperparameters(Hyperparameters):
    lr: float = hyper(1e-4, 0.0, 1.0, low_open=True, help="Adam learning rate of both networks (WGAN-GP: 1e-4)")
    n_critic: int = hyper(5, 1, MAX_INT, help="critic steps per generator step (WGAN-GP: 5)")
    gp_weight: float = hyper(10.0, 0.0, 1e6, help="gradient penalty weight lambda (WGAN-GP: 10)")


def frames_per_sample(config) -> int:
    """How many images the critic judges per generated sample (T for video generators, else 1)."""
    return int(config.num_frames) if getattr(config, "is_video", False) else 1


class WGANGP(Objective):
    name = "wgan_gp"
    hyperparameters = WGANGPHyperparameters
    updates = (Update("critic", "critic", "critic", ("critic", "wasserstein", "gp")),
               Update("generator", "generator", "generator", ("generator",)))

    def optimizers(self) -> tuple[OptimizerSpec, ...]:
        return tuple(OptimizerSpec(u.optimizer, self.hp.lr, (0.0, 0.9)) for u in self.updates)

    def schedule(self, step: int) -> tuple[Update, ...]:
        critic, generator = self.updates
        return (critic, generator) if (step + 1) % self.hp.n_critic == 0 else (critic,)

    def step_inputs(self, ctx: StepContext) -> dict[str, np.ndarray]:
        frames = frames_per_sample(self.config)
        return {"prior": step_noise(ctx.seed, ctx.step, (ctx.batch, *latent_shape(self.config)), "prior"),
                "coeffs": step_noise(ctx.seed, ctx.step, (ctx.batch * frames,), "interpolation")}


@dataclass(frozen=True)
class VAEWGANGPHyperparameters(WGANGPHyperparameters, KLHyperparameters):
    adv_weight: float = hyper(1.0, 0.0, 1e6, help="weight of the adversarial term next to the ELBO")


class VAEWGANGP(WGANGP):
    """The VAE-GAN's objective: the WGAN-GP critic, and a generator step on
    adv_weight * (-mean D(G(z))) + the ELBO of :mod:`core.objectives.elbo` (z ~ N(0, 1) for the
    adversarial term, the encoder's posterior for the ELBO). The generator's optimizer trains
    everything but the critic (encoder, decoder and the output layer)."""

    name = "vae_wgan_gp"
    hyperparameters = VAEWGANGPHyperparameters
    updates = (WGANGP.updates[0],
               Update("generator", "generator", "generator", ("generator", "adversarial", "recon", "kl")))

    def step_inputs(self, ctx: StepContext) -> dict[str, np.ndarray]:
        inputs = super().step_inputs(ctx)
        inputs["eps"] = step_noise(ctx.seed, ctx.step, (ctx.batch, *latent_shape(self.config)), "eps")
        inputs["kl_weight"] = scalar(kl_weight(self.hp, ctx.step, ctx.total_steps))
        return inputs

    def logged(self, ctx: StepContext) -> dict[str, float]:
        return {"kl_weight": kl_weight(self.hp, ctx.step, ctx.total_steps)}
