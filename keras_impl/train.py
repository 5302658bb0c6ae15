"""``python -m keras_impl.train`` (twin: ``torch_impl/train.py``; flags: :mod:`spec.cli`).

The loop, run directory and logging live in :mod:`spec.training`, the shared trainer plumbing in
:mod:`spec.trainer_base`; this file holds the Keras trainers, one per model family. Steps run as
``tf.function`` graphs with ``GradientTape``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

from spec.configs import BaseConfig  # noqa: E402
from spec.layouts import nchw_to_nhwc  # noqa: E402
from spec.trainer_base import (  # noqa: E402
    Backend,
    FrameworkTrainer,
    GANStepNoise,
    alpha_summary,
    frames_per_sample,
    last_generator_losses,
    is_generator_step,
)
from spec.training import kl_weight, main as train_main, step_noise  # noqa: E402

from .checkpoint import load_optimizers, load_tensors, save_model, save_optimizers  # noqa: E402
from .losses import critic_loss, gradient_penalty, vae_loss, vaegan_generator_loss  # noqa: E402
from .models import build  # noqa: E402
from .optimizers import Adam  # noqa: E402
from .parts import run_part  # noqa: E402

BACKEND = Backend("keras", run_part, save_model, load_tensors, save_optimizers, load_optimizers)


class VAETrainer(FrameworkTrainer):
    """ELBO training of ``conv_vae`` with Adam (eps 1e-8 in both frameworks)."""

    backend = BACKEND

    def __init__(self, config: BaseConfig, args: argparse.Namespace):
        super().__init__(config, args)
        keras.utils.set_random_seed(args.seed)
        self.model = build(config.model, config)
        optimizer = Adam(learning_rate=args.lr, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
        optimizer.build(self.model.trainable_variables)
        self.optimizers = {"model": optimizer}

    @tf.function(reduce_retracing=True)
    def _step(self, x, eps, beta):
        with tf.GradientTape() as tape:
            recon, mu, logvar = self.model(x, eps=eps, training=True)
            losses = vae_loss(recon, x, mu, logvar, beta)
        variables = self.model.trainable_variables
        self.optimizers["model"].apply_gradients(zip(tape.gradient(losses["loss"], variables), variables))
        return losses

    def train_step(self, batch: np.ndarray, step: int) -> dict[str, float]:
        eps = step_noise(self.args.seed, step, (batch.shape[0], self.config.latent_dim))
        beta = np.float32(kl_weight(step, self.args.kl_weight, self.args.kl_warmup))
        losses = self._step(nchw_to_nhwc(batch), eps, beta)
        return {k: float(v) for k, v in losses.items()}


class VAEGANTrainer(FrameworkTrainer):
    """``vaegan``: WGAN-GP critic steps, and every ``--n-critic`` steps a generator step on
    adversarial + ELBO terms (:func:`losses.vaegan_generator_loss`); Adam betas (0, 0.9)
    (Gulrajani et al. 2017) for both."""

    backend = BACKEND

    def __init__(self, config: BaseConfig, args: argparse.Namespace):
        super().__init__(config, args)
        keras.utils.set_random_seed(args.seed)
        self.model = model = build(config.model, config)
        self.frames = frames_per_sample(config)
        self.generator_vars = model.generator_variables()
        self.critic_vars = list(model.critic.trainable_variables)
        self.optimizers = {}
        for name, variables in (("generator", self.generator_vars), ("critic", self.critic_vars)):
            optimizer = Adam(learning_rate=args.lr, beta_1=0.0, beta_2=0.9, epsilon=1e-8)
            optimizer.build(variables)
            self.optimizers[name] = optimizer
        self.last_generator = last_generator_losses([])

    def restore_history(self, history: list[dict[str, float]]) -> None:
        self.last_generator = last_generator_losses(history)

    def _repeat(self, x):
        return ops.repeat(x, self.frames, axis=0) if self.frames > 1 else x

    @tf.function(reduce_retracing=True)
    def critic_step(self, real, prior, coeffs):
        model = self.model
        fake = tf.stop_gradient(model.generate_images(prior, training=True))
        with tf.GradientTape() as tape:
            penalty = gradient_penalty(model.critic, self._repeat(real), fake, coeffs)
            losses = critic_loss(model.critique(real, training=True), model.critique(fake, training=True),
                                 penalty, self.args.gp_weight)
        grads = tape.gradient(losses["critic"], self.critic_vars)
        self.optimizers["critic"].apply_gradients(zip(grads, self.critic_vars))
        return losses

    @tf.function(reduce_retracing=True)
    def generator_step(self, real, prior, eps, beta):
        model = self.model
        with tf.GradientTape() as tape:
            recon, mu, logvar = model(real, eps=eps, training=True)
            fake_scores = model.critique(model.generate_images(prior, training=True), training=True)
            losses = vaegan_generator_loss(fake_scores, recon, self._repeat(real), mu, logvar, beta,
                                           self.args.adv_weight)
        grads = tape.gradient(losses["generator"], self.generator_vars)
        self.optimizers["generator"].apply_gradients(zip(grads, self.generator_vars))
        return losses

    def train_step(self, batch: np.ndarray, step: int) -> dict[str, float]:
        real = nchw_to_nhwc(batch)
        noise = GANStepNoise.for_step(self.args.seed, step, len(batch), self.config.latent_dim, self.frames)
        out = {k: float(v) for k, v in self.critic_step(real, noise.prior, noise.coeffs).items()}
        if is_generator_step(step, self.args.n_critic):
            beta = np.float32(kl_weight(step, self.args.kl_weight, self.args.kl_warmup))
            losses = self.generator_step(real, noise.prior, noise.eps, beta)
            self.last_generator = {k: float(v) for k, v in losses.items()}
        out.update(self.last_generator)
        if self.config.tanh_mode == "single":
            out["alpha"] = float(np.asarray(self.model.param_tanh.alpha_of(None))[0])
        return out

    def alpha(self, z: np.ndarray) -> np.ndarray:
        """ParamTanh's alpha on the fixed noise's decoder outputs, canonical layout (for TensorBoard)."""
        alpha = np.asarray(self.model.param_tanh.alpha_of(self.model.decode_base(z)))
        return alpha if alpha.ndim == 1 else np.moveaxis(alpha, -1, -3)

    def log_extras(self, tb, run_root: Path, epoch: int, step: int, z: np.ndarray) -> None:
        super().log_extras(tb, run_root, epoch, step, z)
        alpha_summary(tb, self.alpha(z), step)


TRAINERS: dict[str, type[FrameworkTrainer]] = {"conv_vae": VAETrainer, "vaegan": VAEGANTrainer}


def make_trainer(config: BaseConfig, args: argparse.Namespace) -> FrameworkTrainer:
    return TRAINERS[config.model](config, args)


def main(argv: list[str] | None = None) -> int:
    return train_main("keras", make_trainer, argv)


if __name__ == "__main__":
    sys.exit(main())
