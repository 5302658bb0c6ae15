"""``flow_vae``: the VAE with planar flows of seed 004 (the report's "3. VAE with Planar Flows").

Config, parts and registration; the twins are ``torch_impl/models/flow_vae.py`` and
``keras_impl/models/flow_vae.py`` (class :class:`FlowVAE`, a subclass of ``conv_vae``'s
``ConvVAE``); the flow layer is ``torch_impl/layers/flows.py`` / ``keras_impl/layers/flows.py``
(class ``PlanarFlow``, whose docstring has the formulas).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from ..configs import bounded
from ..errors import ConfigError
from ..modelspec import ModelSpec, PartSpec, TensorSpec
from ..objectives.elbo import ELBO
from ..report_spec import FigureSeries, GridFigure, ReportRole, RunSpec, Series
from .conv_vae import parts as conv_vae_parts
from .vae import REPORT_HYPERPARAMETERS, VAEConfig


@dataclass(frozen=True)
class FlowVAEConfig(VAEConfig):
    """The report's VAE (:class:`core.models.vae.VAEConfig`, same defaults and presets) with
    ``num_flows`` = 4 planar flows (Rezende & Mohamed 2015) on the posterior sample:
    z_0 = mu + eps * exp(logvar / 2), z_k = f_k(z_{k-1}), f(z) = z + u_hat * tanh(w^T z + b),
    and the decoder reads z_K. Each flow holds u, w (latent_dim,) and b (1,); u_hat is the
    invertibility constraint of the paper's appendix A. The ELBO's KL is the one-sample estimate
    log q0(z_0) - sum_k log|det J_k| - log p(z_K) (:mod:`core.objectives.elbo`).

    The ``encoder`` part returns one code, ``z``: the posterior mean pushed through the flows, which
    the decoder reads like training's z_K (so the runtime's reconstructions go through the flows).
    The posterior after the flows is not Gaussian, so the part does not claim a (mu, logvar): the
    runtime treats the encoder as deterministic, and variations (sampling a Gaussian around mu)
    are refused rather than drawn from the wrong distribution.
    """

    model: ClassVar[str] = "flow_vae"

    num_flows: int = bounded(4, 1, 64)

    def validate(self) -> None:
        super().validate()
        if self.num_flows < 1:
            raise ConfigError(f"flow_vae: num_flows must be at least 1, got {self.num_flows}")

    def parameter_count(self) -> int:
        return super().parameter_count() + self.num_flows * (2 * self.latent_dim + 1)  # u, w, b per flow

    def activation_count(self) -> int:
        return super().activation_count() + self.num_flows * (self.latent_dim + 1)  # z_k and log|det J_k|


def parts(cfg: FlowVAEConfig) -> dict[str, PartSpec]:
    """``conv_vae``'s parts; the encoder runs ``encode_flowed`` (mu through the flows) to one code ``z``."""
    out = conv_vae_parts(cfg)
    out["encoder"] = dataclasses.replace(out["encoder"], method="encode_flowed",
                                         outputs=(TensorSpec("z", ("batch", cfg.latent_dim)),))
    return out


MODEL = ModelSpec(
    name="flow_vae",
    config_cls=FlowVAEConfig,
    parts_fn=parts,
    description="convolutional VAE with 4 planar flows, flow ELBO, KL annealing and free bits (seed 004)",
    class_name="FlowVAE",
    objective=ELBO,
    hyperparameters=dict(REPORT_HYPERPARAMETERS),
    batch_size=64,  # seed 004: "varied between 64 and 128"
    # its part in seed 004's report (core/reports/seed_004.py draws the figures these curves go into)
    reports=(ReportRole(
        report="seed_004", order=3,
        run=RunSpec(
            key="flow_vae", model="flow_vae", heading="3. VAE with Planar Flows",
            steps={"seed": 420, "tiny": 3},
            step_flags={"kl_warmup": 0.5},
            diagram="Input → Encoder → Mean, Log-Variance → z_0 → Flow_1 → ... → Flow_4 → z_4 → Decoder → Output",
            summary="The VAE with 4 planar flows f(z) = z + u·tanh(wᵀz + b) on the posterior sample.",
        ),
        curves=(FigureSeries("vae_flows_loss.png", Series("flow_vae", "loss", "VAE + planar flows")),),
        grids=(GridFigure(file="vae_flow.png", run="flow_vae", source="reconstructions",
                          heading="VAE with normalizing flows", alt="VAE with Flows Reconstructions",
                          section="Generated Reconstructions (AE, VAE, Norm-VAE)"),),
    ),),
)
