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

from .core import Sequential, TorchLayer


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


class MaskedSequential(Sequential):
    """:class:`Sequential` whose call hands injected keep-masks to its :class:`Dropout` children,
    one per Dropout, in order (twin of torch's). Masks arrive in the canonical layout; a subclass
    whose activations are NHWC overrides :meth:`adapt_mask` to transpose them."""

    @property
    def num_dropouts(self) -> int:
        return sum(isinstance(layer, Dropout) for layer in self.children_list)

    def adapt_mask(self, mask):
        """A canonical keep-mask in the layout of the activations it masks (identity here)."""
        return mask

    def call(self, x, keep_masks=None, training=None):
        keep_masks = list(keep_masks or ())
        if keep_masks and len(keep_masks) != self.num_dropouts:
            raise ValueError(f"{type(self).__name__}: {len(keep_masks)} keep-masks for {self.num_dropouts} "
                             f"Dropout layers")
        masks = iter(keep_masks)
        for layer in self.children_list:
            if isinstance(layer, Dropout):
                mask = next(masks, None)
                x = layer(x, None if mask is None else self.adapt_mask(mask), training=training)
            else:
                x = layer(x, training=training)
        return x
