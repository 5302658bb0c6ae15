"""KL strategies for every objective with a KL term: the weight schedule and free bits.

* ``constant``: beta = ``kl_weight`` from the first step.
* ``linear`` (KL annealing; seed 004: "from 0 to 1 over the first 10,000 steps"):
  beta = kl_weight * min(1, step / kl_warmup), step counted from 0.
* ``cyclical`` (Fu et al. 2019, "Cyclical Annealing Schedule", NAACL): the run's T steps are cut
  into M = ``kl_cycles`` cycles of length L = T / M; with tau = (step mod ceil(L)) / L the weight
  rises linearly over the first R = ``kl_ratio`` of each cycle and stays flat after:
  beta = kl_weight * min(1, tau / R). Defaults M = 4, R = 0.5 (the paper's).
* free bits (Kingma et al. 2016, "Improved Variational Inference with Inverse Autoregressive
  Flow", eq. 15; seed 004: 0.5): the KL the loss sees is sum_j max(lambda, KL_j), KL_j the batch
  mean of latent dimension j's KL, so no dimension is pushed below lambda nats. A flow posterior's
  KL is a Monte-Carlo estimate that does not split by dimension: it is held above lambda * d as a
  whole. The logged ``kl`` is always the true KL; ``loss`` uses the clamped one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..configs import MAX_INT
from .base import Hyperparameters, hyper

KL_SCHEDULES = ("constant", "linear", "cyclical")


@dataclass(frozen=True)
class KLHyperparameters(Hyperparameters):
    kl_weight: float = hyper(1.0, 0.0, 1e6, help="final KL weight beta")
    kl_schedule: str = hyper("constant", choices=KL_SCHEDULES,
                             help="KL weight schedule: constant, linear warm-up, or cyclical (Fu et al. 2019)")
    kl_warmup: int = hyper(10000, 0, MAX_INT, help="linear: steps from 0 to --kl-weight (seed 004: 10,000)")
    kl_cycles: int = hyper(4, 1, MAX_INT, help="cyclical: cycles M over the run")
    kl_ratio: float = hyper(0.5, 0.0, 1.0, low_open=True, help="cyclical: fraction R of a cycle spent rising")
    free_bits: float = hyper(0.0, 0.0, 100.0, help="minimum KL per latent dimension in nats (0: off; seed 004: 0.5)")


def kl_weight(hp: KLHyperparameters, step: int, total_steps: int) -> float:
    """The KL weight in force on ``step`` (0-based) of a ``total_steps`` run."""
    if hp.kl_schedule == "linear":
        return hp.kl_weight if hp.kl_warmup <= 0 else hp.kl_weight * min(1.0, step / hp.kl_warmup)
    if hp.kl_schedule == "cyclical":
        length = max(1, total_steps) / hp.kl_cycles
        tau = (step % max(1, math.ceil(length))) / length
        return hp.kl_weight * min(1.0, tau / hp.kl_ratio)
    return hp.kl_weight
