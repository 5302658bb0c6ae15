"""``python -m torch_impl.train`` (twin: ``keras_impl/train.py``; flags: :mod:`spec.cli`).

The loop, run directory and logging live in :mod:`spec.training`; this file holds the torch
trainers, one per model family.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from spec.checkpoint import load_checkpoint
from spec.configs import BaseConfig
from spec.training import kl_weight, main as train_main, step_noise

from .checkpoint import load_optimizer, load_tensors, save_model, save_optimizer
from .losses import vae_loss
from .models import build
from .optimizers import Adam
from .parts import run_part


class VAETrainer:
    """ELBO training of ``conv_vae`` with Adam (eps 1e-8 in both frameworks)."""

    framework = "torch"

    def __init__(self, config: BaseConfig, args: argparse.Namespace):
        torch.manual_seed(args.seed)
        self.config, self.args = config, args
        self.model = build(config.model, config)
        self.optimizer = Adam(self.model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8)

    def train_step(self, batch: np.ndarray, step: int) -> dict[str, float]:
        self.model.train()
        x = torch.from_numpy(batch)
        eps = torch.from_numpy(step_noise(self.args.seed, step, (x.shape[0], self.config.latent_dim)))
        recon, mu, logvar = self.model(x, eps)
        losses = vae_loss(recon, x, mu, logvar, kl_weight(step, self.args.kl_weight, self.args.kl_warmup))
        self.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        self.optimizer.step()
        return {k: float(v.detach()) for k, v in losses.items()}

    def sample(self, z: np.ndarray) -> np.ndarray:
        return run_part(self.model, "decoder", z)[0]

    def reconstruct(self, batch: np.ndarray) -> np.ndarray:
        mu, _ = run_part(self.model, "encoder", batch)
        return run_part(self.model, "decoder", mu)[0]

    def save(self, path: Path, step: int) -> None:
        save_model(self.model, path, step)

    def load(self, path: Path) -> None:
        load_tensors(self.model, load_checkpoint(path, self.config.model).tensors, str(path))

    def save_optimizer(self, path: Path, step: int) -> None:
        save_optimizer(self.optimizer, path, step)

    def load_optimizer(self, path: Path) -> None:
        load_optimizer(self.optimizer, path)


TRAINERS = {"conv_vae": VAETrainer}


def make_trainer(config: BaseConfig, args: argparse.Namespace):
    return TRAINERS[config.model](config, args)


def main(argv: list[str] | None = None) -> int:
    return train_main("torch", make_trainer, argv)


if __name__ == "__main__":
    sys.exit(main())
