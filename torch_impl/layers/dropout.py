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


class MaskedSequential(nn.Sequential):
    """``nn.Sequential`` whose forward hands injected keep-masks to its :class:`Dropout` children,
    one per Dropout, in order (children are named "0", "1", ... like any Sequential's). Without
    masks, training mode drops at random and inference not at all."""

    @property
    def num_dropouts(self) -> int:
        return sum(isinstance(layer, Dropout) for layer in self)

    def forward(self, x: torch.Tensor, keep_masks=None) -> torch.Tensor:
        keep_masks = list(keep_masks or ())
        if keep_masks and len(keep_masks) != self.num_dropouts:
            raise ValueError(f"{type(self).__name__}: {len(keep_masks)} keep-masks for {self.num_dropouts} "
                             f"Dropout layers")
        masks = iter(keep_masks)
        for layer in self:
            x = layer(x, next(masks, None)) if isinstance(layer, Dropout) else layer(x)
        return x
