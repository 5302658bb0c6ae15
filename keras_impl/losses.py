"""Loss formulas (twin: ``torch_impl/losses.py``), written out the same way in both frameworks.
What each objective means, its schedule and hyperparameters: :mod:`core.objectives`."""

from __future__ import annotations

import tensorflow as tf
from keras import ops


def squared_error(recon, target):
    """Batch mean of the per-sample sum of (x_hat - x)^2 (a Gaussian decoder's reconstruction term)."""
    return ops.mean(ops.sum((recon - target) ** 2, axis=tuple(range(1, len(recon.shape)))))


def mean_squared_error(recon, target):
    """Mean over every value of (x_hat - x)^2."""
    return ops.mean((recon - target) ** 2)


def elbo(out, target, eps, kl_weight, free_bits: float = 0.0) -> dict:
    """Negative ELBO (:mod:`core.objectives.elbo`) of a VAE's forward pass ``out``.

    ``out`` is (recon, mu, logvar) for a Gaussian posterior: KL_j = -0.5 (1 + logvar_j - mu_j^2 -
    exp(logvar_j)); or (recon, mu, logvar, z_K, log_det) for a flow posterior: the one-sample
    KL = log q0(z0) - log_det - log p(z_K), with log q0(z0) = sum_j -0.5 (logvar_j + eps_j^2) and
    log p(z_K) = sum_j -0.5 z_Kj^2 (the log 2pi terms cancel). Free bits (:mod:`core.objectives.kl`)
    clamp what the loss sees; ``kl`` is the true KL. loss = recon + kl_weight * KL'.
    """
    recon, mu, logvar = out[:3]
    rec = squared_error(recon, target)
    if len(out) == 3:
        per_dim = -0.5 * (1.0 + logvar - mu**2 - ops.exp(logvar))
        kl = ops.mean(ops.sum(per_dim, axis=1))
        used = kl if free_bits <= 0 else ops.sum(ops.maximum(ops.mean(per_dim, axis=0), free_bits))
    else:
        z_k, log_det = out[3:]
        kl = ops.mean(ops.sum(-0.5 * (logvar + eps**2), axis=1) - log_det + 0.5 * ops.sum(z_k**2, axis=1))
        used = kl if free_bits <= 0 else ops.maximum(kl, free_bits * mu.shape[1])
    return {"loss": rec + kl_weight * used, "recon": rec, "kl": kl}


def bce_with_logits(logits, target: float):
    """Mean binary cross-entropy of sigmoid(logits) against a constant target t, in the stable
    form max(x, 0) - x t + log(1 + exp(-|x|))."""
    return ops.mean(ops.maximum(logits, 0.0) - logits * target + ops.log1p(ops.exp(-ops.abs(logits))))


def gradient_penalty(critic, real, fake, coeffs):
    """WGAN-GP penalty (Gulrajani et al. 2017, eq. 3), differentiable w.r.t. the critic.

    x_hat = c * real + (1 - c) * fake with one c ~ U(0, 1) per sample (``coeffs``, (B,));
    penalty = mean over the batch of (||grad_x D(x_hat)||_2 - 1)^2, the norm taken over all of
    a sample's values as sqrt(sum g^2 + 1e-12). The inner tape is nested in the caller's tape,
    which then differentiates the penalty w.r.t. the critic's weights (double backprop).
    ``critic`` is a callable image -> score in training mode.
    """
    c = ops.reshape(coeffs, (-1,) + (1,) * (len(real.shape) - 1))
    x_hat = c * real + (1.0 - c) * tf.stop_gradient(fake)
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        scores = critic(x_hat)
    grad = tape.gradient(scores, x_hat)
    norm = ops.sqrt(ops.sum(ops.reshape(grad, (ops.shape(grad)[0], -1)) ** 2, axis=1) + 1e-12)
    return ops.mean((norm - 1.0) ** 2)


def critic_loss(real_scores, fake_scores, penalty, gp_weight) -> dict:
    """critic = mean D(fake) - mean D(real) + gp_weight * penalty; ``wasserstein`` is the
    critic's estimate of the distance, mean D(real) - mean D(fake)."""
    distance = ops.mean(real_scores) - ops.mean(fake_scores)
    return {"critic": -distance + gp_weight * penalty, "wasserstein": distance, "gp": penalty}


def mean_absolute_error(recon, target):
    """Mean over every value of |x_hat - x| (A.G.E.'s data-space reconstruction term, the
    reference's ``match(.., 'L1')``)."""
    return ops.mean(ops.abs(recon - target))


def gaussian_fit_kl(codes):
    """A.G.E.'s divergence of a batch of codes (B, M) from N(0, I) (:mod:`core.objectives.age_game`):
    a Gaussian fitted per dimension, m_j the batch mean and v_j the *biased* batch variance
    (1/B) Σ_b (q_bj - m_j)^2, then the mean over the M dimensions of
    KL(N(m_j, v_j) ‖ N(0, 1)) = (v_j + m_j^2 - 1 - log v_j) / 2.

    The corrected formula: the reference's ``KLN01Loss`` squares v_j (DmitryUlyanov/AGE issue #3).
    """
    mean = ops.mean(codes, axis=0)
    var = ops.mean((codes - mean) ** 2, axis=0)
    return ops.mean(0.5 * (var + mean**2 - 1.0 - ops.log(var)))


def latent_cosine(a, b):
    """A.G.E.'s latent reconstruction term (:mod:`core.objectives.age_game`): each row of ``a`` and
    ``b`` (B, M) projected onto the unit sphere, then the mean over the B x M entries of
    (1/M - â ⊙ b̂) = (1/M) · mean_b (1 - cos(a_b, b_b)): the reference's ``match(.., 'cos')``
    (2 - mean(â ⊙ b̂)) less a constant, with its gradient."""
    from .layers.sphere import to_sphere

    return ops.mean(1.0 / a.shape[1] - to_sphere(a) * to_sphere(b))
