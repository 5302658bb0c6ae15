"""Latents from seeds, by the prior an export declares in ``age.prior``.

* ``normal``: ``core.noise.latents`` (standard normal, the same draws as both trainers);
* ``sphere``: the same draws, each sample divided by its L2 norm (uniform on the unit sphere
  of the flattened latent), so one seed gives the same point in every process;
* ``none``: the model has no prior (an autoencoder): there is nothing to sample, and
  :func:`sample` refuses.

Spatial latents (a conv autoencoder's ``(C, H, W)`` feature map) are drawn flat and reshaped in C
order, so a latent is the same numbers whether it is handled flat or shaped.

:func:`on_support` puts latents that came from elsewhere (an encoder: inversion, reconstruction,
interpolation) on the prior's support: onto the unit sphere for ``sphere``.
"""

from __future__ import annotations

import math

import numpy as np

from core import noise as spec_noise
from core.registry import PRIORS  # noqa: F401 - re-exported: the values age.prior may take

#: What ``age.prior`` means when a file has none (exports from before the key existed were all VAEs).
DEFAULT_PRIOR = "normal"
#: A latent whose L2 norm is within this of 1 is already on the unit sphere (float32 rounding of a
#: normalised vector stays far inside it): :func:`on_support` keeps it bit for bit.
UNIT_NORM_TOLERANCE = 1e-5


class NoPrior(ValueError):
    """The model's prior is ``none``: latents cannot be drawn from a seed."""


def to_unit_sphere(latents: np.ndarray) -> np.ndarray:
    """Each sample (first axis) divided by the L2 norm of all its values; float32, same shape."""
    z = np.asarray(latents, dtype=np.float32)
    flat = z.reshape(len(z), -1).astype(np.float64)
    norms = np.linalg.norm(flat, axis=1, keepdims=True)
    flat = flat / np.maximum(norms, np.finfo(np.float64).tiny)  # an all-zero draw has probability 0
    return flat.astype(np.float32).reshape(z.shape)


def on_support(prior: str, latents: np.ndarray) -> np.ndarray:
    """Latents ``(N, *shape)`` brought onto the support of ``prior``, float32.

    For ``sphere`` each sample is projected onto the unit sphere (:func:`to_unit_sphere`), except
    that one whose norm is already within :data:`UNIT_NORM_TOLERANCE` of 1 (an encoder that
    normalises, as the A.G.E. encoder does) is kept exactly as it is, so that inverting an image
    and reconstructing it decode the same numbers; an all-zero latent has no direction and stays
    zero. ``normal`` and ``none`` have all of R^d as support: the latents are returned unchanged.
    """
    z = np.asarray(latents, dtype=np.float32)
    if prior != "sphere":
        return z
    norms = np.linalg.norm(z.reshape(len(z), -1).astype(np.float64), axis=1)
    off = np.abs(norms - 1.0) > UNIT_NORM_TOLERANCE
    if not off.any():
        return z
    out = z.copy()
    out[off] = to_unit_sphere(z[off])
    return out


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
