"""Plumbing every framework trainer shares: sampling, reconstruction, checkpoint and optimizer I/O.

A framework hands over its functions once, as a :class:`Backend`; a trainer subclass then only
writes ``__init__`` (model + optimizers) and ``train_step``. Arrays crossing this boundary are
canonical NCHW float32, whatever the framework's own layout.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .checkpoint import load_checkpoint
from .configs import BaseConfig
from .images import save_gif, to_uint8
from .registry import get_model_spec, sample_part
from .training import kl_weight, step_noise


@dataclass(frozen=True)
class Backend:
    """One framework's model functions (``torch_impl`` / ``keras_impl`` modules of the same names)."""

    framework: str
    #: run_part(model, part, *arrays) -> tuple of canonical arrays
    run_part: Callable[..., tuple[np.ndarray, ...]]
    save_model: Callable[[Any, Path, int], Path]
    load_tensors: Callable[[Any, Any, str], Any]
    #: save_optimizers({name: optimizer}, path, step) / load_optimizers({name: optimizer}, path)
    save_optimizers: Callable[[dict[str, Any], Path, int], None]
    load_optimizers: Callable[[dict[str, Any], Path], None]


class FrameworkTrainer:
    """Base of every trainer: a subclass sets ``backend`` and, in ``__init__``, ``model`` and ``optimizers``.

    ``sample`` decodes fixed noise through the model's ``sample_part`` (the registry part that maps
    z to an image or video); ``reconstruct`` encodes with the ``encoder`` part when the model has one.
    """

    backend: Backend

    def __init__(self, config: BaseConfig, args: argparse.Namespace):
        self.config, self.args = config, args
        self.model: Any = None
        self.optimizers: dict[str, Any] = {}
        self.sample_part = sample_part(config)

    @property
    def framework(self) -> str:
        return self.backend.framework

    def train_step(self, batch: np.ndarray, step: int) -> dict[str, float]:
        raise NotImplementedError

    def restore_history(self, history: list[dict[str, float]]) -> None:
        """Called on ``--resume`` with the run's loss history; trainers that carry losses from one
        step to the next (a GAN's last generator losses between critic-only steps) restore them."""

    def generate(self, z: np.ndarray) -> np.ndarray:
        """Canonical generator output: images (N, C, H, W) or videos (N, T, C, H, W)."""
        return self.backend.run_part(self.model, self.sample_part, z)[0]

    def sample(self, z: np.ndarray) -> np.ndarray:
        """Images for the PNG grid: a video model's first frames."""
        out = self.generate(z)
        return out[:, 0] if out.ndim == 5 else out

    def reconstruct(self, batch: np.ndarray) -> np.ndarray | None:
        if "encoder" not in get_model_spec(self.config.model).parts(self.config):
            return None
        mu = self.backend.run_part(self.model, "encoder", batch)[0]
        return self.sample(mu)

    def log_extras(self, tb: Any, run_root: Path, epoch: int, step: int, z: np.ndarray) -> None:
        """Per-epoch outputs beyond the PNG grids: ``samples/epoch_NNN.gif`` for video models."""
        out = self.generate(z)
        if out.ndim == 5:
            save_gif(to_uint8(out), run_root / "samples" / f"epoch_{epoch:03d}.gif")

    def save(self, path: Path, step: int) -> None:
        self.backend.save_model(self.model, path, step)

    def load(self, path: Path) -> None:
        self.backend.load_tensors(self.model, load_checkpoint(path, self.config.model).tensors, str(path))

    def save_optimizer(self, path: Path, step: int) -> None:
        self.backend.save_optimizers(self.optimizers, path, step)

    def load_optimizer(self, path: Path) -> None:
        self.backend.load_optimizers(self.optimizers, path)


