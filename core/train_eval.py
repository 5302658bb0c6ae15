"""Metrics during training (``--eval-every N --eval-n 512 --eval-metrics fid,kid``).

Every N steps the trainer makes ``eval_n`` pictures and compares them with ``eval_n`` training
images: the reference set, the first ``eval_n`` of one fixed permutation of the data
(:func:`core.metrics.features.draw_pictures`, key ``[seed, 2]``). What it makes depends on the
model's registration, not its name (:func:`source_of`, :attr:`TrainingEvaluation.source`, logged
once when training starts):

- ``samples``: a model with a prior decodes fixed noise (:func:`core.priors.fixed_latents`, seed
  ``--seed``: the sample grid's latents are its first ``--samples``);
- ``reconstructions``: a model without a prior (an autoencoder) reconstructs the next ``eval_n``
  pictures of that permutation (as 8-bit pictures), disjoint from the reference set when the data
  hold ``2 * eval_n`` (else they repeat some of it, with a warning). A perfect reconstruction then
  scores what two disjoint halves of the data score against each other (the real-vs-real floor of
  ``python -m core.report``). These numbers say how close the reconstructions come to the data, not
  how good the model is as a generator (it has no prior to sample): they compare with other
  reconstructions, not with samples.

A video model is measured **per frame** (:func:`core.metrics.features.frame_sample`: frame ``i mod
T`` of clip ``i``, for its samples and for the reference clips alike), as ``python -m
runtime.evaluate`` does; FVD needs I3D, which is no part of training. A model with neither a prior
nor an encoder is refused (a ConfigError naming ``--eval-every``). The comparison goes through the built-in digits feature network
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
from .registry import get_model_spec, runtime_facts

log = logging.getLogger("age.train")

PREFIX = "eval_"
MAX_EVAL_N = 20_000
CHUNK = 256
#: what :class:`TrainingEvaluation` measures: decoded fixed noise, or reconstructed training images
SAMPLES, RECONSTRUCTIONS = "samples", "reconstructions"
#: the draw key of the data permutation: its first ``n`` pictures are the reference set, the next
#: ``n`` what a model without a prior reconstructs
REAL_KEY = 2


def source_of(config: BaseConfig) -> str:
    """What ``--eval-every`` measures of a model, from its registration: ``"samples"`` when it has a
    prior, ``"reconstructions"`` when it has none but reconstructs; anything else is a ConfigError."""
    spec = get_model_spec(config.model)
    if spec.prior != "none":
        return SAMPLES
    reconstructs = runtime_facts(config)["reconstructs"]
    if spec.data == "image" and reconstructs:
        return RECONSTRUCTIONS
    if reconstructs:
        raise ConfigError(f"--eval-every: model {config.model!r} has no prior to sample from, and reconstructions "
                          f"are measured for image models only (it trains on {spec.data})")
    raise ConfigError(f"--eval-every: model {config.model!r} has neither a prior to sample from nor an encoder "
                      f"to reconstruct with; there is nothing to measure")


class TrainingEvaluation:
    """The metrics of one run: real features computed once, fake ones on every call."""

    def __init__(self, config: BaseConfig, data, n: int, metrics: str, seed: int):
        #: "samples" (decoded fixed noise) or "reconstructions" (of training images: no prior)
        self.source = source_of(config)
        if not 2 <= n <= MAX_EVAL_N:
            raise ConfigError(f"--eval-n must be between 2 and {MAX_EVAL_N}, got {n}")
        self.metrics = parse_metrics(metrics, "--eval-metrics")
        self.criterion = VALUES[self.metrics[0]][0]
        self.network = features.digits()
        self.session = self.network.session()
        self.seed = seed
        #: clips are measured one frame a clip, sampled chunk by chunk (whole clips never all in memory)
        self.per_frame = get_model_spec(config.model).data == "video"
        each = features.frame_sample if self.per_frame else None
        #: what the model maps to pictures: fixed latents, or uint8 (n, H, W, C) training pictures
        if self.source == SAMPLES:
            self.inputs = fixed_latents(config, n, seed)
            real = features.draw_pictures(data, n, [seed, REAL_KEY], CHUNK, each)
        else:
            pictures = features.draw_pictures(data, 2 * n, [seed, REAL_KEY], CHUNK)
            real, self.inputs = pictures[:n], pictures[n:]
            if 2 * n > len(data):
                log.warning("--eval-n %d: the data hold %d pictures, fewer than 2 x %d, so the reconstructed "
                            "pictures repeat some of the reference set", n, len(data), n)
        self.real = features.extract(real, self.network, session=self.session)
        log.info("--eval-every: %s of %d %s against %d training %s (%s features); best by %s",
                 ",".join(self.metrics), n, self.source, n, "clips, per frame" if self.per_frame else "images",
                 self.network.name, self.criterion)

    def pictures(self, x: np.ndarray, start: int) -> np.ndarray:
        """uint8 images as they are, or one frame of each uint8 clip of a chunk starting at clip
        ``start`` (``per_frame``)."""
        return features.frame_sample(x, start) if self.per_frame else x

    def chunk(self, start: int) -> np.ndarray:
        """Inputs ``start:start + CHUNK``: latents, or [0, 1] float32 (n, C, H, W) images."""
        x = self.inputs[start : start + CHUNK]
        return x if self.source == SAMPLES else np.moveaxis(x, -1, -3).astype(np.float32) / np.float32(255.0)

    def __call__(self, make: Callable[[np.ndarray], np.ndarray]) -> dict[str, float]:
        """{value name: value} for the pictures ``make`` ([0, 1] canonical images) makes of the
        inputs: ``make(z)`` of the fixed latents (``source`` "samples") or ``make(images)`` of the
        drawn training images ("reconstructions")."""
        fake = np.concatenate([self.pictures(to_uint8(make(self.chunk(i))), i) for i in range(0, len(self.inputs), CHUNK)])
        fake_features = features.extract(fake, self.network, session=self.session)
        results = compute(self.metrics, self.real, fake_features, self.seed)
        return {name: float(r["value"]) for name, r in results.items()}

    def measure(self, trainer) -> dict[str, float]:
        """The metrics of ``trainer``'s model now: its ``generate`` (whole clips for a video model) or its
        ``reconstruct``, as ``source`` says."""
        return self(trainer.generate if self.source == SAMPLES else trainer.reconstruct)

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
