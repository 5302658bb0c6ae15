"""The 3D-conv video GAN (seed 003). Architecture, defaults and the two-stream variant:
:class:`core.models.video_gan.VideoGANConfig`.

Inside the networks videos are (B, C, T, H, W), torch's Conv3d layout; the parts take and give the
toolkit's canonical (B, T, C, H, W), permuted at the model's boundary.
"""

from __future__ import annotations

import torch
from torch import nn

from core.models.video_gan import VideoGANConfig

from ..layers.core import (BatchNorm2d, BatchNorm3d, Conv3d, ConvTranspose2d, ConvTranspose3d, LeakyReLU, ReLU,
                           Sequential)


def _up3d(cfg: VideoGANConfig, layer: int, a: int, b: int, bias: bool) -> ConvTranspose3d:
    """Upsampling layer ``layer``: space x2, time x2 while it doubles (see ``VideoGANConfig.temporal``)."""
    kt, st = cfg.temporal(layer)
    return ConvTranspose3d(a, b, (kt, cfg.kernel, cfg.kernel), (st, 2, 2), 1, bias=bias)


class Stream(nn.Module):
    """z -> the base volume (ConvTranspose of z read as a 1 x 1 (x 1) input) -> stride-2 blocks with
    BatchNorm + ReLU: the hidden features (B, g_last, ...) every head of the generator reads.
    ``dims`` 3: the 3D (video) stream; ``dims`` 2: the two-stream background (one frame)."""

    def __init__(self, config: VideoGANConfig, dims: int = 3):
        super().__init__()
        cfg, g = config, config.generator_dims
        self.dims = dims
        Norm = BatchNorm3d if dims == 3 else BatchNorm2d
        if dims == 3:
            base = ConvTranspose3d(cfg.latent_dim, g[0], (cfg.base_frames, cfg.base_size, cfg.base_size), bias=False)
        else:
            base = ConvTranspose2d(cfg.latent_dim, g[0], cfg.base_size, bias=False)
        layers = [base, Norm(g[0], eps=cfg.bn_eps, momentum=cfg.bn_momentum), ReLU()]
        for i, (a, b) in enumerate(zip(g, g[1:])):
            up = _up3d(cfg, i, a, b, bias=False) if dims == 3 else ConvTranspose2d(a, b, cfg.kernel, 2, 1, bias=False)
            layers += [up, Norm(b, eps=cfg.bn_eps, momentum=cfg.bn_momentum), ReLU()]
        self.net = Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.reshape(z.shape[0], -1, *([1] * self.dims)))


class Generator(nn.Module):
    """z (B, latent) -> video (B, C, T, H, W) in [-1, 1]; ``forward_with_mask`` also gives the
    two-stream mask (B, 1, T, H, W) (None for the single stream)."""

    def __init__(self, config: VideoGANConfig):
        super().__init__()
        self.config = cfg = config
        last, g = len(cfg.generator_dims) - 1, cfg.generator_dims[-1]
        self.video = Stream(cfg, 3)
        self.video_head = _up3d(cfg, last, g, cfg.in_channels, bias=True)
        if cfg.two_stream:
            self.mask_head = _up3d(cfg, last, g, 1, bias=True)
            self.background = Stream(cfg, 2)
            self.background_head = ConvTranspose2d(g, cfg.in_channels, cfg.kernel, 2, 1)

    def forward_with_mask(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.video(z)
        foreground = torch.tanh(self.video_head(h))
        if not self.config.two_stream:
            return foreground, None
        mask = torch.sigmoid(self.mask_head(h))
        background = torch.tanh(self.background_head(self.background(z))).unsqueeze(2)  # (B, C, 1, H, W)
        return mask * foreground + (1.0 - mask) * background, mask

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.forward_with_mask(z)[0]


class Discriminator(nn.Module):
    """video (B, C, T, H, W) -> Conv3d(k4, s2, p1) + LeakyReLU(0.2) per width -> a Conv3d over what
    is left -> logits (B, 1)."""

    def __init__(self, config: VideoGANConfig):
        super().__init__()
        layers, widths = [], (config.in_channels, *config.discriminator_dims)
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            kt, st = config.temporal(i)
            layers += [Conv3d(a, b, (kt, config.kernel, config.kernel), (st, 2, 2), 1),
                       LeakyReLU(config.leaky_slope)]
        self.features = Sequential(*layers)
        self.head = Conv3d(widths[-1], 1, config.discriminator_shapes()[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).flatten(1)


def _swap_time_channels(video: torch.Tensor) -> torch.Tensor:
    """canonical (B, T, C, H, W) <-> Conv3d's (B, C, T, H, W) (the swap is its own inverse)."""
    return video.permute(0, 2, 1, 3, 4)


class VideoGAN(nn.Module):
    """Generator z (B, latent) -> video (B, T, C, H, W) in [-1, 1]; discriminator video -> logit (B, 1).

    ``generate_images``/``critique`` are the names the WGAN-GP objective calls: the critic judges
    whole clips here (``VideoGANConfig`` has no ``is_video`` frame-by-frame critic)."""

    def __init__(self, config: VideoGANConfig):
        super().__init__()
        self.config = config
        self.generator = Generator(config)
        self.discriminator = Discriminator(config)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """The objective's optimizers' parameters (BCE: generator, discriminator; WGAN-GP: generator, critic)."""
        d = list(self.discriminator.parameters())
        return {"generator": list(self.generator.parameters()), "discriminator": d, "critic": d}

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """z -> video (B, T, C, H, W) in [-1, 1]."""
        return _swap_time_channels(self.generator(z))

    def generate_with_penalty(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The video and the generator's penalty: ``mask_l1`` * mean(mask) for two streams, else None."""
        video, mask = self.generator.forward_with_mask(z)
        penalty = None if mask is None else self.config.mask_l1 * mask.mean()
        return _swap_time_channels(video), penalty

    def discriminate(self, video: torch.Tensor, masks=None) -> torch.Tensor:
        """video (B, T, C, H, W) -> logits (B, 1) (no dropout: ``masks`` is accepted and unused)."""
        return self.discriminator(_swap_time_channels(video))

    generate_images = generate
    generate_images_with_penalty = generate_with_penalty
    critique = discriminate
