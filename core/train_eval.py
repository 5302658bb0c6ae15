"""Metrics during training (``--eval-every N --eval-n 512 --eval-metrics fid,kid``).

Every N steps the trainer draws ``eval_n`` samples from fixed noise (:func:`core.noise.latents`,
seed ``--seed``: the sample grid's latents are its first ``--samples``) and compares them with
``eval_n`` training images, drawn once from the seed, through the built-in digits feature network
(:mod:`core.metrics.features`: the same resize and network as ``python -m runtime.evaluate``) with
:func:`core.metrics.suite.compute`. The values go into the step's history entry as ``eval_<name>``
(so ``train_state.json`` and ``--resume`` keep them) and to TensorBoard as ``eval/<name>``; the
first value of the first metric decides the best checkpoint, ``checkpoint_best.safetensors``.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np

from .configs import BaseConfig
from .errors import ConfigError
from .images import to_uint8
from .metrics import features
from .metrics.suite import HIGHER_IS_BETTER, VALUES, compute, parse_metrics
from .priors import fixed_latents
from .registry import get_model_spec

log = logging.getLogger("age.train")

PREFIX = "eval_"
MAX_EVAL_N = 20_000
CHUNK = 256


class TrainingEvaluation:
    """The metrics of one run: real features computed once, fake ones on every call."""

    def __init__(self, config: BaseConfig, data, n: int, metrics: str, seed: int):
        spec = get_model_spec(config.model)
        if spec.prior == "none":
            raise ConfigError(f"--eval-every: model {config.model!r} has no prior to sample from; its metrics "
                              f"would need reconstructions")
        if spec.data != "image":
            raise ConfigError(f"--eval-every: model {config.model!r} trains on {spec.data}; per-frame and FVD "
                              f"metrics during training are not built yet")
        if not 2 <= n <= MAX_EVAL_N:
            raise ConfigError(f"--eval-n must be between 2 and {MAX_EVAL_N}, got {n}")
        self.metrics = parse_metrics(metrics, "--eval-metrics")
        self.criterion = VALUES[self.metrics[0]][0]
        self.network = features.digits()
        self.session = self.network.session()
        self.seed = seed
        self.latents = fixed_latents(config, n, seed)
        real = features.draw_pictures(data, n, [seed, 2], CHUNK)
        self.real = features.extract(real, self.network, session=self.session)

    def __call__(self, sample: Callable[[np.ndarray], np.ndarray]) -> dict[str, float]:
        """{value name: value} for the samples ``sample(z)`` ([0, 1] canonical images) makes."""
        fake = np.concatenate([to_uint8(sample(self.latents[i : i + CHUNK])) for i in range(0, len(self.latents), CHUNK)])
        results = compute(self.metrics, self.real, features.extract(fake, self.network, session=self.session), self.seed)
        return {name: float(r["value"]) for name, r in results.items()}

    def better(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        return value > best if HIGHER_IS_BETTER[self.criterion] else value < best

    def best_in(self, history: list[dict]) -> float | None:
        """The best criterion value a (resumed) run's history holds."""
        best = None
        for entry in history:
            value = entry.get(PREFIX + self.criterion)
            if value is not None and self.better(value, best):
                best = value
        return best
