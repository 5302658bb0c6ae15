"""``python -m torch_impl.train`` (twin: ``keras_impl/train.py``; flags: :mod:`spec.cli`).

The loop, run directory and logging live in :mod:`spec.training`, the shared trainer plumbing in
:mod:`spec.trainer_base`; this file holds the torch trainers, one per model family.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from spec.configs import BaseConfig
from spec.trainer_base import (
    Backend,
    FrameworkTrainer,
    GANStepNoise,
    alpha_summary,
    frames_per_sample,
    last_generator_losses,
    is_generator_step,
)
from spec.training import kl_weight, main as train_main, step_noise

from .checkpoint import load_optimizers, load_tensors, save_model, save_optimizers
from .losses import critic_loss, gradient_penalty, vae_loss, vaegan_generator_loss
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


class VAEGANTrainer(FrameworkTrainer):
    """``vaegan``: WGAN-GP critic steps, and every ``--n-critic`` steps a generator step on
    adversarial + ELBO terms (:func:`losses.vaegan_generator_loss`); Adam betas (0, 0.9)
    (Gulrajani et al. 2017) for both."""

    backend = BACKEND

    def __init__(self, config: BaseConfig, args: argparse.Namespace):
        super().__init__(config, args)
        torch.manual_seed(args.seed)
        self.model = model = build(config.model, config)
        self.frames = frames_per_sample(config)
        self.optimizers = {
            "generator": Adam(model.generator_parameters(), lr=args.lr, betas=(0.0, 0.9), eps=1e-8),
            "critic": Adam(model.critic.parameters(), lr=args.lr, betas=(0.0, 0.9), eps=1e-8),
        }
        self.last_generator = last_generator_losses([])

    def restore_history(self, history: list[dict[str, float]]) -> None:
        self.last_generator = last_generator_losses(history)

    def critic_step(self, real: torch.Tensor, noise: GANStepNoise) -> dict[str, torch.Tensor]:
        model = self.model
        with torch.no_grad():
            fake = model.generate_images(torch.from_numpy(noise.prior))
        real_rep = real.repeat_interleave(self.frames, 0) if self.frames > 1 else real
        penalty = gradient_penalty(model.critique, real_rep, fake, torch.from_numpy(noise.coeffs))
        losses = critic_loss(model.critique(real), model.critique(fake), penalty, self.args.gp_weight)
        optimizer = self.optimizers["critic"]
        optimizer.zero_grad(set_to_none=True)
        losses["critic"].backward()
        optimizer.step()
        return losses

    def generator_step(self, real: torch.Tensor, noise: GANStepNoise, step: int) -> dict[str, torch.Tensor]:
        model, args = self.model, self.args
        recon, mu, logvar = model(real, torch.from_numpy(noise.eps))
        target = real.repeat_interleave(self.frames, 0) if self.frames > 1 else real
        fake_scores = model.critique(model.generate_images(torch.from_numpy(noise.prior)))
        losses = vaegan_generator_loss(fake_scores, recon, target, mu, logvar,
                                       kl_weight(step, args.kl_weight, args.kl_warmup), args.adv_weight)
        optimizer = self.optimizers["generator"]
        optimizer.zero_grad(set_to_none=True)
        losses["generator"].backward()
        optimizer.step()
        return losses

    def train_step(self, batch: np.ndarray, step: int) -> dict[str, float]:
        self.model.train()
        real = torch.from_numpy(batch)
        noise = GANStepNoise.for_step(self.args.seed, step, len(batch), self.config.latent_dim, self.frames)
        out = {k: float(v.detach()) for k, v in self.critic_step(real, noise).items()}
        if is_generator_step(step, self.args.n_critic):
            self.last_generator = {k: float(v.detach()) for k, v in self.generator_step(real, noise, step).items()}
        out.update(self.last_generator)
        if self.config.tanh_mode == "single":
            out["alpha"] = float(self.model.param_tanh.alpha.detach()[0])
        return out

    def alpha(self, z: np.ndarray) -> np.ndarray:
        """ParamTanh's alpha on the fixed noise's decoder outputs (for TensorBoard)."""
        self.model.eval()
        with torch.no_grad():
            x = self.model.decode_base(torch.from_numpy(z))
            return self.model.param_tanh.alpha_of(x).cpu().numpy()

    def log_extras(self, tb, run_root: Path, epoch: int, step: int, z: np.ndarray) -> None:
        super().log_extras(tb, run_root, epoch, step, z)
        alpha_summary(tb, self.alpha(z), step)


TRAINERS: dict[str, type[FrameworkTrainer]] = {"conv_vae": VAETrainer, "vaegan": VAEGANTrainer}


def make_trainer(config: BaseConfig, args: argparse.Namespace) -> FrameworkTrainer:
    return TRAINERS[config.model](config, args)


def main(argv: list[str] | None = None) -> int:
    return train_main("torch", make_trainer, argv)


if __name__ == "__main__":
    sys.exit(main())
