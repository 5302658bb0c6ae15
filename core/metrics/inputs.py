"""Checks of the feature arrays every metric takes, with errors that name the argument."""

from __future__ import annotations

import numpy as np


def check_features(name: str, x: np.ndarray, min_rows: int = 2) -> np.ndarray:
    """``x`` as a float64 (n, d) array with n >= ``min_rows``, d >= 1, all finite.

    Raises ValueError naming ``name`` otherwise.
    """
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a numeric (n, d) array ({exc})") from None
    if np.asarray(x).dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected real values, got dtype {np.asarray(x).dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (n, d) array, got shape {arr.shape}")
    n, d = arr.shape
    if d < 1:
        raise ValueError(f"{name}: expected at least one feature column, got shape {arr.shape}")
    if n < min_rows:
        raise ValueError(f"{name}: need at least {min_rows} rows (samples), got {n}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return arr


def check_same_dim(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    """ValueError naming both arguments when their feature dimensions (last axis) differ."""
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"{name_b}: feature dimension {b.shape[-1]} differs from {name_a}'s {a.shape[-1]}")
