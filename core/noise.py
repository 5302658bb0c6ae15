"""Seeded latent noise: one seed gives the same latents in torch, Keras and the runtime.

Provenance: NumPy's PCG64 ``Generator`` (``np.random.default_rng(seed)``) drawing standard
normals in float32. No framework RNG is involved, so the fixed-noise grids of both trainers
and the runtime's ``generate(seed=...)`` agree bit for bit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import ConfigError

#: Seeds accepted everywhere a user gives one (the server draws 63-bit seeds).
MAX_SEED = 2**63 - 1
#: Variation strength, a fraction of the posterior variance (seed 002 uses 0.01).
SCALE_RANGE = (0.0, 100.0)


def check_seed(seed: Any) -> int | None:
    """None (fresh entropy) or an integer 0..MAX_SEED, else :class:`ConfigError` naming ``seed``."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"seed must be an integer between 0 and {MAX_SEED}, got {seed!r}")
    return int(seed)


def check_scale(scale: Any) -> float:
    """A variation strength in SCALE_RANGE, else :class:`ConfigError` naming ``scale``."""
    low, high = SCALE_RANGE
    try:
        value = float(scale)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(scale, bool) or not (math.isfinite(value) and low <= value <= high):
        raise ConfigError(f"scale must be a number between {low:g} and {high:g}, got {scale!r}")
    return value


def latents(n: int, dim: int, seed: int | None = 0) -> np.ndarray:
    """(n, dim) float32 standard-normal latents from ``seed`` (None: fresh entropy)."""
    if n < 0 or dim <= 0:
        raise ValueError(f"latents: need n >= 0 and dim > 0, got n={n}, dim={dim}")
    return np.random.default_rng(seed).standard_normal((n, dim), dtype=np.float32)


def variation_latents(mu: np.ndarray, logvar: np.ndarray, n: int, scale: float, seed: int | None = 0) -> np.ndarray:
    """N latents around one encoded image (seed 002's ``genpic``).

    z_i = mu + sqrt(scale) * exp(0.5 * logvar) * eps_i,  eps_i = latents(n, dim, seed)[i]

    ``scale`` (w, default 0.01) scales the posterior *variance*: the samples have variance
    w * sigma^2 around mu. ``mu``/``logvar`` are (dim,) or (1, dim).
    """
    mu = np.asarray(mu, dtype=np.float32).reshape(-1)
    logvar = np.asarray(logvar, dtype=np.float32).reshape(-1)
    if mu.shape != logvar.shape:
        raise ValueError(f"variation_latents: mu {mu.shape} and logvar {logvar.shape} differ")
    if scale < 0:
        raise ValueError(f"variation_latents: scale must be >= 0, got {scale}")
    eps = latents(n, mu.shape[0], seed)
    std = np.exp(0.5 * logvar, dtype=np.float32)
    return (mu[None, :] + np.float32(np.sqrt(scale)) * std[None, :] * eps).astype(np.float32)


#: Independent noise streams of one training step (the second entry of the generator's seed).
#: An objective names the streams it draws; a new stream takes the next free number.
NOISE_STREAMS = {"eps": 1, "prior": 2, "interpolation": 3, "dropout_real": 4, "dropout_fake": 5,
                 "dropout_generator": 6}
#: Streams drawn uniform in [0, 1); every other stream is standard normal.
UNIFORM_STREAMS = ("interpolation", "dropout_real", "dropout_fake", "dropout_generator")


def step_noise(seed: int, step: int, shape: tuple[int, ...], stream: str = "eps", index: int = 0) -> np.ndarray:
    """Per-step noise, the same in both frameworks for the same (seed, step, stream, index).

    ``eps``: reparameterisation N(0, 1); ``prior``: generator input z ~ N(0, 1);
    ``interpolation``: the gradient penalty's per-sample U(0, 1) coefficients; ``dropout_*``:
    U(0, 1) draws that become dropout masks (:func:`dropout_masks`). ``index`` tells apart several
    draws of one stream in a step (one per dropout layer).
    """
    key = [seed, NOISE_STREAMS[stream], step] + ([index] if index else [])
    rng = np.random.default_rng(key)
    if stream in UNIFORM_STREAMS:
        return rng.random(shape, dtype=np.float32)
    return rng.standard_normal(shape, dtype=np.float32)


def dropout_masks(seed: int, step: int, batch: int, shapes: tuple[tuple[int, ...], ...], rate: float,
                  stream: str) -> tuple[np.ndarray, ...]:
    """Keep-masks (1 kept, 0 dropped; float32) for one pass through layers of per-sample
    ``shapes``: a unit is dropped with probability ``rate``. Drawn here and injected into both
    twins (whose Dropout scales kept units by 1 / (1 - rate), as torch and Keras do), so training
    mode agrees between frameworks like the reparameterisation noise does."""
    return tuple((step_noise(seed, step, (batch, *shape), stream, i + 1) >= rate).astype(np.float32)
                 for i, shape in enumerate(shapes))
