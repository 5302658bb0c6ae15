"""``python -m keras_impl.train`` (twin: ``torch_impl/train.py``; flags: :mod:`core.cli`).

The loop, run directory and logging live in :mod:`core.training`, the objective's schedule in
:class:`core.trainer_base.FrameworkTrainer`; this file only says how Keras builds a model and its
optimizers and runs one named update of :mod:`keras_impl.objectives`. Initial weights are drawn in
:mod:`core.init` from the seed, so both frameworks start from the same model. Each update runs as a
``tf.function`` graph with ``GradientTape``, without AutoGraph: updates have no tensor-dependent
Python control flow, and our own errors raised while tracing (e.g. :class:`core.errors.BatchTooSmall`)
then reach the CLI as they are instead of wrapped in a StagingError.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from core.configs import BaseConfig  # noqa: E402
from core.objectives.base import Objective, Update  # noqa: E402
from core.trainer_base import Backend, FrameworkTrainer, SpeedOptions  # noqa: E402
from core.training import main as train_main  # noqa: E402

from .init import initialize  # noqa: E402
from .checkpoint import load_optimizers, load_tensors, save_model, save_optimizers  # noqa: E402
from .models import build  # noqa: E402
from .objectives import update_function  # noqa: E402
from .optimizers import Adam  # noqa: E402
from .parts import run_part, to_keras_array  # noqa: E402

BACKEND = Backend("keras", run_part, save_model, load_tensors, save_optimizers, load_optimizers)


def parameter_groups(model: keras.Model) -> dict[str, list[keras.Variable]]:
    """The model's ``parameter_groups()`` (one per optimizer of its objective), or ``{"model": all}``."""
    hook = getattr(model, "parameter_groups", None)
    return dict(hook()) if hook else {"model": list(model.trainable_variables)}


class Trainer(FrameworkTrainer):
    backend = BACKEND

    def build_model(self) -> keras.Model:
        keras.utils.set_random_seed(self.seed)  # the framework's own RNG: dropout without injected masks
        return initialize(build(self.config.model, self.config), self.seed)

    def build_optimizers(self) -> dict[str, keras.optimizers.Optimizer]:
        self.groups = parameter_groups(self.model)
        optimizers = {}
        for o in self.objective.optimizers():
            optimizer = Adam(learning_rate=o.lr, beta_1=o.betas[0], beta_2=o.betas[1], epsilon=o.eps)
            optimizer.build(self.groups[o.name])
            optimizers[o.name] = optimizer
        self.compiled: dict[str, Callable] = {}
        return optimizers

    def _compile(self, update: Update) -> Callable:
        fn = update_function(self.objective.name, update.name)
        model, objective = self.model, self.objective
        variables, optimizer = self.groups[update.optimizer], self.optimizers[update.optimizer]

        @tf.function(reduce_retracing=True, autograph=False, jit_compile=self.speed.compile or None)
        def step(batch, inputs):
            with tf.GradientTape() as tape:
                losses = fn(model, batch, inputs, objective)
            optimizer.apply_gradients(zip(tape.gradient(losses[update.loss], variables), variables))
            return losses

        return step

    def run_update(self, update: Update, batch: np.ndarray, inputs: dict[str, np.ndarray]) -> dict[str, float]:
        if update.name not in self.compiled:
            self.compiled[update.name] = self._compile(update)
        kind = "video" if batch.ndim == 5 else "image"  # canonical (B, T, C, H, W) clips or (B, C, H, W) images
        losses = self.compiled[update.name](to_keras_array(batch, kind), inputs)
        return {k: float(v) for k, v in losses.items()}


def make_trainer(config: BaseConfig, objective: Objective, seed: int, total_steps: int = 1,
                 speed: SpeedOptions | None = None) -> Trainer:
    return Trainer(config, objective, seed, total_steps, speed)


def main(argv: list[str] | None = None) -> int:
    return train_main("keras", make_trainer, argv)


if __name__ == "__main__":
    sys.exit(main())
