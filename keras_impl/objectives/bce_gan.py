"""BCE GAN updates (:mod:`core.objectives.bce_gan`; twin: ``torch_impl/objectives/bce_gan.py``).

The model provides ``generate(z)`` and ``discriminate(images, masks)`` (logits; ``masks`` the
injected dropout keep-masks of one pass).
"""

from __future__ import annotations

import tensorflow as tf

from ..losses import bce_with_logits
from . import masks, penalized, with_penalty


def discriminator(model, batch, inputs, objective):
    fake = tf.stop_gradient(model.generate(inputs["prior"], training=True))
    d_real = bce_with_logits(model.discriminate(batch, masks(inputs, "dropout_real"), training=True),
                             objective.hp.real_label)
    d_fake = bce_with_logits(model.discriminate(fake, masks(inputs, "dropout_fake"), training=True), 0.0)
    return {"discriminator": d_real + d_fake, "d_real": d_real, "d_fake": d_fake}


def generator(model, batch, inputs, objective):
    fake, penalty = penalized(model, "generate", inputs["prior"], training=True)
    logits = model.discriminate(fake, masks(inputs, "dropout_generator"), training=True)
    return with_penalty({"generator": bce_with_logits(logits, 1.0)}, penalty)
