"""Kernel Inception Distance: unbiased MMD^2 with a cubic polynomial kernel (Bińkowski et al. 2018).

Bińkowski, Sutherland, Arbel, Gretton, "Demystifying MMD GANs", ICLR 2018 (arXiv:1801.01401):

    k(x, y) = (gamma x^T y + coef0)^degree,   default gamma = 1/d, coef0 = 1, degree = 3

    MMD^2_u(X, Y) = 1/(m(m-1)) sum_{i != j} k(x_i, x_j) + 1/(n(n-1)) sum_{i != j} k(y_i, y_j)
                    - 2/(mn) sum_{i, j} k(x_i, y_j)

KID is the mean of MMD^2_u over ``subsets`` random subsets of ``subset_size`` samples of each set
(drawn without replacement within a subset, independently between subsets), reported with the
standard deviation over subsets, **population std (ddof 0)**: torch-fidelity 0.4.0
(``metric_kid.kid_features_to_metric``: ``np.std``) and torchmetrics 1.9.0
(``KernelInceptionDistance.compute``: ``std(unbiased=False)``) both use ddof 0. With m = n the
estimator is exactly theirs (``metric_kid.mmd2`` with ``mmd_est="unbiased"``;
``torchmetrics.image.kid.maximum_mean_discrepancy``): the cross term keeps its diagonal and is
divided by m^2. KID is unbiased, so it can be slightly negative for matching distributions.

Differences from the references, by design: subsets come from ``np.random.default_rng(seed)``
(torch-fidelity: ``np.random.RandomState(rng_seed)``; torchmetrics: ``torch.randperm``), so the
subsets, though not the estimator, differ from theirs; and ``subset_size`` is clipped to the
smaller set instead of raising. With ``subsets=1`` and ``subset_size`` equal to both set sizes,
every package uses all points and the results agree (MMD^2_u does not depend on sample order).
"""

from __future__ import annotations

import numpy as np

from .inputs import check_features, check_same_dim


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None,
                      coef0: float = 1.0) -> np.ndarray:
    """Gram matrix k(x_i, y_j) = (gamma x_i^T y_j + coef0)^degree, gamma defaulting to 1/d. float64."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    return (gamma * (x @ y.T) + coef0) ** degree


def _check_kernel_params(degree: int, gamma: float | None, coef0: float) -> None:
    if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or degree < 1:
        raise ValueError(f"degree: expected a positive integer, got {degree!r}")
    if gamma is not None and not (np.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma: expected None or a positive finite number, got {gamma!r}")
    if not np.isfinite(coef0):
        raise ValueError(f"coef0: expected a finite number, got {coef0!r}")


def mmd2_from_kernels(k_xx: np.ndarray, k_xy: np.ndarray, k_yy: np.ndarray) -> float:
    """Unbiased MMD^2 from Gram matrices: (m, m), (m, n), (n, n); the diagonals of k_xx and k_yy dropped.

    MMD^2_u = (sum K_XX - tr K_XX)/(m(m-1)) + (sum K_YY - tr K_YY)/(n(n-1)) - 2 sum K_XY/(mn).
    """
    m, n = k_xx.shape[0], k_yy.shape[0]
    xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    xy = k_xy.sum() / (m * n)
    return float(xx + yy - 2.0 * xy)


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None,
                  coef0: float = 1.0) -> float:
    """Unbiased MMD^2 between feature sets x (m, d) and y (n, d) under the polynomial kernel.

    See the module docstring for the formula. With m = n it equals torch-fidelity's
    ``metric_kid.mmd2(..., mmd_est="unbiased")`` and torchmetrics' ``poly_mmd`` on the same inputs.
    ValueError naming ``x`` or ``y`` for a bad array (not 2-D, fewer than 2 rows, NaN/inf, other d).
    """
    x = check_features("x", x)
    y = check_features("y", y)
    check_same_dim("x", x, "y", y)
    _check_kernel_params(degree, gamma, coef0)
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    k_xx = polynomial_kernel(x, x, degree, gamma, coef0)
    k_yy = polynomial_kernel(y, y, degree, gamma, coef0)
    k_xy = polynomial_kernel(x, y, degree, gamma, coef0)
    return mmd2_from_kernels(k_xx, k_xy, k_yy)


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0, degree: int = 3, gamma: float | None = None,
                              coef0: float = 1.0) -> tuple[float, float]:
    """KID (Bińkowski et al. 2018): (mean, std) of MMD^2_u over random subsets; std is ddof 0.

    For each of ``subsets`` subsets, ``rng.choice(n_real, m, replace=False)`` then
    ``rng.choice(n_fake, m, replace=False)`` with ``rng = np.random.default_rng(seed)`` and
    m = min(subset_size, n_real, n_fake), and :func:`mmd2_unbiased` of the two picks. The
    kernel is (gamma x^T y + coef0)^degree, gamma = 1/d by default (the KID's (x^T y/d + 1)^3).
    ValueError naming the argument for bad features (``real``/``fake``: not 2-D, fewer than
    2 rows, NaN/inf, differing d) or parameters (``subsets``, ``subset_size`` < 2, kernel).
    """
    x = check_features("real", real)
    y = check_features("fake", fake)
    check_same_dim("real", x, "fake", y)
    for name, value, low in (("subsets", subsets, 1), ("subset_size", subset_size, 2)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    _check_kernel_params(degree, gamma, coef0)
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    m = min(int(subset_size), x.shape[0], y.shape[0])
    rng = np.random.default_rng(seed)
    scores = np.empty(int(subsets), dtype=np.float64)
    for i in range(int(subsets)):
        xs = x[rng.choice(x.shape[0], m, replace=False)]
        ys = y[rng.choice(y.shape[0], m, replace=False)]
        scores[i] = mmd2_from_kernels(polynomial_kernel(xs, xs, degree, gamma, coef0),
                                      polynomial_kernel(xs, ys, degree, gamma, coef0),
                                      polynomial_kernel(ys, ys, degree, gamma, coef0))
    return float(scores.mean()), float(scores.std(ddof=0))
