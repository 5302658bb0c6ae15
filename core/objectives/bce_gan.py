"""The original GAN game (Goodfellow et al. 2014) on logits, with the report's tricks (seed 004).

discriminator = BCE(D(x), real_label) + BCE(D(G(z)), 0), real_label 0.9: one-sided label
smoothing (Salimans et al. 2016); generator = BCE(D(G(z)), 1), the non-saturating loss.
TTUR (Heusel et al. 2017): the discriminator learns faster (seed 004: 4e-4 against 1e-4).
Both networks step every step, the discriminator first. Dropout in the discriminator uses masks
drawn here (:func:`core.noise.dropout_masks`), one set per pass: real, fake, generator step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..noise import dropout_masks, step_noise
from .base import Hyperparameters, Objective, OptimizerSpec, StepContext, Update, hyper
from .elbo import latent_shape


@dataclass(frozen=True)
class BCEGANHyperparameters(Hyperparameters):
    lr_generator: float = hyper(1e-4, 0.0, 1.0, low_open=True, help="generator Adam learning rate (seed 004: 1e-4)")
    lr_discriminator: float = hyper(4e-4, 0.0, 1.0, low_open=True,
                                    help="discriminator Adam learning rate, TTUR (seed 004: 4e-4)")
    beta1: float = hyper(0.5, 0.0, 1.0, help="Adam beta1 of both networks (Radford et al. 2015: 0.5)")
    real_label: float = hyper(0.9, 0.0, 1.0, help="target for real images: one-sided label smoothing (seed 004: 0.9)")


class BCEGAN(Objective):
    name = "bce_gan"
    hyperparameters = BCEGANHyperparameters
    updates = (Update("discriminator", "discriminator", "discriminator", ("discriminator", "d_real", "d_fake")),
               Update("generator", "generator", "generator", ("generator",)))

    def optimizers(self) -> tuple[OptimizerSpec, ...]:
        betas = (self.hp.beta1, 0.999)
        return (OptimizerSpec("discriminator", self.hp.lr_discriminator, betas),
                OptimizerSpec("generator", self.hp.lr_generator, betas))

    def step_inputs(self, ctx: StepContext) -> dict[str, np.ndarray]:
        cfg = self.config
        inputs = {"prior": step_noise(ctx.seed, ctx.step, (ctx.batch, *latent_shape(cfg)), "prior")}
        shapes, rate = cfg.dropout_shapes(), cfg.dropout_rate()
        for name in ("dropout_real", "dropout_fake", "dropout_generator"):
            for i, mask in enumerate(dropout_masks(ctx.seed, ctx.step, ctx.batch, shapes, rate, name)):
                inputs[f"{name}_{i}"] = mask
        return inputs
