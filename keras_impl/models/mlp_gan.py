"""The fully connected GAN (seed 004), Keras twin of ``torch_impl/models/mlp_gan.py``.

Architecture and its choices: :class:`core.models.mlp_gan.MLPGANConfig`. Images are NHWC here; the
discriminator flattens them and the generator reshapes its output in channel-first order, so the
Linear weights are torch's, transposed and nothing else.
"""

from __future__ import annotations

import keras
from keras import ops

from core.models.mlp_gan import MLPGANConfig

from ..layers.core import LeakyReLU, Linear, Sequential
from ..layers.dropout import Dropout, MaskedSequential


class Discriminator(MaskedSequential):
    """Linear -> LeakyReLU -> Dropout per hidden width, then Linear(-> 1): (B, C*H*W) -> logits (B, 1).

    ``keep_masks`` (one per Dropout, in order) are handed to the Dropout layers; without them
    training mode drops at random and inference not at all.
    """

    def __init__(self, config: MLPGANConfig, **kwargs):
        layers, widths = [], config.discriminator_widths
        for a, b in zip(widths[:-2], widths[1:-1]):
            layers += [Linear(a, b), LeakyReLU(config.leaky_slope), Dropout(config.dropout)]
        super().__init__(*layers, Linear(widths[-2], widths[-1]), **kwargs)


class MLPGAN(keras.Model):
    """Generator z (B, latent) -> image (B, H, W, C) in [-1, 1]; discriminator image -> logit (B, 1)."""

    def __init__(self, config: MLPGANConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = cfg = config
        layers, widths = [], cfg.generator_widths
        for a, b in zip(widths[:-2], widths[1:-1]):
            layers += [Linear(a, b), LeakyReLU(cfg.leaky_slope)]
        self.generator = Sequential(*layers, Linear(widths[-2], widths[-1]))
        self.discriminator = Discriminator(cfg)

    def parameter_groups(self) -> dict[str, list[keras.Variable]]:
        """The objective's optimizers' variables: ``generator`` and ``discriminator``."""
        return {"generator": list(self.generator.trainable_variables),
                "discriminator": list(self.discriminator.trainable_variables)}

    def generate(self, z, training=False):
        """z -> image (B, H, W, C) in [-1, 1]: the generator's last Linear, Tanh, then reshape."""
        cfg = self.config
        h = ops.tanh(self.generator(z, training=training))
        h = ops.reshape(h, (-1, cfg.in_channels, cfg.image_size, cfg.image_size))
        return ops.transpose(h, (0, 2, 3, 1))

    def discriminate(self, image, masks=None, training=False):
        """image (B, H, W, C) -> logits (B, 1); ``masks``: the dropout keep-masks of this pass."""
        h = ops.reshape(ops.transpose(image, (0, 3, 1, 2)), (-1, self.config.image_values))
        return self.discriminator(h, masks, training=training)
