"""Fréchet distance between Gaussian fits of two feature sets (the FID of Heusel et al. 2017).

Heusel, Ramsauer, Unterthiner, Nessler, Hochreiter, "GANs Trained by a Two Time-Scale Update
Rule Converge to a Local Nash Equilibrium", NeurIPS 2017 (arXiv:1706.08500):

    d^2 = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

with (mu_i, S_i) the mean and covariance of the features (Inception pool3 for the FID proper;
any (n, d) features here). The statistics follow pytorch-fid: the sample mean and ``np.cov``
with ``rowvar=False`` (ddof 1).

The trace term is computed without ``scipy.linalg.sqrtm`` of the non-symmetric product S_1 S_2,
whose round-off gives complex parts and, for rank-deficient covariances (n < d), NaNs. For
symmetric PSD S_1, S_2 the product S_1 S_2 is similar to the symmetric PSD matrix
M = S_1^(1/2) S_2 S_1^(1/2) (S_1 S_2 = S_1^(1/2) M S_1^(-1/2) when S_1 is invertible, and the
eigenvalues agree by continuity otherwise), so

    Tr (S_1 S_2)^(1/2) = Tr (S_1^(1/2) S_2 S_1^(1/2))^(1/2) = sum_i sqrt(lambda_i(M)),

where S_1^(1/2) comes from ``eigh`` (negative round-off eigenvalues clipped to 0) and the
eigenvalues of the symmetrised M are clipped to 0 as well. Every step is real and symmetric.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from .inputs import check_features, check_same_dim

log = logging.getLogger(__name__)


def _warn_rank_deficient(name: str, n: int, d: int) -> None:
    msg = (f"{name}: {n} samples for {d} feature dimensions (n < d): the covariance is rank-deficient, "
           f"so the Fréchet distance is poorly estimated (use n >= d; the FID proper wants n >> 2048)")
    log.warning(msg)
    warnings.warn(msg, RuntimeWarning, stacklevel=3)


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and covariance (d, d) of (n, d) features, float64.

    mu = (1/n) sum_i x_i,   S = 1/(n-1) sum_i (x_i - mu)(x_i - mu)^T   (``np.cov(rowvar=False)``,
    as pytorch-fid). Warns (RuntimeWarning and the log) when n < d.
    """
    x = check_features("features", features)
    n, d = x.shape
    if n < d:
        _warn_rank_deficient("features", n, d)
    mu = x.mean(axis=0)
    sigma = np.atleast_2d(np.cov(x, rowvar=False))
    return mu, sigma


def _check_stats(name_mu: str, mu: np.ndarray, name_sigma: str, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    if mu.ndim != 1:
        raise ValueError(f"{name_mu}: expected a 1-D mean vector, got shape {mu.shape}")
    d = mu.shape[0]
    if sigma.shape != (d, d):
        raise ValueError(f"{name_sigma}: expected a ({d}, {d}) covariance to match {name_mu}, got shape {sigma.shape}")
    if not np.all(np.isfinite(mu)):
        raise ValueError(f"{name_mu}: contains NaN or infinite values")
    if not np.all(np.isfinite(sigma)):
        raise ValueError(f"{name_sigma}: contains NaN or infinite values")
    return mu, 0.5 * (sigma + sigma.T)


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """Symmetric PSD square root of a symmetric matrix via ``eigh`` (eigenvalues clipped at 0)."""
    w, v = np.linalg.eigh(sigma)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr (S_1 S_2)^(1/2) for symmetric PSD S_1, S_2, as sum_i sqrt(lambda_i(S_1^½ S_2 S_1^½)).

    Real by construction: S_1^½ from ``eigh``, the symmetrised product's eigenvalues clipped at 0.
    """
    root = _psd_sqrt(sigma1)
    m = root @ sigma2 @ root
    eig = np.linalg.eigvalsh(0.5 * (m + m.T))
    return float(np.sqrt(np.clip(eig, 0.0, None)).sum())


def frechet_from_stats(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (Heusel et al. 2017).

    d^2 = ||mu1 - mu2||^2 + Tr(sigma1) + Tr(sigma2) - 2 Tr (sigma1 sigma2)^(1/2),

    the trace of the square root taken as in :func:`trace_sqrt_product`. Agrees with
    ``pytorch_fid.fid_score.calculate_frechet_distance`` (which uses ``scipy.linalg.sqrtm``) on
    well-conditioned statistics; a real float, clipped at 0 against round-off (the exact value is
    >= 0: it is the squared 2-Wasserstein distance between the Gaussians).
    """
    mu1, sigma1 = _check_stats("mu1", mu1, "sigma1", sigma1)
    mu2, sigma2 = _check_stats("mu2", mu2, "sigma2", sigma2)
    check_same_dim("mu1", mu1, "mu2", mu2)
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2))
    return max(value, 0.0)


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance (FID on Inception features) between two (n, d) feature sets.

    :func:`gaussian_stats` of each, then :func:`frechet_from_stats`. Raises ValueError naming
    ``real`` or ``fake`` for a non-2-D array, fewer than 2 rows, NaN/inf, or differing d; warns
    when a set has fewer samples than dimensions (its covariance is then rank-deficient: the
    result stays a finite real number, but it is a poor estimate).
    """
    x = check_features("real", real)
    y = check_features("fake", fake)
    check_same_dim("real", x, "fake", y)
    d = x.shape[1]
    for name, arr in (("real", x), ("fake", y)):
        if arr.shape[0] < d:
            _warn_rank_deficient(name, arr.shape[0], d)
    mu1, s1 = x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))
    mu2, s2 = y.mean(axis=0), np.atleast_2d(np.cov(y, rowvar=False))
    return frechet_from_stats(mu1, s1, mu2, s2)
