"""The ParamTanh VAE-GAN (seeds 000, 001), Keras twin of ``torch_impl/models/vaegan.py``.

Architecture and its choices: :class:`core.models.vaegan.VAEGANConfig`. Images are NHWC and videos
(B, T, H, W, C) here; flattening before the Linear layers goes through channel-first order so
their weights are torch's, transposed and nothing else.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from core.models.vaegan import VAEGANConfig
from core.param_tanh import require_output

from ..layers.core import Conv2d, ConvTranspose2d, LeakyReLU, Linear, MaxPool2d, ReLU, Sequential, Sigmoid, TorchLayer
from ..layers.param_tanh import ParamTanh
from .base import VariationalModel


def conv_blocks(cfg: VAEGANConfig, activation) -> Sequential:
    """Conv2d(k=3, s=1, p=1) -> activation -> MaxPool2d(2) per hidden width (encoder and critic)."""
    blocks, in_ch = [], cfg.in_channels
    for h in cfg.hidden_dims:
        blocks.append(Sequential(Conv2d(in_ch, h, 3, 1, 1), activation(), MaxPool2d(2)))
        in_ch = h
    return Sequential(*blocks)


def _flatten_channels_first(h):
    """(B, H, W, C) -> (B, C*H*W) in torch's order (static feature count, symbolic batch)."""
    return ops.reshape(ops.transpose(h, (0, 3, 1, 2)), (-1, h.shape[1] * h.shape[2] * h.shape[3]))


class Critic(TorchLayer):
    """WGAN critic: image (B, H, W, C) -> unbounded score (B, 1); higher means "looks real".

    :func:`core.param_tanh.probability_real` maps a score to the seeds' "probability of being real".
    """

    def __init__(self, config: VAEGANConfig, **kwargs):
        super().__init__(**kwargs)
        self.features = conv_blocks(config, lambda: LeakyReLU(config.critic_slope))
        self.score = Linear(config.flat_features, 1)

    def call(self, image, training=None):
        return self.score(_flatten_channels_first(self.features(image, training=training)))


class VAEGAN(VariationalModel):
    """VAE generator with a ParamTanh output layer, plus its critic (trained together, WGAN-GP)."""

    def __init__(self, config: VAEGANConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = cfg = config
        self.encoder = conv_blocks(cfg, ReLU)
        self.fc_mu = Linear(cfg.flat_features, cfg.latent_dim)
        self.fc_logvar = Linear(cfg.flat_features, cfg.latent_dim)
        self.decoder_input = Linear(cfg.latent_dim, cfg.flat_features)
        rev = list(reversed(cfg.hidden_dims))
        ups = [Sequential(ConvTranspose2d(rev[i], rev[i + 1], 4, 2, 1), ReLU()) for i in range(len(rev) - 1)]
        self.decoder = Sequential(*ups, ConvTranspose2d(rev[-1], cfg.in_channels, 4, 2, 1), Sigmoid())
        self.param_tanh = ParamTanh(cfg)
        self.critic = Critic(cfg)

    def generator_variables(self) -> list[keras.Variable]:
        """Everything but the critic: what the generator's optimizer trains (alpha included)."""
        critic = {id(v) for v in self.critic.trainable_variables}
        return [v for v in self.trainable_variables if id(v) not in critic]

    def parameter_groups(self) -> dict[str, list[keras.Variable]]:
        """The objective's optimizers' variables: ``generator`` (all but the critic), ``critic``."""
        return {"generator": self.generator_variables(), "critic": list(self.critic.trainable_variables)}

    def training_scalars(self) -> dict[str, float]:
        """``single`` mode's learned alpha, logged every step."""
        if self.config.tanh_mode != "single":
            return {}
        return {"alpha": float(np.asarray(self.param_tanh.alpha_of(None))[0])}

    def summaries(self, z) -> dict:
        """ParamTanh's alpha on the decoder outputs of ``z`` (canonical layout), for TensorBoard."""
        alpha = np.asarray(self.param_tanh.alpha_of(self.decode_base(z)))
        return {"alpha": alpha if alpha.ndim == 1 else np.moveaxis(alpha, -1, -3)}

    def encode(self, image, training=False):
        h = _flatten_channels_first(self.encoder(image, training=training))
        return self.fc_mu(h), self.fc_logvar(h)

    def decode_base(self, z, training=False):
        """The decoder's Sigmoid output x, before ParamTanh: (B, H, W, C) in (0, 1)."""
        cfg = self.config
        h = ops.reshape(ops.relu(self.decoder_input(z)), (-1, cfg.hidden_dims[-1], cfg.feature_size, cfg.feature_size))
        return self.decoder(ops.transpose(h, (0, 2, 3, 1)), training=training)

    def generate(self, z, training=False):
        """z -> image (B, H, W, C) (``single``, ``matrix``, ``transformer`` modes)."""
        require_output(self.config, video=False)
        return self.param_tanh(self.decode_base(z, training=training), training=training)

    def generate_video(self, z, training=False):
        """z -> video (B, T, H, W, C) (``time`` mode)."""
        require_output(self.config, video=True)
        return self.param_tanh(self.decode_base(z, training=training), training=training)

    def generate_images(self, z, training=False):
        """What training judges: the images, or every frame of the videos as (B*T, H, W, C)."""
        out = self.param_tanh(self.decode_base(z, training=training), training=training)
        if self.config.is_video:
            cfg = self.config
            return ops.reshape(out, (-1, cfg.image_size, cfg.image_size, cfg.in_channels))
        return out

    def critique(self, image, training=False):
        return self.critic(image, training=training)

    def reconstruct(self, z, training=False):
        return self.generate_images(z, training=training)
