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
