"""WGAN-GP updates (:mod:`core.objectives.wgan_gp`; twin: ``keras_impl/objectives/wgan_gp.py``).

The model provides ``generate_images(z)`` (what the critic judges: images, or every frame of a
video as (B*T, C, H, W)) and ``critique(images)``.
"""

from __future__ import annotations

import torch

from core.objectives.wgan_gp import frames_per_sample

from ..losses import critic_loss, gradient_penalty
from . import penalized, with_penalty


def per_frame(model, real: torch.Tensor) -> torch.Tensor:
    """Real images repeated once per generated frame (video generators are judged frame by frame)."""
    frames = frames_per_sample(model.config)
    return real.repeat_interleave(frames, 0) if frames > 1 else real


def critic(model, batch, inputs, objective):
    with torch.no_grad():
        fake = model.generate_images(inputs["prior"])
    penalty = gradient_penalty(model.critique, per_frame(model, batch), fake, inputs["coeffs"])
    return critic_loss(model.critique(batch), model.critique(fake), penalty, objective.hp.gp_weight)


def generator(model, batch, inputs, objective):
    fake, penalty = penalized(model, "generate_images", inputs["prior"])
    return with_penalty({"generator": -model.critique(fake).mean()}, penalty)
