"""``python -m torch_impl.train`` (twin: ``keras_impl/train.py``; flags: :mod:`core.cli`).

The loop, run directory and logging live in :mod:`core.training`, the shared trainer plumbing in
:mod:`core.trainer_base`; this file holds the torch trainers, one per model family.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from core.configs import BaseConfig
from core.trainer_base import Backend, FrameworkTrainer, GANStepNoise, WGANGPTrainer
from core.training import kl_weight, main as train_main, step_noise

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


class VAEGANTrainer(WGANGPTrainer):
    """``vaegan``: the torch updates of :class:`core.trainer_base.WGANGPTrainer`; the generator step
    trains on adversarial + ELBO terms (:func:`losses.vaegan_generator_loss`); Adam betas (0, 0.9)
    for both optimizers."""

    backend = BACKEND

    def __init__(self, config: BaseConfig, args: argparse.Namespace):
        super().__init__(config, args)
        torch.manual_seed(args.seed)
        self.model = model = build(config.model, config)
        self.optimizers = {
            "generator": Adam(model.generator_parameters(), lr=args.lr, betas=(0.0, 0.9), eps=1e-8),
            "critic": Adam(model.critic.parameters(), lr=args.lr, betas=(0.0, 0.9), eps=1e-8),
        }

    def _per_frame(self, real: torch.Tensor) -> torch.Tensor:
        """Real images repeated once per generated frame (video models are judged frame by frame)."""
        return real.repeat_interleave(self.frames, 0) if self.frames > 1 else real

    def _apply(self, name: str, loss: torch.Tensor) -> None:
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def critic_update(self, batch: np.ndarray, noise: GANStepNoise) -> dict[str, float]:
        model = self.model.train()
        real = torch.from_numpy(batch)
        with torch.no_grad():
            fake = model.generate_images(torch.from_numpy(noise.prior))
        penalty = gradient_penalty(model.critique, self._per_frame(real), fake, torch.from_numpy(noise.coeffs))
        losses = critic_loss(model.critique(real), model.critique(fake), penalty, self.args.gp_weight)
        self._apply("critic", losses["critic"])
        return {k: float(v.detach()) for k, v in losses.items()}

    def generator_update(self, batch: np.ndarray, noise: GANStepNoise, beta: float) -> dict[str, float]:
        model = self.model.train()
        real = torch.from_numpy(batch)
        recon, mu, logvar = model(real, torch.from_numpy(noise.eps))
        fake_scores = model.critique(model.generate_images(torch.from_numpy(noise.prior)))
        losses = vaegan_generator_loss(fake_scores, recon, self._per_frame(real), mu, logvar, beta,
                                       self.args.adv_weight)
        self._apply("generator", losses["generator"])
        return {k: float(v.detach()) for k, v in losses.items()}

    def scalar_alpha(self) -> float:
        return float(self.model.param_tanh.alpha.detach()[0])

    def alpha(self, z: np.ndarray) -> np.ndarray:
        self.model.eval()
        with torch.no_grad():
            return self.model.param_tanh.alpha_of(self.model.decode_base(torch.from_numpy(z))).cpu().numpy()


TRAINERS: dict[str, type[FrameworkTrainer]] = {"conv_vae": VAETrainer, "vaegan": VAEGANTrainer}


def make_trainer(config: BaseConfig, args: argparse.Namespace) -> FrameworkTrainer:
    return TRAINERS[config.model](config, args)


def main(argv: list[str] | None = None) -> int:
    return train_main("torch", make_trainer, argv)


if __name__ == "__main__":
    sys.exit(main())
