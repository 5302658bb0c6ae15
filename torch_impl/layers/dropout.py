"""Dropout whose mask can be injected (twin: ``keras_impl/layers/dropout.py``).

Training-mode parity between the frameworks needs the same dropped units in both, so the
objective draws keep-masks in :mod:`core` (:func:`core.noise.dropout_masks`) and passes them in:

* training, with a keep-mask m (1 kept, 0 dropped; shaped like the input): ``x * m / (1 - p)``;
* training, without a mask: torch's own random dropout (``nn.Dropout``);
* eval: the identity (exported graphs hold no random op).
"""

from __future__ import annotations

import torch
from torch import nn


class Dropout(nn.Dropout):
    """``nn.Dropout(p)`` whose forward takes an optional keep-mask (see the module docstring)."""

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        super().__init__(p)

    def forward(self, x: torch.Tensor, keep_mask: torch.Tensor | None = None) -> torch.Tensor:
        if not self.training:
            return x
        if keep_mask is None:
            return super().forward(x)
        return x * keep_mask.to(dtype=x.dtype, device=x.device) / (1.0 - self.p)
