"""Inception Score from class probabilities (Salimans et al. 2016).

Salimans, Goodfellow, Zaremba, Cheung, Radford, Chen, "Improved Techniques for Training GANs",
NeurIPS 2016 (arXiv:1606.03498):

    IS = exp( E_x KL( p(y|x) || p(y) ) ),   p(y) = E_x p(y|x),

computed on each of ``splits`` groups of samples (p(y) being the group's mean prediction),
reported as the mean and the standard deviation over the groups. It ranges from 1 (every
prediction the same, e.g. uniform) to C (confident predictions spread evenly over C classes).

Definitional choices, matching torch-fidelity 0.4.0 (``metric_isc.isc_features_to_metric`` with
``shuffle=False``):

* groups are contiguous: group i is rows ``[i*n//splits, (i+1)*n//splits)`` in the given order
  (no shuffling here; torch-fidelity shuffles by default with ``np.random.RandomState(2020)``:
  permute the rows first to reproduce that);
* the std over groups is the population std, **ddof 0** (``np.std``).

torchmetrics 1.9.0 (``InceptionScore.compute``) differs: it shuffles with ``torch.randperm``, cuts
groups with ``torch.chunk`` (ceil(n/splits) rows each, so fewer groups when splits does not fit),
and reports ``std()`` with **ddof 1**. With n divisible by ``splits`` and no shuffling, the
group means are the same and ``inception_score(..., ddof=1)`` gives its std.
"""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of (n, classes) logits, float64, stable (max subtracted)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, classes) logits, float64: class probabilities for :func:`inception_score`."""
    return np.exp(log_softmax(logits))


def _check_probs(probs: np.ndarray, from_logits: bool) -> tuple[np.ndarray, np.ndarray]:
    """(p, log p) as float64 (n, classes), validated; ValueError naming ``probs``."""
    try:
        arr = np.asarray(probs, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"probs: expected a numeric (n, classes) array ({exc})") from None
    if arr.ndim != 2:
        raise ValueError(f"probs: expected a 2-D (n, classes) array, got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"probs: expected at least one sample and one class, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("probs: contains NaN or infinite values")
    if from_logits:
        log_p = log_softmax(arr)
        return np.exp(log_p), log_p
    if np.any(arr < 0):
        raise ValueError("probs: probabilities must be >= 0 (pass from_logits=True for logits)")
    sums = arr.sum(axis=1, keepdims=True)
    if not np.allclose(sums, 1.0, rtol=0.0, atol=1e-3):
        raise ValueError("probs: rows must sum to 1 (pass from_logits=True for logits)")
    p = arr / sums  # renormalise float32 round-off: the same as softmax(log p)
    with np.errstate(divide="ignore"):
        log_p = np.log(p)
    return p, log_p


def inception_score(probs: np.ndarray, splits: int = 10, from_logits: bool = False,
                    ddof: int = 0) -> tuple[float, float]:
    """Inception Score (Salimans et al. 2016): (mean, std) over ``splits`` contiguous groups.

    For group G with mean prediction q = mean_{x in G} p(.|x):

        IS_G = exp( mean_{x in G} sum_c p(c|x) (log p(c|x) - log q(c)) ),

    terms with p(c|x) = 0 counted as 0. ``probs`` is (n, classes) with rows summing to 1
    (within 1e-3; renormalised), or logits with ``from_logits=True`` (or pass
    ``softmax(logits)``). The std is ddof 0 as torch-fidelity (``ddof=1``: torchmetrics').
    ValueError naming ``probs`` (not 2-D, NaN/inf, negative, rows not summing to 1) or
    ``splits`` (not an integer in 1..n).
    """
    p, log_p = _check_probs(probs, from_logits)
    n = p.shape[0]
    if isinstance(splits, bool) or not isinstance(splits, (int, np.integer)) or not 1 <= splits <= n:
        raise ValueError(f"splits: expected an integer between 1 and the number of samples ({n}), got {splits!r}")
    if ddof not in (0, 1) or (ddof == 1 and splits < 2):
        raise ValueError(f"ddof: expected 0, or 1 with splits >= 2, got {ddof!r}")
    scores = np.empty(int(splits), dtype=np.float64)
    for i in range(int(splits)):
        lo, hi = i * n // splits, (i + 1) * n // splits
        pg, log_pg = p[lo:hi], log_p[lo:hi]
        q = pg.mean(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(pg > 0, pg * (log_pg - np.log(q)), 0.0)
        scores[i] = np.exp(terms.sum(axis=1).mean())
    return float(scores.mean()), float(scores.std(ddof=ddof))
