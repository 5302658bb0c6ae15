"""Paths between two latents: linear and spherical interpolation, NumPy only (the runtime's
``session.interpolate`` and the trainers' per-epoch interpolation strips).

Which geometry a model's latents get comes from its prior (``age.prior``, :data:`GEOMETRIES`):

* ``normal`` and ``none`` -> **linear**: ``z(t) = (1 - t) a + t b``;
* ``sphere`` -> **spherical**: the great-circle arc from ``a`` to ``b`` on the unit sphere, walked
  at constant angular speed, so every point is a latent the prior can produce.

Spherical linear interpolation (slerp; Shoemake 1985, "Animating rotation with quaternion
curves", SIGGRAPH '85), written for vectors of any norm as White (2016, "Sampling Generative
Networks", arXiv:1609.04468) uses it in the latent spaces of generative models::

    cos(omega) = <a, b> / (|a| |b|)
    slerp(a, b; t) = sin((1 - t) omega) / sin(omega) * a + sin(t omega) / sin(omega) * b

For unit ``a`` and ``b`` every ``slerp(a, b; t)`` has unit norm, and ``t`` is proportional to the
angle travelled. Where ``sin(omega)`` is too small to divide by (the two latents are near-identical
or point in opposite directions: ``|cos(omega)| > SLERP_LINEAR_COS``, i.e. ``omega`` within about
1.8 degrees of 0 or of 180), :func:`slerp` falls back to :func:`lerp`. On the unit sphere
(:func:`spherical_path`) the fallback is projected back onto the sphere: for near-identical
latents that is the same arc, its points off the evenly spaced angles by under 2e-5 of ``omega``.
Opposite (antipodal) points have no unique great circle between them, and the line between them
passes through the origin, so there the path goes through one fixed point perpendicular to ``a``
(:func:`perpendicular`) as two quarter circles.

A latent may have any shape (a vector, or a conv autoencoder's ``(C, h, w)`` feature map): it is
handled flat, in C order, and the path keeps its shape. The math is done in float64;
:func:`path` returns float32 with its first and last points exactly ``a`` and ``b``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The interpolation geometry of each ``age.prior`` value.
GEOMETRIES = {"normal": "linear", "none": "linear", "sphere": "spherical"}
#: Above this ``|cos(omega)|`` (omega within ~1.8 degrees of 0 or 180), slerp falls back to lerp.
SLERP_LINEAR_COS = 0.9995
#: Steps of an interpolation when none are given (the CLI's --steps, the server's ``steps``).
DEFAULT_STEPS = 8
#: Fewest steps: the two endpoints.
MIN_STEPS = 2


def geometry(prior: str) -> str:
    """``"linear"`` or ``"spherical"``: how latents of a model with ``prior`` are interpolated."""
    try:
        return GEOMETRIES[prior]
    except KeyError:
        raise ValueError(f"prior must be one of {', '.join(GEOMETRIES)}, got {prior!r}") from None


def check_steps(steps: Any, maximum: int, what: str = "steps") -> int:
    """``steps`` as an int in ``MIN_STEPS..maximum``; otherwise ValueError naming ``what``."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not MIN_STEPS <= steps <= maximum:
        raise ValueError(f"{what} must be an integer between {MIN_STEPS} and {maximum}, got {steps!r}")
    return int(steps)


