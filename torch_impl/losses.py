"""Loss formulas (twin: ``keras_impl/losses.py``), written out the same way in both frameworks.
What each objective means, its schedule and hyperparameters: :mod:`core.objectives`."""

from __future__ import annotations

import torch


def squared_error(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Batch mean of the per-sample sum of (x_hat - x)^2 (a Gaussian decoder's reconstruction term)."""
    return torch.sum((recon - target) ** 2, dim=tuple(range(1, recon.dim()))).mean()


def mean_squared_error(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over every value of (x_hat - x)^2."""
    return torch.mean((recon - target) ** 2)


def elbo(out: tuple[torch.Tensor, ...], target: torch.Tensor, eps: torch.Tensor, kl_weight: torch.Tensor | float,
         free_bits: float = 0.0) -> dict[str, torch.Tensor]:
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
        per_dim = -0.5 * (1.0 + logvar - mu**2 - torch.exp(logvar))
        kl = per_dim.sum(1).mean()
        used = kl if free_bits <= 0 else torch.clamp(per_dim.mean(0), min=free_bits).sum()
    else:
        z_k, log_det = out[3:]
        kl = (torch.sum(-0.5 * (logvar + eps**2), 1) - log_det + 0.5 * torch.sum(z_k**2, 1)).mean()
        used = kl if free_bits <= 0 else torch.clamp(kl, min=free_bits * mu.shape[1])
    return {"loss": rec + kl_weight * used, "recon": rec, "kl": kl}


def bce_with_logits(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Mean binary cross-entropy of sigmoid(logits) against a constant target t, in the stable
    form max(x, 0) - x t + log(1 + exp(-|x|))."""
    return torch.mean(torch.clamp(logits, min=0) - logits * target + torch.log1p(torch.exp(-torch.abs(logits))))


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017, eq. 3), differentiable w.r.t. the critic.

    x_hat = c * real + (1 - c) * fake with one c ~ U(0, 1) per sample (``coeffs``, (B,));
    penalty = mean over the batch of (||grad_x D(x_hat)||_2 - 1)^2, the norm taken over all of
    a sample's values as sqrt(sum g^2 + 1e-12) (the 1e-12 keeps the norm's gradient finite at 0).
    """
    c = coeffs.reshape(-1, *([1] * (real.dim() - 1)))
    x_hat = (c * real + (1.0 - c) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    norm = torch.sqrt(grad.flatten(1).pow(2).sum(1) + 1e-12)
    return ((norm - 1.0) ** 2).mean()


def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor, penalty: torch.Tensor,
                gp_weight: float) -> dict[str, torch.Tensor]:
    """critic = mean D(fake) - mean D(real) + gp_weight * penalty; ``wasserstein`` is the
    critic's estimate of the distance, mean D(real) - mean D(fake)."""
    distance = real_scores.mean() - fake_scores.mean()
    return {"critic": -distance + gp_weight * penalty, "wasserstein": distance, "gp": penalty}


def mean_absolute_error(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over every value of |x_hat - x| (A.G.E.'s data-space reconstruction term, the
    reference's ``match(.., 'L1')``)."""
    return torch.mean(torch.abs(recon - target))


def gaussian_fit_kl(codes: torch.Tensor) -> torch.Tensor:
    """A.G.E.'s divergence of a batch of codes (B, M) from N(0, I) (:mod:`core.objectives.age_game`):
    a Gaussian fitted per dimension, m_j the batch mean and v_j the *biased* batch variance
    (1/B) Σ_b (q_bj - m_j)^2, then the mean over the M dimensions of
    KL(N(m_j, v_j) ‖ N(0, 1)) = (v_j + m_j^2 - 1 - log v_j) / 2.

    The corrected formula: the reference's ``KLN01Loss`` squares v_j (DmitryUlyanov/AGE issue #3).
    """
    mean = torch.mean(codes, dim=0)
    var = torch.mean((codes - mean) ** 2, dim=0)
    return torch.mean(0.5 * (var + mean**2 - 1.0 - torch.log(var)))


def latent_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A.G.E.'s latent reconstruction term (:mod:`core.objectives.age_game`): each row of ``a`` and
    ``b`` (B, M) projected onto the unit sphere, then the mean over the B x M entries of
    (1/M - â ⊙ b̂) = (1/M) · mean_b (1 - cos(a_b, b_b)): the reference's ``match(.., 'cos')``
    (2 - mean(â ⊙ b̂)) less a constant, with its gradient."""
    from .layers.sphere import to_sphere

    return torch.mean(1.0 / a.shape[1] - to_sphere(a) * to_sphere(b))
