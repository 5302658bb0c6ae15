"""Plain autoencoder training: loss = mean over every value of (x_hat - x)^2 (seeds 003, 004:
"mean squared error between input and reconstruction")."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Hyperparameters, Objective, OptimizerSpec, Update, hyper


@dataclass(frozen=True)
class ReconstructionHyperparameters(Hyperparameters):
    lr: float = hyper(1e-3, 0.0, 1.0, low_open=True, help="Adam learning rate (seed 004: 1e-3)")


class Reconstruction(Objective):
    name = "reconstruction"
    hyperparameters = ReconstructionHyperparameters
    updates = (Update("update", "model", "loss", ("loss",)),)

    def optimizers(self) -> tuple[OptimizerSpec, ...]:
        return (OptimizerSpec("model", self.hp.lr),)
