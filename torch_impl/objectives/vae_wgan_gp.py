"""VAE-GAN updates (:mod:`core.objectives.wgan_gp`; twin: ``keras_impl/objectives/vae_wgan_gp.py``):
the WGAN-GP critic, and a generator step on the adversarial term plus the ELBO."""

from __future__ import annotations

from ..losses import elbo
from .wgan_gp import critic, per_frame  # noqa: F401 - the critic update is WGAN-GP's


def generator(model, batch, inputs, objective):
    hp = objective.hp
    terms = elbo(model(batch, inputs["eps"]), per_frame(model, batch), inputs["eps"], inputs["kl_weight"],
                 hp.free_bits)
    adversarial = -model.critique(model.generate_images(inputs["prior"])).mean()
    return {"generator": hp.adv_weight * adversarial + terms["loss"], "adversarial": adversarial,
            "recon": terms["recon"], "kl": terms["kl"]}
