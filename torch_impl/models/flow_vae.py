"""VAE with planar flows (seed 004). The network is ``conv_vae``'s; the flows and their formulas
are :class:`torch_impl.layers.flows.PlanarFlow`; choices: :class:`core.models.flow_vae.FlowVAEConfig`."""

from __future__ import annotations

import torch

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

    def __init__(self, config: FlowVAEConfig):
        super().__init__(config)
        self.flows = ModuleList([PlanarFlow(config.latent_dim) for _ in range(config.num_flows)])

    def flow(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_K, sum_k log|det J_k|) of z_0 (B, D)."""
        log_det = 0.0
        for f in self.flows:
            z, ld = f(z)
            log_det = log_det + ld
        return z, log_det

    def encode_flowed(self, image: torch.Tensor) -> torch.Tensor:
        """mu pushed through the flows: the code the runtime decodes to reconstruct."""
        return self.flow(self.encode(image)[0])[0]

    def forward(self, image: torch.Tensor, eps: torch.Tensor | None = None):
        """(reconstruction, mu, logvar, z_K, log_det); ``eps`` defaults to fresh N(0, 1) noise."""
        mu, logvar = self.encode(image)
        if eps is None:
            eps = torch.randn_like(mu)
        z_k, log_det = self.flow(self.reparameterize(mu, logvar, eps))
        return self.reconstruct(z_k), mu, logvar, z_k, log_det
