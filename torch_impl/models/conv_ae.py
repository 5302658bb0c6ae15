"""Convolutional autoencoder (seed 004). Architecture and its choices: :class:`core.models.conv_ae.ConvAEConfig`."""

from __future__ import annotations

import torch
from torch import nn

from core.models.conv_ae import ConvAEConfig

from ..layers.core import Conv2d, ConvTranspose2d, ReLU, Sequential


class ConvAE(nn.Module):
    """image (B, C, H, W) in [-1, 1] -> code z (B, hidden[-1], H/2^n, W/2^n) -> image in [-1, 1]."""

    def __init__(self, config: ConvAEConfig):
        super().__init__()
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

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return self.encoder(image)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.decoder(z))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """The reconstruction the MSE compares with ``image``."""
        return self.decode(self.encode(image))
