"""The metrics the toolkit reports, by name, computed together from one pair of feature sets.

``is`` (Inception Score on the generated set's logits), ``fid``, ``kid``, ``pr`` (precision and
recall, k = 3) and ``dc`` (density and coverage, k = 5); :func:`compute` is what
``python -m runtime.evaluate`` prints and what the trainers' ``--eval-every`` logs, so both give
the same number for the same features.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .frechet import frechet_distance
from .inception_score import inception_score
from .kid import kernel_inception_distance
from .manifold import density_coverage, precision_recall

#: the names ``--metrics`` / ``--eval-metrics`` take
METRICS = ("is", "fid", "kid", "pr", "dc")
#: what video models add: the Fréchet Video Distance (Unterthiner et al. 2018) on I3D features, the
#: Fréchet distance exactly as FID computes it (:func:`frechet_distance`; unbiased covariances, as
#: TF-GAN's ``frechet_classifier_distance_from_activations``, which the FVD reference code calls)
VIDEO_METRICS = ("fvd",)
#: the values each name reports, and whether higher is better
VALUES = {"is": ("is",), "fid": ("fid",), "kid": ("kid",), "pr": ("precision", "recall"),
          "dc": ("density", "coverage"), "fvd": ("fvd",)}
HIGHER_IS_BETTER = {"is": True, "fid": False, "kid": False, "precision": True, "recall": True,
                    "density": True, "coverage": True, "fvd": False}
KID_SUBSETS, KID_SUBSET_SIZE, IS_SPLITS, PR_K, DC_K = 100, 1000, 10, 3, 5


def parse_metrics(text: str, flag: str = "--metrics", allowed: tuple[str, ...] = METRICS) -> tuple[str, ...]:
    """``"fid,kid"`` -> ("fid", "kid"); unknown or empty -> ConfigError naming ``flag``."""
    names = tuple(dict.fromkeys(m.strip().lower() for m in str(text).split(",") if m.strip()))
    unknown = [m for m in names if m not in allowed]
    if not names or unknown:
        video = [m for m in unknown if m in VIDEO_METRICS]
        hint = f" ({', '.join(video)}: python -m runtime.evaluate on a video model only)" if video else ""
        raise ConfigError(f"{flag}: unknown {unknown or 'empty list'}{hint}; choose from {', '.join(allowed)}")
    return names


def compute(metrics: tuple[str, ...], real: tuple[np.ndarray, np.ndarray], fake: tuple[np.ndarray, np.ndarray],
            seed: int = 0) -> dict[str, dict]:
    """{value name: {"value": ..., ("std": ...), settings}} from (features, logits) of the real and
    generated sets (the logits are used by ``is`` only)."""
    (rf, _), (ff, fl) = real, fake
    out: dict[str, dict] = {}
    if "is" in metrics:
        mean, std = inception_score(fl, splits=IS_SPLITS, from_logits=True)
        out["is"] = {"value": mean, "std": std, "splits": IS_SPLITS}
    if "fid" in metrics:
        out["fid"] = {"value": frechet_distance(rf, ff)}
    if "kid" in metrics:
        size = min(KID_SUBSET_SIZE, len(rf), len(ff))
        mean, std = kernel_inception_distance(rf, ff, subsets=KID_SUBSETS, subset_size=size, seed=seed)
        out["kid"] = {"value": mean, "std": std, "subsets": KID_SUBSETS, "subset_size": size}
    if "pr" in metrics:
        precision, recall = precision_recall(rf, ff, k=PR_K)
        out["precision"], out["recall"] = {"value": precision, "k": PR_K}, {"value": recall, "k": PR_K}
    if "dc" in metrics:
        density, coverage = density_coverage(rf, ff, k=DC_K)
        out["density"], out["coverage"] = {"value": density, "k": DC_K}, {"value": coverage, "k": DC_K}
    return out
