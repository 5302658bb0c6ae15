"""Adversarial Generator-Encoder Networks (Ulyanov et al. 2018): a DCGAN-style encoder and
generator on the unit sphere. Architecture, sizes, initial weights and where they follow the
reference code: :class:`core.models.age.AGEConfig`; the game: :mod:`core.objectives.age_game`."""

from __future__ import annotations

import torch
from torch import nn

from core.init import Init
from core.models.age import AGEConfig

from ..layers.core import BatchNorm2d, Conv2d, ConvTranspose2d, LeakyReLU, ReLU, Sequential
from ..layers.sphere import to_sphere


def _conv_weight_rules(prefix: str, layers: nn.Sequential, rule: Init) -> dict[str, Init]:
    """{``<prefix><i>.weight``: rule} for every (transposed) convolution of ``layers``."""
    return {f"{prefix}{i}.weight": rule for i, layer in enumerate(layers) if isinstance(layer, (Conv2d, ConvTranspose2d))}


def _init_conv_weights(layers: nn.Sequential, std: float) -> None:
    """What :func:`_conv_weight_rules` declares, done by torch itself (the reference's ``weights_init``)."""
    for layer in layers:
        if isinstance(layer, (Conv2d, ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, std)


class Encoder(nn.Module):
    """image (B, C, S, S) in [-1, 1] -> ``features`` (Conv k4 s2 p1 + LeakyReLU, then Conv + BatchNorm
    + LeakyReLU per further width) -> ``head`` (Conv k4, valid: (B, latent, 1, 1)) -> flatten ->
    unit vector (B, latent)."""

    def __init__(self, config: AGEConfig):
        super().__init__()
        self.config = cfg = config
        k, s, p, slope = cfg.kernel_size, cfg.stride, cfg.padding, cfg.leaky_slope
        widths = (cfg.in_channels, *cfg.encoder_dims)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            layers.append(Conv2d(a, b, k, s, p, bias=False))
            if i:
                layers.append(BatchNorm2d(b, eps=cfg.bn_eps, momentum=cfg.bn_momentum))
            layers.append(LeakyReLU(slope))
        self.features = Sequential(*layers)
        self.head = Conv2d(widths[-1], cfg.latent_dim, cfg.base_size, 1, 0, bias=True)
        _init_conv_weights(self.features, cfg.weight_std)
        nn.init.normal_(self.head.weight, 0.0, cfg.weight_std)

    def init_rules(self) -> dict[str, Init]:
        """Conv weights N(0, 0.02^2) (overriding torch's default; the head's bias keeps it)."""
        rule = self.config.init_rule()
        return {**_conv_weight_rules("features.", self.features, rule), "head.weight": rule}

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return to_sphere(torch.flatten(self.head(self.features(image)), 1), self.config.sphere_eps)


class Generator(nn.Module):
    """z (B, latent) -> (B, latent, 1, 1) -> ``upsample`` (ConvT k4 s1 to 4x4, then ConvT k4 s2 p1
    per further width, each + BatchNorm + ReLU; the last ConvT to the image channels) -> Tanh."""

    def __init__(self, config: AGEConfig):
        super().__init__()
        self.config = cfg = config
        k, s, p = cfg.kernel_size, cfg.stride, cfg.padding
        widths = (cfg.latent_dim, *cfg.generator_dims)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            layers += [ConvTranspose2d(a, b, k, 1 if i == 0 else s, 0 if i == 0 else p, bias=False),
                       BatchNorm2d(b, eps=cfg.bn_eps, momentum=cfg.bn_momentum), ReLU()]
        layers.append(ConvTranspose2d(widths[-1], cfg.in_channels, k, s, p, bias=False))
        self.upsample = Sequential(*layers)
        _init_conv_weights(self.upsample, cfg.weight_std)

    def init_rules(self) -> dict[str, Init]:
        """Transposed-conv weights N(0, 0.02^2) (overriding torch's default)."""
        return _conv_weight_rules("upsample.", self.upsample, self.config.init_rule())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.upsample(z.reshape(-1, self.config.latent_dim, 1, 1)))


class AGE(nn.Module):
    """Encoder image (B, C, S, S) in [-1, 1] -> z (B, latent), unit norm; generator z -> image in [-1, 1]."""

    def __init__(self, config: AGEConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.generator = Generator(config)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """The objective's optimizers' parameters: ``encoder`` and ``generator``."""
        return {"encoder": list(self.encoder.parameters()), "generator": list(self.generator.parameters())}

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """image (B, C, S, S) in [-1, 1] -> z (B, latent) on the unit sphere."""
        return self.encoder(image)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent) -> image (B, C, S, S) in [-1, 1]."""
        return self.generator(z)
