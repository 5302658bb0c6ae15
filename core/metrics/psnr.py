"""PSNR of one model output against another: how much a reduced-precision variant changed it.

``10 log10(peak^2 / MSE)`` in dB over every value, in float64, with ``peak`` the width of the
model's value range (``high - low``; the reference's own range when the model declares none).
Shared by the export's variant table (:mod:`export.variants`), the runtime's ``precision="auto"``
(:mod:`runtime.precision`, whose documented bound is 40 dB) and ``bench/runtime.py``.
"""

from __future__ import annotations

import math

import numpy as np


def psnr(reference: np.ndarray, output: np.ndarray, value_range: tuple[float, float] | None) -> float:
    """PSNR of ``output`` against ``reference`` in dB: inf when identical, -inf when the shapes differ
    or ``output`` holds a NaN or infinity (no quality at all)."""
    ref, out = np.asarray(reference, np.float64), np.asarray(output, np.float64)
    if ref.shape != out.shape or not np.all(np.isfinite(out)):
        return -math.inf
    low, high = value_range if value_range else (float(ref.min()), float(ref.max()))
    mse = float(np.mean((ref - out) ** 2))
    peak = max(high - low, 1e-12)
    return math.inf if mse == 0.0 else 10.0 * math.log10(peak * peak / mse)
