"""Objectives (twin: ``torch_impl/losses.py``; the formulas are written out in both)."""

from __future__ import annotations

import tensorflow as tf
from keras import ops


def vae_loss(recon, target, mu, logvar, kl_weight=1.0) -> dict:
    """Negative ELBO with a Gaussian decoder, averaged over the batch.

    recon = sum over pixels of (x_hat - x)^2;  kl = -0.5 * sum_j (1 + logvar_j - mu_j^2 - exp(logvar_j));
    loss = recon + kl_weight * kl.
    """
    rec = ops.mean(ops.sum((recon - target) ** 2, axis=tuple(range(1, len(recon.shape)))))
    kl = ops.mean(-0.5 * ops.sum(1.0 + logvar - mu**2 - ops.exp(logvar), axis=1))
    return {"loss": rec + kl_weight * kl, "recon": rec, "kl": kl}


def gradient_penalty(critic, real, fake, coeffs):
    """WGAN-GP penalty (Gulrajani et al. 2017, eq. 3), differentiable w.r.t. the critic.

    x_hat = c * real + (1 - c) * fake with one c ~ U(0, 1) per sample (``coeffs``, (B,));
    penalty = mean over the batch of (||grad_x D(x_hat)||_2 - 1)^2, the norm taken over all of
    a sample's values as sqrt(sum g^2 + 1e-12). The inner tape is nested in the caller's tape,
    which then differentiates the penalty w.r.t. the critic's weights (double backprop).
    """
    c = ops.reshape(coeffs, (-1,) + (1,) * (len(real.shape) - 1))
    x_hat = c * real + (1.0 - c) * tf.stop_gradient(fake)
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        scores = critic(x_hat, training=True)
    grad = tape.gradient(scores, x_hat)
    norm = ops.sqrt(ops.sum(ops.reshape(grad, (ops.shape(grad)[0], -1)) ** 2, axis=1) + 1e-12)
    return ops.mean((norm - 1.0) ** 2)


def critic_loss(real_scores, fake_scores, penalty, gp_weight) -> dict:
    """critic = mean D(fake) - mean D(real) + gp_weight * penalty; ``wasserstein`` is the
    critic's estimate of the distance, mean D(real) - mean D(fake)."""
    distance = ops.mean(real_scores) - ops.mean(fake_scores)
    return {"critic": -distance + gp_weight * penalty, "wasserstein": distance, "gp": penalty}


def vaegan_generator_loss(fake_scores, recon, target, mu, logvar, kl_weight, adv_weight) -> dict:
    """The seeds' combined loss for the generator: adv_weight * (-mean D(G(z))) + the ELBO of
    :func:`vae_loss` (z ~ N(0, 1) for the adversarial term, the encoder's posterior for the ELBO)."""
    elbo = vae_loss(recon, target, mu, logvar, kl_weight)
    adversarial = -ops.mean(fake_scores)
    return {"generator": adv_weight * adversarial + elbo["loss"], "adversarial": adversarial,
            "recon": elbo["recon"], "kl": elbo["kl"]}
