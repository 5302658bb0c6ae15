"""The A.G.E. game (Ulyanov, Vedaldi & Lempitsky, "It Takes (Only) Two: Adversarial
Generator-Encoder Networks", AAAI 2018, arXiv:1704.02304), written once for both frameworks.

Two networks and no discriminator: a generator g (z -> image) and an encoder e (image -> z),
both latents on the unit sphere S^(M-1) (M = latent size). The encoder plays the discriminator's
role *in latent space*: it pulls the codes of real images towards the prior and pushes the codes
of generated images away from it, and the generator pulls its images' codes back (the game of the
paper's §2). Reconstruction terms tie the two maps together (also §2): in data space
||g(e(x)) - x||_1, in latent space the cosine distance between e(g(z)) and z (the reference
code's defaults ``--match_x L1 --match_z cos``).

The divergence from the prior, Δ(Q ‖ N(0, I)), is the paper's parametric estimate: a Gaussian
fitted per latent dimension to the batch of codes q_1..q_B (B codes of M dimensions),

    m_j = (1/B) Σ_b q_bj,    v_j = (1/B) Σ_b (q_bj - m_j)^2       (the biased variance, in both twins:
                                                                   the reference's ``src/utils.var``)
    KL(q) = (1/M) Σ_j (v_j + m_j^2 - 1 - log v_j) / 2              (a *mean* over the dimensions,
                                                                   as the reference's ``.mean()``)

which is KL(N(m_j, v_j) ‖ N(0, 1)) averaged over j. The reference code (DmitryUlyanov/AGE,
``src/losses.py`` ``KLN01Loss``, direction "qp") computes (v_j^2 + m_j^2)/2 - log v_j - 1/2, i.e.
it uses the variance where the formula wants the standard deviation, so its "variance" term is
squared; its author agreed that this is a bug (DmitryUlyanov/AGE issue #3). This toolkit uses the
corrected formula above (:func:`torch_impl.losses.gaussian_fit_kl`, its Keras twin).

Updates, with every weight a hyperparameter (defaults: the reference's CIFAR-10 recipe, its
README: ``--nz 128 --lr 0.0002 --e_updates '1;KL_fake:1,KL_real:1,match_z:0,match_x:10'
--g_updates '2;KL_fake:1,match_z:1000,match_x:0'``, batch 64, Adam betas (0.5, 0.999)):

* ``encoder`` (e's optimizer steps; g(z) is computed without a gradient into g):
  encoder = kl_real·KL(e(x)) - kl_fake·KL(e(g(z))) + match_x·L1(g(e(x)), x) + match_z·cos(e(g(z)), z)
* ``generator`` (g's optimizer steps; e is frozen: nothing of it is stepped), run
  ``generator_steps`` times per step, each run on its own z:
  generator = kl_fake·KL(e(g(z))) + match_z·cos(e(g(z)), z) + match_x·L1(g(e(x)), x)

``L1(a, b)`` is the mean over every value of |a - b| (the reference's ``match(.., 'L1')``).
``cos(a, b)`` is the reference's ``match(.., 'cos')`` up to a constant: with â, b̂ each row
divided by its L2 norm, the reference takes 2 - mean over the B x M entries of â ⊙ b̂; here
cos(a, b) = (1/M) · mean_b (1 - â_b · b̂_b) = mean over the B x M entries of (1/M - â ⊙ b̂), the
per-sample cosine distance averaged over the batch and divided by M. That is 0 for a perfect match
and has exactly the reference's gradient, so the recipe's weight (match_z 1000 with M = 128) means
what it meant there; a plain cosine distance would weigh the term M times more.

A term whose weight is 0 is not computed (and logs 0), as the reference skips it: the passes it
would need (g(e(x)) in a generator run, for instance) would also move BatchNorm's running
statistics. Every pass is in training mode, in the reference's order: encoder e(x), g(e(x)),
g(z), e(g(z)); generator g(z), e(g(z)), e(x), g(e(x)).

The prior: z ~ N(0, I) (:func:`core.noise.step_noise`, stream "prior") divided by its norm,
z / sqrt(Σ z^2 + SPHERE_EPS) (:func:`to_sphere`), the normalisation the encoder applies to its
output too. Step inputs are ``prior_0`` (the encoder's z, index 0) and ``prior_1`` ..
``prior_G`` (one per generator run, indices 1..G); :meth:`AGEGame.update_inputs` hands each run
its own as ``prior``. The log of a step shows the last generator run's losses.

Not reproduced: the reference halves the learning rate every ``--drop_lr`` epochs (40 for
CIFAR-10); here the learning rates are constant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..noise import step_noise
from ..priors import to_sphere
from .base import Hyperparameters, Objective, OptimizerSpec, StepContext, Update, hyper
from .elbo import latent_shape

#: the most generator runs per step a run may ask for
MAX_GENERATOR_STEPS = 1000


@dataclass(frozen=True)
class AGEHyperparameters(Hyperparameters):
    lr_encoder: float = hyper(2e-4, 0.0, 1.0, low_open=True,
                              help="encoder Adam learning rate (reference CIFAR-10 recipe: 2e-4)")
    lr_generator: float = hyper(2e-4, 0.0, 1.0, low_open=True,
                                help="generator Adam learning rate (reference CIFAR-10 recipe: 2e-4)")
    beta1: float = hyper(0.5, 0.0, 1.0, help="Adam beta1 of both networks (reference: 0.5; beta2 0.999)")
    encoder_kl_real: float = hyper(1.0, 0.0, 1e6, help="encoder step: weight of KL(e(x)), minimised (reference: 1)")
    encoder_kl_fake: float = hyper(1.0, 0.0, 1e6,
                                   help="encoder step: weight of KL(e(g(z))), maximised (reference: 1)")
    encoder_match_x: float = hyper(10.0, 0.0, 1e6, help="encoder step: weight of L1(g(e(x)), x) (reference: 10)")
    encoder_match_z: float = hyper(0.0, 0.0, 1e6, help="encoder step: weight of cos(e(g(z)), z) (reference: 0)")
    generator_kl_fake: float = hyper(1.0, 0.0, 1e6, help="generator step: weight of KL(e(g(z))) (reference: 1)")
    generator_match_z: float = hyper(1000.0, 0.0, 1e6,
                                     help="generator step: weight of cos(e(g(z)), z) (reference: 1000)")
    generator_match_x: float = hyper(0.0, 0.0, 1e6, help="generator step: weight of L1(g(e(x)), x) (reference: 0)")
    generator_steps: int = hyper(2, 1, MAX_GENERATOR_STEPS,
                                 help="generator updates per encoder update, each on its own noise (reference: 2)")

    def validate(self) -> None:
        if not (self.encoder_kl_real or self.encoder_kl_fake or self.encoder_match_x or self.encoder_match_z):
            raise ConfigError("age_game: every weight of the encoder step is 0; it would train nothing")
        if not (self.generator_kl_fake or self.generator_match_z or self.generator_match_x):
            raise ConfigError("age_game: every weight of the generator step is 0; it would train nothing")


class AGEGame(Objective):
    """The A.G.E. game (module docstring): one ``encoder`` update, then ``generator_steps``
    ``generator`` updates, every step."""

    name = "age_game"
    hyperparameters = AGEHyperparameters
    updates = (Update("encoder", "encoder", "encoder", ("encoder", "e_kl_real", "e_kl_fake", "e_match_x", "e_match_z")),
               Update("generator", "generator", "generator", ("generator", "g_kl_fake", "g_match_z", "g_match_x")))

    def optimizers(self) -> tuple[OptimizerSpec, ...]:
        betas = (self.hp.beta1, 0.999)
        return (OptimizerSpec("encoder", self.hp.lr_encoder, betas),
                OptimizerSpec("generator", self.hp.lr_generator, betas))

    def schedule(self, step: int) -> tuple[Update, ...]:
        encoder, generator = self.updates
        return (encoder,) + (generator,) * self.hp.generator_steps

    def step_inputs(self, ctx: StepContext) -> dict[str, np.ndarray]:
        """``prior_0`` (the encoder update's z) and ``prior_1`` .. ``prior_G`` (one per generator
        run): N(0, I) draws of stream "prior", index k, each projected onto the unit sphere."""
        if ctx.batch < 2:
            raise ConfigError(f"age_game: the KL terms fit a Gaussian to the batch's codes; a batch needs at least 2 "
                              f"images, got {ctx.batch}")
        shape = (ctx.batch, *latent_shape(self.config))
        return {f"prior_{k}": to_sphere(step_noise(ctx.seed, ctx.step, shape, "prior", k))
                for k in range(1 + self.hp.generator_steps)}

    def update_inputs(self, inputs: dict[str, np.ndarray], update: Update, occurrence: int) -> dict[str, np.ndarray]:
        """{"prior": the run's own z}: ``prior_0`` for the encoder, ``prior_{1 + occurrence}`` for
        the generator's run number ``occurrence``."""
        key = "prior_0" if update.name == "encoder" else f"prior_{1 + occurrence}"
        return {"prior": inputs[key]}
