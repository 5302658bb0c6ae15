"""``vae``: the convolutional VAE of seed 004 (the report's "2. Variational Autoencoder").

No model code of its own: it is the network of :class:`ConvVAEConfig` (its twins' class ``ConvVAE``,
named by ``twin`` below) built from :class:`VAEConfig`, the report's numbers, and trained with the
report's KL strategies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..configs import bounded
from ..modelspec import ModelSpec
from ..objectives.elbo import ELBO
from ..report_spec import FigureSeries, GridFigure, ReportRole, RunSpec, Series
from .conv_vae import ConvVAEConfig, parts

#: seed 004: Adam 1e-3; "KL Annealing: Gradually increased KL weight from 0 to 1 over the first
#: 10,000 steps"; "Free Bits: Set minimum KL contribution per latent dimension to 0.5"
REPORT_HYPERPARAMETERS: dict[str, Any] = {"lr": 1e-3, "kl_schedule": "linear", "kl_warmup": 10000, "free_bits": 0.5}


@dataclass(frozen=True)
class VAEConfig(ConvVAEConfig):
    """The report's VAE: conv encoder, Linear mu/log-variance, a 128-dimensional Gaussian latent,
    Linear then transposed-convolution decoder; reconstruction + KL.

    Seed 004 gives the latent size (128; it also tried 64 and 256). Choices it leaves open:

    * the layers are :class:`ConvVAEConfig`'s (Conv2d(k=3,
      s=2, p=1) + BatchNorm + LeakyReLU blocks, Linear mu/logvar, mirrored ConvTranspose2d decoder,
      Sigmoid);
    * images are 32x32 RGB (the embedded digits' size, :mod:`core.data`), so three blocks of
      ``hidden_dims`` = (32, 64, 128) take 32 -> 16 -> 8 -> 4, a 128x4x4 feature map (2048
      features) before mu/logvar.
    """

    model: ClassVar[str] = "vae"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "seed": {},
        "tiny": {"image_size": 16, "latent_dim": 8, "hidden_dims": (8, 16)},
    }

    image_size: int = bounded(32, 8)
    latent_dim: int = bounded(128, 1)
    hidden_dims: tuple[int, ...] = field(default=(32, 64, 128), metadata={"range": (1, None, False)})


MODEL = ModelSpec(
    name="vae",
    config_cls=VAEConfig,
    parts_fn=parts,
    description="convolutional VAE, latent 128, KL annealing and free bits (seed 004)",
    class_name="ConvVAE",
    twin=ConvVAEConfig.model,  # the network this model reuses
    objective=ELBO,
    hyperparameters=dict(REPORT_HYPERPARAMETERS),
    batch_size=64,  # seed 004: "varied between 64 and 128"
    # its part in seed 004's report (core/reports/seed_004.py draws the figures these curves go into)
    reports=(ReportRole(
        report="seed_004", order=2,
        run=RunSpec(
            key="vae", model="vae", heading="2. Variational Autoencoder (VAE)",
            steps={"seed": 420, "tiny": 3},
            step_flags={"kl_warmup": 0.5},
            diagram="Input → Encoder → mean, log-variance → Sampling → z → Decoder → Output",
            summary="A probabilistic latent space (128-dimensional Gaussian): reconstruction + KL divergence.",
        ),
        curves=(FigureSeries("vae_flows_loss.png", Series("vae", "loss", "VAE")),
                FigureSeries("vae_flows_loss.png", Series("vae", "kl_weight", "KL weight β"), secondary=True)),
        grids=(GridFigure(file="vae.png", run="vae", source="reconstructions", heading="VAE",
                          alt="VAE Reconstructions", section="Generated Reconstructions (AE, VAE, Norm-VAE)"),),
    ),),
)
