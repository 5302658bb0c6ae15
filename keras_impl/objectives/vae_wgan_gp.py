"""VAE-GAN updates (:mod:`core.objectives.wgan_gp`; twin: ``torch_impl/objectives/vae_wgan_gp.py``):
the WGAN-GP critic, and a generator step on the adversarial term plus the ELBO."""

from __future__ import annotations

from keras import ops

from ..losses import elbo
from .wgan_gp import critic, per_frame  # noqa: F401 - the critic update is WGAN-GP's


def generator(model, batch, inputs, objective):
    hp = objective.hp
    terms = elbo(model(batch, eps=inputs["eps"], training=True), per_frame(model, batch), inputs["eps"],
                 inputs["kl_weight"], hp.free_bits)
    adversarial = -ops.mean(model.critique(model.generate_images(inputs["prior"], training=True), training=True))
    return {"generator": hp.adv_weight * adversarial + terms["loss"], "adversarial": adversarial,
            "recon": terms["recon"], "kl": terms["kl"]}
