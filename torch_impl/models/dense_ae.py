"""Dense autoencoder (seed 003). Architecture and its choices: :class:`core.models.dense_ae.DenseAEConfig`."""

from __future__ import annotations

import torch
from torch import nn

from core.models.dense_ae import DenseAEConfig

from ..layers.core import Linear, ReLU, Sequential, Sigmoid


class DenseAE(nn.Module):
    """image (B, C, H, W) in [0, 1] -> z (B, latent_dim) -> image (B, C, H, W) in [0, 1]."""

    def __init__(self, config: DenseAEConfig):
        super().__init__()
        self.config = cfg = config
        self.encoder = Sequential(Linear(cfg.flat_features, cfg.latent_dim), ReLU())
        self.decoder = Sequential(Linear(cfg.latent_dim, cfg.flat_features), Sigmoid())

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return self.encoder(torch.flatten(image, 1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        return self.decoder(z).view(-1, cfg.in_channels, cfg.image_size, cfg.image_size)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """The reconstruction the MSE compares with ``image``."""
        return self.decode(self.encode(image))
