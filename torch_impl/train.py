"""``python -m torch_impl.train`` (twin: ``keras_impl/train.py``; flags: :mod:`spec.cli`).

The loop, run directory and logging live in :mod:`spec.training`, the shared trainer plumbing in
:mod:`spec.trainer_base`; this file holds the torch trainers, one per model family.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from spec.configs import BaseConfig
from spec.trainer_base import Backend, FrameworkTrainer
from spec.training import kl_weight, main as train_main, step_noise

from .checkpoint import load_optimizers, load_tensors, save_model, save_optimizers
from .losses import vae_loss
from .models import build
from .optimizers import Adam
from .parts import run_part

BACKEND = Backend("torch", run_part, save_model, load_tensors, save_optimizers, load_optimizers)


class VAETrainer(FrameworkTrainer):
    """ELBO training of ``conv_vae`` with Adam (eps 1e-8 in both frameworks)."""

    backend = BACKEND

    def __init__(self, config: BaseConfig, args: argparse.Namespace):
        super().__init__(config, args)
        torch.manual_seed(args.seed)
        self.model = build(config.model, config)
        self.optimizers = {"model": Adam(self.model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8)}

    def train_step(self, batch: np.ndarray, step: int) -> dict[str, float]:
        self.model.train()
        x = torch.from_numpy(batch)
        eps = torch.from_numpy(step_noise(self.args.seed, step, (x.shape[0], self.config.latent_dim)))
        recon, mu, logvar = self.model(x, eps)
        losses = vae_loss(recon, x, mu, logvar, kl_weight(step, self.args.kl_weight, self.args.kl_warmup))
        optimizer = self.optimizers["model"]
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        return {k: float(v.detach()) for k, v in losses.items()}


TRAINERS: dict[str, type[FrameworkTrainer]] = {"conv_vae": VAETrainer}


def make_trainer(config: BaseConfig, args: argparse.Namespace) -> FrameworkTrainer:
    return TRAINERS[config.model](config, args)


def main(argv: list[str] | None = None) -> int:
    return train_main("torch", make_trainer, argv)


if __name__ == "__main__":
    sys.exit(main())
