"""The TensorFlow DCGAN tutorial's networks (seed 003). Architecture, defaults and the parity
traps it matches: :class:`core.models.dcgan.DCGANConfig`."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from core.models.dcgan import DCGANConfig

from ..layers.batchnorm import BatchNorm1d
from ..layers.core import BatchNorm2d, Conv2d, ConvTranspose2d, LeakyReLU, Linear, Sequential
from ..layers.dropout import Dropout, MaskedSequential


class Generator(nn.Module):
    """z (B, latent) -> ``project`` (Linear without bias, BatchNorm1d over its features,
    LeakyReLU) -> reshape (B, g0, base, base) -> ``upsample`` (ConvT + BatchNorm2d + LeakyReLU
    blocks, the first with stride 1, then the last ConvT to the image channels) -> Tanh."""

    def __init__(self, config: DCGANConfig):
        super().__init__()
        self.config = cfg = config
        k, p, op, slope = cfg.kernel_size, cfg.padding, cfg.output_padding, cfg.leaky_slope
        features = cfg.projection_features
        self.project = Sequential(Linear(cfg.latent_dim, features, bias=False),
                                  BatchNorm1d(features, eps=cfg.bn_eps, momentum=cfg.bn_momentum),
                                  LeakyReLU(slope))
        layers, g = [], cfg.generator_dims
        for i, (a, b) in enumerate(zip(g, g[1:])):
            stride, out_pad = (1, 0) if i == 0 else (2, op)
            layers += [ConvTranspose2d(a, b, k, stride, p, output_padding=out_pad, bias=False),
                       BatchNorm2d(b, eps=cfg.bn_eps, momentum=cfg.bn_momentum), LeakyReLU(slope)]
        layers.append(ConvTranspose2d(g[-1], cfg.in_channels, k, 2, p, output_padding=op, bias=False))
        self.upsample = Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        h = self.project(z).view(-1, cfg.generator_dims[0], cfg.base_size, cfg.base_size)
        return torch.tanh(self.upsample(h))


class Features(MaskedSequential):
    """Conv2d(k5, s2, p2) -> LeakyReLU -> Dropout per discriminator width: image (B, C, H, W) ->
    features (B, C', H', W').

    ``keep_masks`` (one (B, C, H, W) per Dropout, in order) are handed to the Dropout layers;
    without them training mode drops at random and eval mode not at all.
    """

    def __init__(self, config: DCGANConfig):
        layers, widths = [], (config.in_channels, *config.discriminator_dims)
        for a, b in zip(widths, widths[1:]):
            layers += [Conv2d(a, b, config.kernel_size, 2, config.padding), LeakyReLU(config.leaky_slope),
                       Dropout(config.dropout)]
        super().__init__(*layers)


class Discriminator(nn.Module):
    """``features`` (:class:`Features`) -> flatten (channel-first) -> ``head`` Linear(-> 1):
    image (B, C, H, W) -> logits (B, 1); ``keep_masks`` go to ``features``."""

    def __init__(self, config: DCGANConfig):
        super().__init__()
        self.features = Features(config)
        self.head = Linear(config.flat_features, 1)

    def forward(self, x: torch.Tensor, keep_masks: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x, keep_masks), 1))


class DCGAN(nn.Module):
    """Generator z (B, latent) -> image (B, C, H, W) in [-1, 1]; discriminator image -> logit (B, 1)."""

    def __init__(self, config: DCGANConfig):
        super().__init__()
        self.config = config
        self.generator = Generator(config)
        self.discriminator = Discriminator(config)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """The objective's optimizers' parameters: ``generator`` and ``discriminator``."""
        return {"generator": list(self.generator.parameters()),
                "discriminator": list(self.discriminator.parameters())}

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """z -> image (B, C, H, W) in [-1, 1]."""
        return self.generator(z)

    def discriminate(self, image: torch.Tensor, masks: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        """image (B, C, H, W) -> logits (B, 1); ``masks``: the dropout keep-masks of this pass."""
        return self.discriminator(image, masks)