def _pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both latents as float64, checked to have one shape and finite values."""
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a64.shape != b64.shape:
        raise ValueError(f"interpolation: the two latents differ in shape, {a64.shape} and {b64.shape}")
    if not (np.all(np.isfinite(a64)) and np.all(np.isfinite(b64))):
        raise ValueError("interpolation: latents contain NaN or infinity")
    return a64, b64


def _weights(t: Any) -> np.ndarray:
    t64 = np.asarray(t, dtype=np.float64)
    if t64.ndim > 1 or not np.all(np.isfinite(t64)):
        raise ValueError(f"interpolation: t must be a finite number or a 1-D array, got shape {t64.shape}")
    return t64


def lerp(a: Any, b: Any, t: Any) -> np.ndarray:
    """Linear interpolation ``(1 - t) a + t b`` (float64).

    ``t`` a number: one latent, ``a``'s shape; ``t`` a 1-D array: ``(len(t), *a.shape)``.
    """
    a64, b64 = _pair(a, b)
    t64 = _weights(t)
    tt = t64.reshape(t64.shape + (1,) * a64.ndim)
    return (1.0 - tt) * a64 + tt * b64


def cos_angle(a: Any, b: Any) -> float | None:
    """``cos(omega)``, the cosine of the angle between the flattened latents; None when either is
    all zeros (it has no direction)."""
    a64, b64 = _pair(a, b)
    na, nb = np.linalg.norm(a64.ravel()), np.linalg.norm(b64.ravel())
    if na == 0.0 or nb == 0.0:
        return None
    return float(np.clip(np.dot(a64.ravel(), b64.ravel()) / (na * nb), -1.0, 1.0))


def slerp(a: Any, b: Any, t: Any, threshold: float = SLERP_LINEAR_COS) -> np.ndarray:
    """Spherical linear interpolation (Shoemake 1985) of latents of any norm (White 2016), float64.

    ``sin((1 - t) omega) / sin(omega) * a + sin(t omega) / sin(omega) * b`` with ``omega`` the angle
    between ``a`` and ``b``; :func:`lerp` when ``|cos(omega)| > threshold`` or either latent is all
    zeros. ``t`` as for :func:`lerp`.
    """
    a64, b64 = _pair(a, b)
    t64 = _weights(t)
    cos = cos_angle(a64, b64)
    if cos is None or abs(cos) > threshold:
        return lerp(a64, b64, t64)
    omega = np.arccos(cos)
    sin = np.sin(omega)
    tt = t64.reshape(t64.shape + (1,) * a64.ndim)
    return (np.sin((1.0 - tt) * omega) / sin) * a64 + (np.sin(tt * omega) / sin) * b64


def unit(z: Any) -> np.ndarray:
    """``z`` (one latent, any shape) divided by its L2 norm, float64; an all-zero ``z`` is returned as it is."""
    z64 = np.asarray(z, dtype=np.float64)
    norm = np.linalg.norm(z64.ravel())
    return z64 / norm if norm > 0.0 else z64.copy()


def perpendicular(a: Any) -> np.ndarray:
    """A fixed unit latent perpendicular to ``a`` (which must have at least 2 values): the
    coordinate axis least aligned with ``a`` (the first, on ties), made orthogonal to it.
    ``perpendicular(-a) == perpendicular(a)``, so a path and its reverse go the same way."""
    u = unit(a).ravel()
    if u.size < 2:
        raise ValueError("perpendicular: a 1-value latent has no perpendicular direction")
    k = int(np.argmin(np.abs(u)))
    m = -u[k] * u
    m[k] += 1.0
    return unit(m).reshape(np.shape(a))


def spherical_path(a: Any, b: Any, t: Any) -> np.ndarray:
    """Points ``(len(t), *a.shape)`` on the unit sphere from ``unit(a)`` (t = 0) to ``unit(b)`` (t = 1).

    :func:`slerp` of the two unit latents, each point projected back onto the sphere (a no-op up to
    rounding, except where slerp fell back to lerp). Antipodal latents (``cos(omega) <
    -SLERP_LINEAR_COS``) have no unique great circle: the path is the slerp from ``unit(a)`` to
    ``m = perpendicular(a)`` for ``t <= 1/2`` and from ``m`` to ``unit(b)`` after. A 1-value latent
    (the "sphere" is the two points -1 and +1) jumps from ``a`` to ``b`` at ``t = 1/2``.
    """
    ua, ub = unit(a), unit(b)
    t64 = np.atleast_1d(_weights(t))
    cos = cos_angle(ua, ub)
    if ua.size < 2:
        out = np.where(t64.reshape(-1, *([1] * ua.ndim)) < 0.5, ua, ub)
    elif cos is not None and cos < -SLERP_LINEAR_COS:
        m = perpendicular(ua)
        first = t64 <= 0.5
        out = np.empty((len(t64), *ua.shape), np.float64)
        out[first] = slerp(ua, m, 2.0 * t64[first])
        out[~first] = slerp(m, ub, 2.0 * t64[~first] - 1.0)
    else:
        out = slerp(ua, ub, t64)
    flat = out.reshape(len(out), -1)
    norms = np.linalg.norm(flat, axis=1, keepdims=True)
    flat = np.divide(flat, norms, out=flat.copy(), where=norms > 0.0)
    return flat.reshape(out.shape)


def path(a: Any, b: Any, steps: int, geometry_name: str) -> np.ndarray:
    """``steps`` float32 latents from ``a`` to ``b`` inclusive, at ``t = 0, 1/(steps-1), ..., 1``.

    ``geometry_name`` is ``"linear"`` (:func:`lerp`) or ``"spherical"`` (:func:`spherical_path`:
    give unit latents). The first and last points are ``a`` and ``b`` themselves, so they decode
    to exactly what ``a`` and ``b`` decode to.
    """
    steps = check_steps(steps, np.iinfo(np.int64).max)
    a64, b64 = _pair(a, b)
    t = np.linspace(0.0, 1.0, steps)
    if geometry_name == "linear":
        out = lerp(a64, b64, t)
    elif geometry_name == "spherical":
        out = spherical_path(a64, b64, t)
    else:
        raise ValueError(f"geometry must be one of {', '.join(sorted(set(GEOMETRIES.values())))}, got {geometry_name!r}")
    out = out.astype(np.float32)
    out[0] = np.asarray(a, dtype=np.float32)
    out[-1] = np.asarray(b, dtype=np.float32)
    return out
