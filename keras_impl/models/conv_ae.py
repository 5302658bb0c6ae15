"""Convolutional autoencoder (seed 004), Keras twin of ``torch_impl/models/conv_ae.py``.

Architecture and its choices: :class:`core.models.conv_ae.ConvAEConfig`. Images are NHWC here;
the code ``z`` is channel-first (B, C, H, W) at the part boundary, as in torch (its TensorSpec is
a "vector", which the frameworks pass through unchanged), so ``encode`` and ``decode`` transpose.
"""

from __future__ import annotations

import keras
from keras import ops

from core.models.conv_ae import ConvAEConfig

from ..layers.core import Conv2d, ConvTranspose2d, ReLU, Sequential


class ConvAE(keras.Model):
    """image (B, H, W, C) in [-1, 1] -> code z (B, hidden[-1], H/2^n, W/2^n) -> image in [-1, 1]."""

    def __init__(self, config: ConvAEConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = cfg = config
        k, s, p = cfg.kernel_size, cfg.stride, cfg.padding
        widths = (cfg.in_channels, *cfg.hidden_dims)
        encoder = []
        for a, b in zip(widths, widths[1:]):
            encoder += [Conv2d(a, b, k, s, p), ReLU()]
        self.encoder = Sequential(*encoder)
        rev, decoder = widths[::-1], []
        for a, b in zip(rev, rev[1:]):
            decoder += [ConvTranspose2d(a, b, k, s, p), ReLU()]
        self.decoder = Sequential(*decoder[:-1])  # the last ReLU is the final Tanh (in decode)

    def encode(self, image, training=False):
        return ops.transpose(self.encoder(image, training=training), (0, 3, 1, 2))

    def decode(self, z, training=False):
        return ops.tanh(self.decoder(ops.transpose(z, (0, 2, 3, 1)), training=training))

    def call(self, image, training=False):
        """The reconstruction the MSE compares with ``image``."""
        return self.decode(self.encode(image, training=training), training=training)
