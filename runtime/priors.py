"""Latents from seeds, by the prior an export declares in ``age.prior``.

* ``normal``: ``core.noise.latents`` (standard normal, the same draws as both trainers);
* ``sphere``: the same draws, each sample divided by its L2 norm (uniform on the unit sphere
  of the flattened latent), so one seed gives the same point in every process;
* ``none``: the model has no prior (an autoencoder): there is nothing to sample, and
  :func:`sample` refuses.

Spatial latents (a conv autoencoder's ``(C, H, W)`` feature map) are drawn flat and reshaped in C
order, so a latent is the same numbers whether it is handled flat or shaped.
"""

from __future__ import annotations

import math

import numpy as np

from core import noise as spec_noise
from core.registry import PRIORS  # noqa: F401 - re-exported: the values age.prior may take

#: What ``age.prior`` means when a file has none (exports from before the key existed were all VAEs).
DEFAULT_PRIOR = "normal"


class NoPrior(ValueError):
    """The model's prior is ``none``: latents cannot be drawn from a seed."""


def to_unit_sphere(latents: np.ndarray) -> np.ndarray:
    """Each sample (first axis) divided by the L2 norm of all its values; float32, same shape."""
    z = np.asarray(latents, dtype=np.float32)
    flat = z.reshape(len(z), -1).astype(np.float64)
    norms = np.linalg.norm(flat, axis=1, keepdims=True)
    flat = flat / np.maximum(norms, np.finfo(np.float64).tiny)  # an all-zero draw has probability 0
    return flat.astype(np.float32).reshape(z.shape)


def sample(prior: str, n: int, shape: tuple[int, ...], seed: int | None = 0) -> np.ndarray:
    """``n`` float32 latents of per-sample ``shape`` drawn from ``prior`` with ``seed`` (None: fresh)."""
    if prior == "none":
        raise NoPrior("this model has no prior (age.prior is 'none'): it cannot generate from seeds")
    if prior not in ("normal", "sphere"):
        raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
    z = spec_noise.latents(n, math.prod(shape), seed)
    if prior == "sphere":
        z = to_unit_sphere(z)
    return z.reshape(n, *shape)
