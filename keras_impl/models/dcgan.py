"""The TensorFlow DCGAN tutorial's networks (seed 003), Keras twin of ``torch_impl/models/dcgan.py``.

Architecture, defaults and the parity traps it matches: :class:`core.models.dcgan.DCGANConfig`.
Images are NHWC here. The generator reshapes its projection channel-first, (B, g0, base, base),
then transposes to NHWC; the discriminator transposes back to channel-first before flattening;
so the Linear weights are torch's, transposed and nothing else. Dropout keep-masks arrive in the
canonical (B, C, H, W) layout (:meth:`core.models.dcgan.DCGANConfig.dropout_shapes`) and
:meth:`Features.call` transposes each to NHWC before handing it to its Dropout layer.
"""

from __future__ import annotations

import keras
from keras import ops

from core.models.dcgan import DCGANConfig

from ..layers.batchnorm import BatchNorm1d
from ..layers.core import BatchNorm2d, Conv2d, ConvTranspose2d, LeakyReLU, Linear, Sequential, TorchLayer
from ..layers.dropout import Dropout, MaskedSequential


class Generator(TorchLayer):
    """z (B, latent) -> ``project`` -> reshape channel-first, to NHWC -> ``upsample`` -> Tanh:
    image (B, H, W, C) in [-1, 1] (see the torch twin)."""

    def __init__(self, config: DCGANConfig, **kwargs):
        super().__init__(**kwargs)
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

    def call(self, z, training=None):
        cfg = self.config
        h = self.project(z, training=training)
        h = ops.transpose(ops.reshape(h, (-1, cfg.generator_dims[0], cfg.base_size, cfg.base_size)), (0, 2, 3, 1))
        return ops.tanh(self.upsample(h, training=training))


class Features(MaskedSequential):
    """Conv2d(k5, s2, p2) -> LeakyReLU -> Dropout per discriminator width: image (B, H, W, C) ->
    features (B, H', W', C').

    ``keep_masks``: one canonical (B, C, H, W) keep-mask per Dropout, in order, as the objective
    draws them; each is transposed to (B, H, W, C) here, the layout of the activations it masks.
    """

    def __init__(self, config: DCGANConfig, **kwargs):
        layers, widths = [], (config.in_channels, *config.discriminator_dims)
        for a, b in zip(widths, widths[1:]):
            layers += [Conv2d(a, b, config.kernel_size, 2, config.padding), LeakyReLU(config.leaky_slope),
                       Dropout(config.dropout)]
        super().__init__(*layers, **kwargs)

    def adapt_mask(self, mask):
        """canonical NCHW -> NHWC, the layout of the activations it masks."""
        return ops.transpose(mask, (0, 2, 3, 1))


class Discriminator(TorchLayer):
    """``features`` (:class:`Features`) -> flatten channel-first -> ``head`` Linear(-> 1):
    image (B, H, W, C) -> logits (B, 1); ``keep_masks`` go to ``features``."""

    def __init__(self, config: DCGANConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.features = Features(config)
        self.head = Linear(config.flat_features, 1)

    def call(self, x, keep_masks=None, training=None):
        h = self.features(x, keep_masks, training=training)
        h = ops.reshape(ops.transpose(h, (0, 3, 1, 2)), (-1, self.config.flat_features))
        return self.head(h, training=training)


class DCGAN(keras.Model):
    """Generator z (B, latent) -> image (B, H, W, C) in [-1, 1]; discriminator image -> logit (B, 1)."""

    def __init__(self, config: DCGANConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.generator = Generator(config)
        self.discriminator = Discriminator(config)

    def parameter_groups(self) -> dict[str, list[keras.Variable]]:
        """The objective's optimizers' variables: ``generator`` and ``discriminator``."""
        return {"generator": list(self.generator.trainable_variables),
                "discriminator": list(self.discriminator.trainable_variables)}

    def generate(self, z, training=False):
        """z -> image (B, H, W, C) in [-1, 1]."""
        return self.generator(z, training=training)

    def discriminate(self, image, masks=None, training=False):
        """image (B, H, W, C) -> logits (B, 1); ``masks``: the canonical dropout keep-masks of this pass."""
        return self.discriminator(image, masks, training=training)
