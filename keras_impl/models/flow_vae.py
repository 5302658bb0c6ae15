"""VAE with planar flows (seed 004), Keras twin of ``torch_impl/models/flow_vae.py``. The network is
``conv_vae``'s; the flows and their formulas are :class:`keras_impl.layers.flows.PlanarFlow`;
choices: :class:`core.models.flow_vae.FlowVAEConfig`."""

from __future__ import annotations

import keras
from keras import ops

from core.models.flow_vae import FlowVAEConfig

from ..layers.core import ModuleList
from ..layers.flows import PlanarFlow
from .conv_vae import ConvVAE


class FlowVAE(ConvVAE):
    """image -> (mu, logvar) -> z_0 = mu + eps * exp(logvar / 2) -> K planar flows -> z_K -> image.

    ``encode`` is the base Gaussian q0's (mu, logvar) (inherited); ``encode_flowed`` (the
    ``encoder`` part) pushes mu through the flows (one code, z); the training forward returns
    (reconstruction, mu, logvar, z_K, sum_k log|det J_k|), the flow ELBO's inputs.
    """

    def __init__(self, config: FlowVAEConfig, **kwargs):
        super().__init__(config, **kwargs)
        self.flows = ModuleList(*[PlanarFlow(config.latent_dim) for _ in range(config.num_flows)])

    def flow(self, z):
        """(z_K, sum_k log|det J_k|) of z_0 (B, D)."""
        log_det = 0.0
        for f in self.flows.children_list:
            z, ld = f(z)
            log_det = log_det + ld
        return z, log_det

    def encode_flowed(self, image, training=False):
        """mu pushed through the flows: the code the runtime decodes to reconstruct."""
        return self.flow(self.encode(image, training=training)[0])[0]

    def call(self, image, eps=None, training=False):
        """(reconstruction, mu, logvar, z_K, log_det); ``eps`` defaults to fresh N(0, 1) noise."""
        mu, logvar = self.encode(image, training=training)
        if eps is None:
            eps = keras.random.normal(ops.shape(mu))
        z_k, log_det = self.flow(self.reparameterize(mu, logvar, eps))
        return self.reconstruct(z_k, training=training), mu, logvar, z_k, log_det
