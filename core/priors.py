"""The latent priors on the training side: the unit-sphere projection and the fixed-noise latents.

``sphere`` latents (A.G.E.) are N(0, I) draws projected onto the unit sphere with one formula
everywhere in training, x / sqrt(Σ x^2 + SPHERE_EPS): the prior's noise here, both twins'
encoder outputs (``*_impl/layers/sphere.py``) and their ONNX exports. (The runtime's
:mod:`runtime.priors` projects the same way up to float rounding.)
"""

from __future__ import annotations

import numpy as np

from .configs import BaseConfig
from .noise import latents

#: eps of the unit-sphere projection (far below float32's resolution of a norm near 1; it keeps
#: the projection's gradient finite at 0)
SPHERE_EPS = 1e-12


def to_sphere(x: np.ndarray) -> np.ndarray:
    """Each row (first axis; the rest flattened) divided by sqrt(Σ x^2 + SPHERE_EPS), float32."""
    x = np.asarray(x, dtype=np.float32)
    flat = x.reshape(len(x), -1).astype(np.float64)
    flat = flat / np.sqrt(np.sum(flat * flat, axis=1, keepdims=True) + SPHERE_EPS)
    return flat.astype(np.float32).reshape(x.shape)


def fixed_latents(config: BaseConfig, n: int, seed: int) -> np.ndarray | None:
    """``n`` fixed-noise latents of ``config``'s prior (:func:`core.noise.latents`, on the sphere
    for ``sphere``): the sample grids' and the training evaluation's. None for a model whose
    latents have no prior to sample (an autoencoder: it only reconstructs)."""
    from .registry import get_model_spec, latent_shape  # the registry imports the models, which import this

    prior = get_model_spec(config.model).prior
    if prior == "none":
        return None
    shape = latent_shape(config)
    z = latents(n, int(np.prod(shape)), seed).reshape(n, *shape)
    return to_sphere(z) if prior == "sphere" else z
