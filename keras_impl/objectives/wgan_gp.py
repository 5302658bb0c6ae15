"""WGAN-GP updates (:mod:`core.objectives.wgan_gp`; twin: ``torch_impl/objectives/wgan_gp.py``).

The model provides ``generate_images(z)`` (what the critic judges: images, or every frame of a
video as (B*T, H, W, C)) and ``critique(images)``.
"""

from __future__ import annotations

import tensorflow as tf
from keras import ops

from core.objectives.wgan_gp import frames_per_sample

from ..losses import critic_loss, gradient_penalty
from . import penalized, with_penalty


def per_frame(model, real):
    """Real images repeated once per generated frame (video generators are judged frame by frame)."""
    frames = frames_per_sample(model.config)
    return ops.repeat(real, frames, axis=0) if frames > 1 else real


def critic(model, batch, inputs, objective):
    fake = tf.stop_gradient(model.generate_images(inputs["prior"], training=True))
    penalty = gradient_penalty(lambda x: model.critique(x, training=True), per_frame(model, batch), fake,
                               inputs["coeffs"])
    return critic_loss(model.critique(batch, training=True), model.critique(fake, training=True), penalty,
                       objective.hp.gp_weight)


def generator(model, batch, inputs, objective):
    fake, penalty = penalized(model, "generate_images", inputs["prior"], training=True)
    return with_penalty({"generator": -ops.mean(model.critique(fake, training=True))}, penalty)
