"""The fully connected GAN (seed 004). Architecture and its choices: :class:`core.models.mlp_gan.MLPGANConfig`."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from core.models.mlp_gan import MLPGANConfig

from ..layers.core import LeakyReLU, Linear, Sequential
from ..layers.dropout import Dropout, MaskedSequential


class Discriminator(MaskedSequential):
    """Linear -> LeakyReLU -> Dropout per hidden width, then Linear(-> 1): (B, C*H*W) -> logits (B, 1).

    ``keep_masks`` (one per Dropout, in order) are handed to the Dropout layers; without them
    training mode drops at random and eval mode not at all.
    """

    def __init__(self, config: MLPGANConfig):
        layers, widths = [], config.discriminator_widths
        for a, b in zip(widths[:-2], widths[1:-1]):
            layers += [Linear(a, b), LeakyReLU(config.leaky_slope), Dropout(config.dropout)]
        super().__init__(*layers, Linear(widths[-2], widths[-1]))


class MLPGAN(nn.Module):
    """Generator z (B, latent) -> image (B, C, H, W) in [-1, 1]; discriminator image -> logit (B, 1)."""

    def __init__(self, config: MLPGANConfig):
        super().__init__()
        self.config = cfg = config
        layers, widths = [], cfg.generator_widths
        for a, b in zip(widths[:-2], widths[1:-1]):
            layers += [Linear(a, b), LeakyReLU(cfg.leaky_slope)]
        self.generator = Sequential(*layers, Linear(widths[-2], widths[-1]))
        self.discriminator = Discriminator(cfg)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """The objective's optimizers' parameters: ``generator`` and ``discriminator``."""
        return {"generator": list(self.generator.parameters()),
                "discriminator": list(self.discriminator.parameters())}

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """z -> image (B, C, H, W) in [-1, 1]: the generator's last Linear, Tanh, then reshape."""
        cfg = self.config
        return torch.tanh(self.generator(z)).view(-1, cfg.in_channels, cfg.image_size, cfg.image_size)

    def discriminate(self, image: torch.Tensor, masks: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """image (B, C, H, W) -> logits (B, 1); ``masks``: the dropout keep-masks of this pass."""
        return self.discriminator(torch.flatten(image, 1), masks)