@dataclass(frozen=True)
class GANStepNoise:
    """One WGAN-GP step's noise, identical in both frameworks (:func:`core.training.step_noise`)."""

    prior: np.ndarray  #: (B, latent) generator input
    eps: np.ndarray  #: (B, latent) reparameterisation noise of the ELBO term
    coeffs: np.ndarray  #: (B * frames,) gradient-penalty interpolation coefficients

    @classmethod
    def for_step(cls, seed: int, step: int, batch: int, latent_dim: int, frames: int = 1) -> "GANStepNoise":
        return cls(step_noise(seed, step, (batch, latent_dim), "prior"),
                   step_noise(seed, step, (batch, latent_dim), "eps"),
                   step_noise(seed, step, (batch * frames,), "interpolation"))


#: the losses a WGAN-GP trainer logs from its last generator step on critic-only steps
GENERATOR_LOSS_KEYS = ("generator", "adversarial", "recon", "kl")


def last_generator_losses(history: list[dict[str, float]]) -> dict[str, float]:
    """The generator losses of the newest history entry (zeros for a run that has none yet), so a
    resumed run logs the same values on its critic-only steps as an uninterrupted one."""
    last = history[-1] if history else {}
    return {k: float(last.get(k, 0.0)) for k in GENERATOR_LOSS_KEYS}


def is_generator_step(step: int, n_critic: int) -> bool:
    """Every step trains the critic; every ``n_critic``-th also the generator (Gulrajani et al.)."""
    return (step + 1) % n_critic == 0


def frames_per_sample(config: BaseConfig) -> int:
    """How many images training judges per generated sample (T for video models, else 1)."""
    return int(getattr(config, "num_frames", 1)) if getattr(config, "is_video", False) else 1


def alpha_summary(tb: Any, alpha: np.ndarray, step: int) -> None:
    """TensorBoard: ``alpha/mean`` scalar and, unless alpha is one number, an ``alpha`` histogram."""
    tb.scalar("alpha/mean", float(np.mean(alpha)), step)
    if alpha.size > 1:
        tb.histogram("alpha", alpha, step)


class WGANGPTrainer(FrameworkTrainer):
    """The WGAN-GP step schedule, once for both frameworks (Gulrajani et al. 2017).

    Every step draws :class:`GANStepNoise` and trains the critic; every ``--n-critic``-th step
    also trains the generator with the KL weight of :func:`core.training.kl_weight`. Critic-only
    steps log the last generator losses (restored from the history on ``--resume``), and
    ``single`` mode logs its alpha. The framework twins implement the two updates and read alpha.
    """

    def __init__(self, config: BaseConfig, args: argparse.Namespace):
        super().__init__(config, args)
        self.frames = frames_per_sample(config)
        self.last_generator = last_generator_losses([])

    def critic_update(self, batch: np.ndarray, noise: GANStepNoise) -> dict[str, float]:
        """One critic step on the canonical (B, C, H, W) batch; its losses as floats."""
        raise NotImplementedError

    def generator_update(self, batch: np.ndarray, noise: GANStepNoise, beta: float) -> dict[str, float]:
        """One generator step (adversarial + ELBO with KL weight ``beta``); its losses as floats."""
        raise NotImplementedError

    def scalar_alpha(self) -> float:
        """``single`` mode's learned alpha."""
        raise NotImplementedError

    def alpha(self, z: np.ndarray) -> np.ndarray:
        """ParamTanh's alpha on the decoder outputs of ``z``, canonical layout (for TensorBoard)."""
        raise NotImplementedError

    def restore_history(self, history: list[dict[str, float]]) -> None:
        self.last_generator = last_generator_losses(history)

    def train_step(self, batch: np.ndarray, step: int) -> dict[str, float]:
        args = self.args
        noise = GANStepNoise.for_step(args.seed, step, len(batch), self.config.latent_dim, self.frames)
        out = self.critic_update(batch, noise)
        if is_generator_step(step, args.n_critic):
            self.last_generator = self.generator_update(batch, noise, kl_weight(step, args.kl_weight, args.kl_warmup))
        out.update(self.last_generator)
        if self.config.tanh_mode == "single":
            out["alpha"] = self.scalar_alpha()
        return out

    def log_extras(self, tb: Any, run_root: Path, epoch: int, step: int, z: np.ndarray) -> None:
        super().log_extras(tb, run_root, epoch, step, z)
        alpha_summary(tb, self.alpha(z), step)
