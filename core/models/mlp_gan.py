"""``mlp_gan``: the fully connected GAN of seed 004 ("Generative Models Report", section 4).

Config, parts and registration; the twins are ``torch_impl/models/mlp_gan.py`` and
``keras_impl/models/mlp_gan.py`` (class :class:`MLPGAN`); the injected-mask Dropout they share is
``torch_impl/layers/dropout.py`` / ``keras_impl/layers/dropout.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..configs import BaseConfig, bounded
from ..errors import ConfigError
from ..modelspec import ModelSpec, PartSpec, image_gan_parts
from ..objectives.bce_gan import BCEGAN
from ..report_spec import FigureSeries, GridFigure, ReportRole, RunSpec, Series


@dataclass(frozen=True)
class MLPGANConfig(BaseConfig):
    """The fully connected GAN of seed 004.

    Seed numbers: generator z -> 256 -> 512 -> 1024 -> image with LeakyReLU; discriminator
    image -> 1024 -> 512 -> 256 -> 1 with LeakyReLU and dropout; BCE with real label 0.9 and TTUR
    (discriminator 4e-4, generator 1e-4) are the objective's defaults (:mod:`core.objectives.bce_gan`).

    Choices the seed leaves open (kept identical in both frameworks):

    * latent size 100 (the usual choice for a fully connected GAN; the seed gives none);
    * images 32x32 RGB (the embedded digits are prepared at the config's size), values in [-1, 1]:
      the generator ends in Linear(1024 -> C*H*W) -> Tanh, reshaped to (C, H, W) (channel-first,
      in both frameworks); the trainers map the [0, 1] data onto [-1, 1];
    * LeakyReLU slope 0.2 in both networks and dropout rate 0.3 after every hidden
      discriminator layer (common choices for this architecture);
    * the discriminator flattens the image channel-first (torch's order) and returns one logit
      per image (no Sigmoid: the loss works on logits); no BatchNorm anywhere.

    Widths are fields so the ``tiny`` preset can shrink them.
    """

    model: ClassVar[str] = "mlp_gan"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "seed": {},
        "tiny": {"image_size": 16, "latent_dim": 16, "generator_dims": (32, 64),
                 "discriminator_dims": (64, 32)},
    }

    image_size: int = bounded(32, 1)
    in_channels: int = bounded(3, 1)
    latent_dim: int = bounded(100, 1)
    generator_dims: tuple[int, ...] = field(default=(256, 512, 1024), metadata={"range": (1, None, False)})
    discriminator_dims: tuple[int, ...] = field(default=(1024, 512, 256), metadata={"range": (1, None, False)})
    leaky_slope: float = bounded(0.2, 0.0, 1.0)
    dropout: float = bounded(0.3, 0.0, 1.0)

    def validate(self) -> None:
        if not self.generator_dims or not self.discriminator_dims:
            raise ConfigError("mlp_gan: generator_dims and discriminator_dims need at least one hidden width")
        if self.dropout >= 1.0:
            raise ConfigError(f"mlp_gan: dropout must be below 1 (it scales kept units by 1/(1-p)), got {self.dropout}")

    @property
    def image_values(self) -> int:
        """C*H*W: the generator's last Linear width and the discriminator's input width."""
        return self.in_channels * self.image_size**2

    @property
    def generator_widths(self) -> tuple[int, ...]:
        return (self.latent_dim, *self.generator_dims, self.image_values)

    @property
    def discriminator_widths(self) -> tuple[int, ...]:
        return (self.image_values, *self.discriminator_dims, 1)

    def parameter_count(self) -> int:
        def linears(widths: tuple[int, ...]) -> int:
            return sum(a * b + b for a, b in zip(widths, widths[1:]))

        return linears(self.generator_widths) + linears(self.discriminator_widths)

    def activation_count(self) -> int:
        # generator: Linear + LeakyReLU per hidden width, then Linear + Tanh; discriminator: Linear +
        # LeakyReLU + Dropout per hidden width, then the logit; a training step judges real and fake
        generator = 2 * sum(self.generator_dims) + 2 * self.image_values
        discriminator = 3 * sum(self.discriminator_dims) + 1
        return generator + 2 * discriminator

    def dropout_shapes(self) -> tuple[tuple[int, ...], ...]:
        """One (width,) per discriminator Dropout, in order: ((1024,), (512,), (256,)) at the seed."""
        return tuple((int(h),) for h in self.discriminator_dims)

    def dropout_rate(self) -> float:
        return self.dropout


def parts(cfg: MLPGANConfig) -> dict[str, PartSpec]:
    """``generator`` (z -> image in [-1, 1]) and ``discriminator`` (image -> logit, eval mode: no dropout)."""
    return image_gan_parts(cfg.in_channels, cfg.image_size, cfg.latent_dim)


MODEL = ModelSpec(
    name="mlp_gan",
    config_cls=MLPGANConfig,
    parts_fn=parts,
    description="fully connected GAN with dropout in the discriminator, BCE + TTUR (seed 004)",
    class_name="MLPGAN",
    objective=BCEGAN,
    hyperparameters={"lr_generator": 1e-4, "lr_discriminator": 4e-4, "real_label": 0.9},
    batch_size=64,
    # its part in seed 004's report (core/reports/seed_004.py draws the figures these curves go into)
    reports=(ReportRole(
        report="seed_004", order=4,
        run=RunSpec(
            key="mlp_gan", model="mlp_gan", heading="4. Generative Adversarial Network (GAN)",
            steps={"seed": 1260, "tiny": 3},
            flags={"samples": 64},
            summary="Generator and discriminator, fully connected, trained adversarially (BCE, TTUR).",
        ),
        curves=(FigureSeries("gan_loss.png", Series("mlp_gan", "generator", "G")),
                FigureSeries("gan_loss.png", Series("mlp_gan", "discriminator", "D"))),
        grids=(GridFigure(file="gan.png", run="mlp_gan", source="samples", heading="", alt="Generated Samples",
                          section="Generated Samples (GAN)"),),
    ),),
)
