"""What every VAE-style model shares: the reparameterisation and the training forward pass."""

from __future__ import annotations

import keras
from keras import ops


class VariationalModel(keras.Model):
    """``encode(image) -> (mu, logvar)`` and ``reconstruct(z)`` come from the subclass; the
    forward pass samples ``z = mu + eps * exp(0.5 * logvar)`` in between."""

    def encode(self, image, training=False):
        raise NotImplementedError

    def reconstruct(self, z, training=False):
        """The output the reconstruction loss compares with the input."""
        raise NotImplementedError

    @staticmethod
    def reparameterize(mu, logvar, eps):
        """z = mu + eps * exp(0.5 * logvar)."""
        return mu + eps * ops.exp(0.5 * logvar)

    def call(self, image, eps=None, training=False):
        """(reconstruction, mu, logvar); ``eps`` defaults to fresh N(0, 1) noise."""
        mu, logvar = self.encode(image, training=training)
        if eps is None:
            eps = keras.random.normal(ops.shape(mu))
        return self.reconstruct(self.reparameterize(mu, logvar, eps), training=training), mu, logvar
