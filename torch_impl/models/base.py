"""What every VAE-style model shares: the reparameterisation and the training forward pass."""

from __future__ import annotations

import torch
from torch import nn


class VariationalModel(nn.Module):
    """``encode(image) -> (mu, logvar)`` and ``reconstruct(z)`` come from the subclass; the
    forward pass samples ``z = mu + eps * exp(0.5 * logvar)`` in between."""

    def encode(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def reconstruct(self, z: torch.Tensor) -> torch.Tensor:
        """The output the reconstruction loss compares with the input."""
        raise NotImplementedError

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """z = mu + eps * exp(0.5 * logvar)."""
        return mu + eps * torch.exp(0.5 * logvar)

    def forward(self, image: torch.Tensor, eps: torch.Tensor | None = None):
        """(reconstruction, mu, logvar); ``eps`` defaults to fresh N(0, 1) noise."""
        mu, logvar = self.encode(image)
        if eps is None:
            eps = torch.randn_like(mu)
        return self.reconstruct(self.reparameterize(mu, logvar, eps)), mu, logvar
