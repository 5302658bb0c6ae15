"""Adversarial Generator-Encoder Networks (Ulyanov et al. 2018), Keras twin of
``torch_impl/models/age.py``. Architecture, sizes, initial weights and where they follow the
reference code: :class:`core.models.age.AGEConfig`; the game: :mod:`core.objectives.age_game`.

Images are NHWC here. The encoder's head leaves a (B, 1, 1, latent) map, so flattening it is the
same in either layout; the generator reshapes z to (B, 1, 1, latent). Every conv is torch's
(explicit symmetric padding, transposed convs cropped to torch's window:
``keras_impl/layers/core.py``), BatchNorm in torch's numerics with the config's eps and momentum.
"""

from __future__ import annotations

import keras
from keras import ops

from core.init import Init
from core.models.age import AGEConfig

from ..layers.core import BatchNorm2d, Conv2d, ConvTranspose2d, LeakyReLU, ReLU, Sequential, TorchLayer
from ..layers.sphere import to_sphere


def _conv_weight_rules(prefix: str, layers: Sequential, rule: Init) -> dict[str, Init]:
    """{``<prefix><i>.weight``: rule} for every (transposed) convolution of ``layers``."""
    return {f"{prefix}{i}.weight": rule for i, layer in enumerate(layers.children_list)
            if isinstance(layer, (Conv2d, ConvTranspose2d))}


class Encoder(TorchLayer):
    """image (B, S, S, C) in [-1, 1] -> ``features`` -> ``head`` -> flatten -> unit vector (B, latent)
    (see the torch twin)."""

    def __init__(self, config: AGEConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = cfg = config
        k, s, p, slope = cfg.kernel_size, cfg.stride, cfg.padding, cfg.leaky_slope
        widths = (cfg.in_channels, *cfg.encoder_dims)
        layers: list[keras.layers.Layer] = []
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            layers.append(Conv2d(a, b, k, s, p, bias=False))
            if i:
                layers.append(BatchNorm2d(b, eps=cfg.bn_eps, momentum=cfg.bn_momentum))
            layers.append(LeakyReLU(slope))
        self.features = Sequential(*layers)
        self.head = Conv2d(widths[-1], cfg.latent_dim, cfg.base_size, 1, 0, bias=True)

    def init_rules(self) -> dict[str, Init]:
        """Conv weights N(0, 0.02^2) (overriding torch's default; the head's bias keeps it)."""
        rule = self.config.init_rule()
        return {**_conv_weight_rules("features.", self.features, rule), "head.weight": rule}

    def call(self, image, training=None):
        h = self.head(self.features(image, training=training), training=training)
        return to_sphere(ops.reshape(h, (-1, self.config.latent_dim)), self.config.sphere_eps)


class Generator(TorchLayer):
    """z (B, latent) -> (B, 1, 1, latent) -> ``upsample`` -> Tanh: image (B, S, S, C) in [-1, 1]
    (see the torch twin)."""

    def __init__(self, config: AGEConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = cfg = config
        k, s, p = cfg.kernel_size, cfg.stride, cfg.padding
        widths = (cfg.latent_dim, *cfg.generator_dims)
        layers: list[keras.layers.Layer] = []
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            layers += [ConvTranspose2d(a, b, k, 1 if i == 0 else s, 0 if i == 0 else p, bias=False),
                       BatchNorm2d(b, eps=cfg.bn_eps, momentum=cfg.bn_momentum), ReLU()]
        layers.append(ConvTranspose2d(widths[-1], cfg.in_channels, k, s, p, bias=False))
        self.upsample = Sequential(*layers)

    def init_rules(self) -> dict[str, Init]:
        """Transposed-conv weights N(0, 0.02^2) (overriding torch's default)."""
        return _conv_weight_rules("upsample.", self.upsample, self.config.init_rule())

    def call(self, z, training=None):
        return ops.tanh(self.upsample(ops.reshape(z, (-1, 1, 1, self.config.latent_dim)), training=training))


class AGE(keras.Model):
    """Encoder image (B, S, S, C) in [-1, 1] -> z (B, latent), unit norm; generator z -> image in [-1, 1]."""

    def __init__(self, config: AGEConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.encoder = Encoder(config)
        self.generator = Generator(config)

    def parameter_groups(self) -> dict[str, list[keras.Variable]]:
        """The objective's optimizers' variables: ``encoder`` and ``generator``."""
        return {"encoder": list(self.encoder.trainable_variables),
                "generator": list(self.generator.trainable_variables)}

    def encode(self, image, training=False):
        """image (B, S, S, C) in [-1, 1] -> z (B, latent) on the unit sphere."""
        return self.encoder(image, training=training)

    def generate(self, z, training=False):
        """z (B, latent) -> image (B, S, S, C) in [-1, 1]."""
        return self.generator(z, training=training)
