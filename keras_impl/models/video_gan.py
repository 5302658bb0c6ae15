"""The 3D-conv video GAN (seed 003), Keras twin of ``torch_impl/models/video_gan.py``.

Architecture, defaults and the two-stream variant: :class:`core.models.video_gan.VideoGANConfig`.
Videos are (B, T, H, W, C) here, which is both the parts' Keras layout and Conv3D's NDHWC, so
nothing is permuted; the two-stream background (B, H, W, C) is broadcast over the frame axis.
"""

from __future__ import annotations

import keras
from keras import ops

from core.models.video_gan import VideoGANConfig

from ..layers.core import (BatchNorm2d, BatchNorm3d, Conv3d, ConvTranspose2d, ConvTranspose3d, LeakyReLU, ReLU,
                           Sequential, TorchLayer)


def _up3d(cfg: VideoGANConfig, layer: int, a: int, b: int, bias: bool) -> ConvTranspose3d:
    kt, st = cfg.temporal(layer)
    return ConvTranspose3d(a, b, (kt, cfg.kernel, cfg.kernel), (st, 2, 2), 1, bias=bias)


class Stream(TorchLayer):
    """z -> base volume -> stride-2 BatchNorm + ReLU blocks (see the torch twin); ``dims`` 3 or 2."""

    def __init__(self, config: VideoGANConfig, dims: int = 3, **kwargs):
        super().__init__(**kwargs)
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

    def call(self, z, training=None):
        return self.net(ops.reshape(z, (-1, *([1] * self.dims), z.shape[-1])), training=training)


class Generator(TorchLayer):
    """z (B, latent) -> video (B, T, H, W, C) in [-1, 1]; ``call_with_mask`` also gives the mask."""

    def __init__(self, config: VideoGANConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = cfg = config
        last, g = len(cfg.generator_dims) - 1, cfg.generator_dims[-1]
        self.video = Stream(cfg, 3)
        self.video_head = _up3d(cfg, last, g, cfg.in_channels, bias=True)
        if cfg.two_stream:
            self.mask_head = _up3d(cfg, last, g, 1, bias=True)
            self.background = Stream(cfg, 2)
            self.background_head = ConvTranspose2d(g, cfg.in_channels, cfg.kernel, 2, 1)

    def call_with_mask(self, z, training=None):
        h = self.video(z, training=training)
        foreground = ops.tanh(self.video_head(h))
        if not self.config.two_stream:
            return foreground, None
        mask = ops.sigmoid(self.mask_head(h))
        background = ops.expand_dims(ops.tanh(self.background_head(self.background(z, training=training))), 1)
        return mask * foreground + (1.0 - mask) * background, mask

    def call(self, z, training=None):
        return self.call_with_mask(z, training=training)[0]


class Discriminator(TorchLayer):
    """video (B, T, H, W, C) -> Conv3d + LeakyReLU per width -> a Conv3d over what is left -> logits (B, 1)."""

    def __init__(self, config: VideoGANConfig, **kwargs):
        super().__init__(**kwargs)
        layers, widths = [], (config.in_channels, *config.discriminator_dims)
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            kt, st = config.temporal(i)
            layers += [Conv3d(a, b, (kt, config.kernel, config.kernel), (st, 2, 2), 1), LeakyReLU(config.leaky_slope)]
        self.features = Sequential(*layers)
        self.head = Conv3d(widths[-1], 1, config.discriminator_shapes()[-1])

    def call(self, x, training=None):
        return ops.reshape(self.head(self.features(x, training=training)), (-1, 1))


class VideoGAN(keras.Model):
    """Generator z (B, latent) -> video (B, T, H, W, C) in [-1, 1]; discriminator video -> logit (B, 1)."""

    def __init__(self, config: VideoGANConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.generator = Generator(config)
        self.discriminator = Discriminator(config)

    def parameter_groups(self) -> dict[str, list[keras.Variable]]:
        d = list(self.discriminator.trainable_variables)
        return {"generator": list(self.generator.trainable_variables), "discriminator": d, "critic": d}

    def generate(self, z, training=False):
        """z -> video (B, T, H, W, C) in [-1, 1]."""
        return self.generator(z, training=training)

    def generate_with_penalty(self, z, training=False):
        """The video and ``mask_l1`` * mean(mask) for two streams (None for one)."""
        video, mask = self.generator.call_with_mask(z, training=training)
        return video, None if mask is None else self.config.mask_l1 * ops.mean(mask)

    def discriminate(self, video, masks=None, training=False):
        """video (B, T, H, W, C) -> logits (B, 1) (no dropout: ``masks`` is unused)."""
        return self.discriminator(video, training=training)

    def generate_images(self, z, training=False):
        return self.generate(z, training=training)

    def generate_images_with_penalty(self, z, training=False):
        return self.generate_with_penalty(z, training=training)

    def critique(self, video, training=False):
        return self.discriminate(video, training=training)
