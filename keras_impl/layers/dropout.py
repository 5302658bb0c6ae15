"""Dropout whose mask can be injected (twin: ``torch_impl/layers/dropout.py``).

Training-mode parity between the frameworks needs the same dropped units in both, so the
objective draws keep-masks in :mod:`core` (:func:`core.noise.dropout_masks`) and passes them in:

* training, with a keep-mask m (1 kept, 0 dropped; shaped like the input): ``x * m / (1 - p)``;
* training, without a mask: Keras' own random dropout (``keras.random.dropout``, which scales
  kept units by 1 / (1 - p) as torch does; it adds no variable to the model);
* eval (``training`` False or None): the identity (exported graphs hold no random op).
"""

from __future__ import annotations

import keras
from keras import ops

from .core import TorchLayer


class Dropout(TorchLayer):
    """torch.nn.Dropout(p) whose call takes an optional keep-mask (see the module docstring)."""

    def __init__(self, p: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = float(p)

    def call(self, x, keep_mask=None, training=None):
        if not training:
            return x
        if keep_mask is None:
            return keras.random.dropout(x, self.p) if self.p > 0 else x
        return x * ops.cast(keep_mask, x.dtype) / (1.0 - self.p)
