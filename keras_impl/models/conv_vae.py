"""Convolutional VAE (seed 002), Keras twin of ``torch_impl/models/conv_vae.py``.

Architecture and its choices: :class:`core.models.conv_vae.ConvVAEConfig`. Images are NHWC here; the
flatten before ``fc_mu``/``fc_logvar`` and the reshape after ``decoder_input`` go through
channel-first order so the Linear weights are torch's, transposed and nothing else.
"""

from __future__ import annotations

import keras
from keras import ops

from core.models.conv_vae import ConvVAEConfig

from ..layers.core import BatchNorm2d, Conv2d, ConvTranspose2d, LeakyReLU, Linear, Sequential, Sigmoid
from .base import VariationalModel


def _norm_act(cfg: ConvVAEConfig, channels: int) -> list[keras.layers.Layer]:
    return [BatchNorm2d(channels, eps=cfg.bn_eps, momentum=cfg.bn_momentum), LeakyReLU(cfg.leaky_slope)]


class ConvVAE(VariationalModel):
    """image (B, H, W, C) in [0, 1] -> (mu, logvar) -> z -> image (B, H, W, C) in [0, 1]."""

    def __init__(self, config: ConvVAEConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = cfg = config
        k, s, p = cfg.kernel_size, cfg.stride, cfg.padding
        blocks, in_ch = [], cfg.in_channels
        for h in cfg.hidden_dims:
            blocks.append(Sequential(Conv2d(in_ch, h, k, s, p, bias=False), *_norm_act(cfg, h)))
            in_ch = h
        self.encoder = Sequential(*blocks)
        self.fc_mu = Linear(cfg.flat_features, cfg.latent_dim)
        self.fc_logvar = Linear(cfg.flat_features, cfg.latent_dim)

        self.decoder_input = Linear(cfg.latent_dim, cfg.flat_features)
        rev, pads = list(reversed(cfg.hidden_dims)), cfg.decoder_output_paddings
        self.decoder = Sequential(
            *[
                Sequential(ConvTranspose2d(rev[i], rev[i + 1], k, s, p, output_padding=pads[i], bias=False),
                           *_norm_act(cfg, rev[i + 1]))
                for i in range(len(rev) - 1)
            ]
        )
        last = rev[-1]
        self.final_layer = Sequential(
            ConvTranspose2d(last, last, k, s, p, output_padding=pads[-1], bias=False),
            *_norm_act(cfg, last),
            Conv2d(last, cfg.in_channels, k, 1, p),
            Sigmoid(),
        )

    def encode(self, image, training=False):
        h = self.encoder(image, training=training)
        h = ops.reshape(ops.transpose(h, (0, 3, 1, 2)), (-1, self.config.flat_features))
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z, training=False):
        cfg = self.config
        side = cfg.feature_sizes[-1]
        h = ops.reshape(self.decoder_input(z), (-1, cfg.hidden_dims[-1], side, side))
        h = ops.transpose(h, (0, 2, 3, 1))
        return self.final_layer(self.decoder(h, training=training), training=training)

    def reconstruct(self, z, training=False):
        return self.decode(z, training=training)
