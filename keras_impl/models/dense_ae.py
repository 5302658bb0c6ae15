"""Dense autoencoder (seed 003), Keras twin of ``torch_impl/models/dense_ae.py``.

Architecture and its choices: :class:`core.models.dense_ae.DenseAEConfig`. Images are NHWC here;
the flatten and the reshape go through channel-first order so the Linear weights are torch's,
transposed and nothing else.
"""

from __future__ import annotations

import keras
from keras import ops

from core.models.dense_ae import DenseAEConfig

from ..layers.core import Linear, ReLU, Sequential, Sigmoid


class DenseAE(keras.Model):
    """image (B, H, W, C) in [0, 1] -> z (B, latent_dim) -> image (B, H, W, C) in [0, 1]."""

    def __init__(self, config: DenseAEConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = cfg = config
        self.encoder = Sequential(Linear(cfg.flat_features, cfg.latent_dim), ReLU())
        self.decoder = Sequential(Linear(cfg.latent_dim, cfg.flat_features), Sigmoid())

    def encode(self, image, training=False):
        h = ops.reshape(ops.transpose(image, (0, 3, 1, 2)), (-1, self.config.flat_features))
        return self.encoder(h, training=training)

    def decode(self, z, training=False):
        cfg = self.config
        h = ops.reshape(self.decoder(z, training=training), (-1, cfg.in_channels, cfg.image_size, cfg.image_size))
        return ops.transpose(h, (0, 2, 3, 1))

    def call(self, image, training=False):
        """The reconstruction the MSE compares with ``image``."""
        return self.decode(self.encode(image, training=training), training=training)
