"""``python -m keras_impl.train`` (twin: ``torch_impl/train.py``; flags: :mod:`core.cli`).

The loop, run directory and logging live in :mod:`core.training`, the shared trainer plumbing in
:mod:`core.trainer_base`; this file holds the Keras trainers, one per model family. Steps run as
``tf.function`` graphs with ``GradientTape``, without AutoGraph: the steps have no tensor-dependent
Python control flow, and our own errors raised while tracing (e.g. :class:`core.errors.BatchTooSmall`)
then reach the CLI as they are instead of wrapped in a StagingError.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

from core.configs import BaseConfig  # noqa: E402
from core.layouts import nchw_to_nhwc  # noqa: E402
from core.trainer_base import Backend, FrameworkTrainer, GANStepNoise, WGANGPTrainer  # noqa: E402
from core.training import kl_weight, main as train_main, step_noise  # noqa: E402

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

    @tf.function(reduce_retracing=True, autograph=False)
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


class VAEGANTrainer(WGANGPTrainer):
    """``vaegan``: the Keras updates of :class:`core.trainer_base.WGANGPTrainer` (``tf.function``
    graphs); the generator step trains on adversarial + ELBO terms (:func:`losses.vaegan_generator_loss`);
    Adam betas (0, 0.9) for both optimizers."""

    backend = BACKEND

    def __init__(self, config: BaseConfig, args: argparse.Namespace):
        super().__init__(config, args)
        keras.utils.set_random_seed(args.seed)
        self.model = model = build(config.model, config)
        self.generator_vars = model.generator_variables()
        self.critic_vars = list(model.critic.trainable_variables)
        for name, variables in (("generator", self.generator_vars), ("critic", self.critic_vars)):
            optimizer = Adam(learning_rate=args.lr, beta_1=0.0, beta_2=0.9, epsilon=1e-8)
            optimizer.build(variables)
            self.optimizers[name] = optimizer

    def _per_frame(self, x):
        """Real images repeated once per generated frame (video models are judged frame by frame)."""
        return ops.repeat(x, self.frames, axis=0) if self.frames > 1 else x

    @tf.function(reduce_retracing=True, autograph=False)
    def _critic_step(self, real, prior, coeffs):
        model = self.model
        fake = tf.stop_gradient(model.generate_images(prior, training=True))
        with tf.GradientTape() as tape:
            penalty = gradient_penalty(model.critic, self._per_frame(real), fake, coeffs)
            losses = critic_loss(model.critique(real, training=True), model.critique(fake, training=True),
                                 penalty, self.args.gp_weight)
        grads = tape.gradient(losses["critic"], self.critic_vars)
        self.optimizers["critic"].apply_gradients(zip(grads, self.critic_vars))
        return losses

    @tf.function(reduce_retracing=True, autograph=False)
    def _generator_step(self, real, prior, eps, beta):
        model = self.model
        with tf.GradientTape() as tape:
            recon, mu, logvar = model(real, eps=eps, training=True)
            fake_scores = model.critique(model.generate_images(prior, training=True), training=True)
            losses = vaegan_generator_loss(fake_scores, recon, self._per_frame(real), mu, logvar, beta,
                                           self.args.adv_weight)
        grads = tape.gradient(losses["generator"], self.generator_vars)
        self.optimizers["generator"].apply_gradients(zip(grads, self.generator_vars))
        return losses

    def critic_update(self, batch: np.ndarray, noise: GANStepNoise) -> dict[str, float]:
        losses = self._critic_step(nchw_to_nhwc(batch), noise.prior, noise.coeffs)
        return {k: float(v) for k, v in losses.items()}

    def generator_update(self, batch: np.ndarray, noise: GANStepNoise, beta: float) -> dict[str, float]:
        losses = self._generator_step(nchw_to_nhwc(batch), noise.prior, noise.eps, np.float32(beta))
        return {k: float(v) for k, v in losses.items()}

    def scalar_alpha(self) -> float:
        return float(np.asarray(self.model.param_tanh.alpha_of(None))[0])

    def alpha(self, z: np.ndarray) -> np.ndarray:
        alpha = np.asarray(self.model.param_tanh.alpha_of(self.model.decode_base(z)))
        return alpha if alpha.ndim == 1 else np.moveaxis(alpha, -1, -3)


TRAINERS: dict[str, type[FrameworkTrainer]] = {"conv_vae": VAETrainer, "vaegan": VAEGANTrainer}


def make_trainer(config: BaseConfig, args: argparse.Namespace) -> FrameworkTrainer:
    return TRAINERS[config.model](config, args)


def main(argv: list[str] | None = None) -> int:
    return train_main("keras", make_trainer, argv)


if __name__ == "__main__":
    sys.exit(main())
