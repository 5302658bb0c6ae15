"""``conv_ae``: the convolutional autoencoder of seed 004 (the report's "1. Autoencoder").

Config, parts and registration; the twins are ``torch_impl/models/conv_ae.py`` and
``keras_impl/models/conv_ae.py`` (class :class:`ConvAE`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..configs import BaseConfig, bounded
from ..errors import ConfigError
from ..modelspec import ModelSpec, PartSpec, TensorSpec
from ..objectives.reconstruction import Reconstruction
from ..report_spec import FigureSeries, GridFigure, ReportRole, RunSpec, Series


@dataclass(frozen=True)
class ConvAEConfig(BaseConfig):
    """Convolutional autoencoder of seed 004:

    ``Conv2d(3->16) -> ReLU -> Conv2d(16->32) -> ReLU -> ConvTranspose2d(32->16) -> ReLU ->
    ConvTranspose2d(16->3) -> Tanh``, trained on the mean squared error.

    Choices the seed leaves open (kept identical in both frameworks):

    * every convolution is kernel 4, stride 2, padding 1 (the usual DCGAN-style choice): each
      Conv2d halves the side exactly and each ConvTranspose2d doubles it exactly
      ((n-1)*2 - 2 + 4 = 2n), with no output_padding, so 32x32x3 -> 16x16x16 -> 8x8x32 code ->
      16x16x16 -> 32x32x3; all convolutions carry a bias (there is no BatchNorm);
    * ``hidden_dims`` = (16, 32) are the seed's widths; the code is the last encoder feature map,
      (hidden[-1], image_size / 2^n, image_size / 2^n), a spatial latent (not a vector);
    * images are 32x32 RGB, the size of the embedded digits (:mod:`core.data`);
    * the final Tanh makes the output range (-1, 1): the trainer maps the [0, 1] data onto it
      (x -> 2x - 1), so the encoder also sees images in [-1, 1].
    """

    model: ClassVar[str] = "conv_ae"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "seed": {},
        "tiny": {"image_size": 16, "hidden_dims": (4, 8)},
    }

    image_size: int = bounded(32, 2)
    in_channels: int = bounded(3, 1)
    hidden_dims: tuple[int, ...] = field(default=(16, 32), metadata={"range": (1, None, False)})

    kernel_size: ClassVar[int] = 4
    stride: ClassVar[int] = 2
    padding: ClassVar[int] = 1

    def validate(self) -> None:
        if not self.hidden_dims or any(int(h) <= 0 for h in self.hidden_dims):
            raise ConfigError(f"conv_ae: hidden_dims must be positive, got {self.hidden_dims}")
        if self.in_channels <= 0:
            raise ConfigError("conv_ae: in_channels must be positive")
        scale = 2 ** len(self.hidden_dims)
        if self.image_size % scale:
            raise ConfigError(f"conv_ae: image_size {self.image_size} must be divisible by 2^{len(self.hidden_dims)} "
                              f"(one stride-2 convolution per hidden block)")

    @property
    def code_size(self) -> int:
        """Spatial side of the code (the last encoder feature map)."""
        return self.image_size // 2 ** len(self.hidden_dims)

    @property
    def code_shape(self) -> tuple[int, int, int]:
        """The code's per-sample shape, channel-first: (hidden[-1], side, side)."""
        return (self.hidden_dims[-1], self.code_size, self.code_size)

    def parameter_count(self) -> int:
        k2 = self.kernel_size**2
        widths = (self.in_channels, *self.hidden_dims)
        encoder = sum(k2 * a * b + b for a, b in zip(widths, widths[1:]))  # Conv2d (O, I, k, k) + bias
        rev = widths[::-1]
        decoder = sum(k2 * a * b + b for a, b in zip(rev, rev[1:]))  # ConvTranspose2d (I, O, k, k) + bias
        return encoder + decoder

    def activation_count(self) -> int:
        side, encoder = self.image_size, 0
        for h in self.hidden_dims:  # convolution + ReLU
            side //= 2
            encoder += 2 * h * side * side
        decoder = 0
        for h in (*self.hidden_dims[-2::-1], self.in_channels):  # transposed convolution + ReLU / Tanh
            side *= 2
            decoder += 2 * h * side * side
        return encoder + decoder


def parts(cfg: ConvAEConfig) -> dict[str, PartSpec]:
    image = TensorSpec("image", ("batch", cfg.in_channels, cfg.image_size, cfg.image_size), "image")
    # a spatial code: (batch, C, H, W) in every framework (the Keras twin transposes internally)
    z = TensorSpec("z", ("batch", *cfg.code_shape))
    return {
        "encoder": PartSpec("encoder", "encode", inputs=(image,), outputs=(z,)),
        "decoder": PartSpec("decoder", "decode", inputs=(z,), outputs=(image,), value_range=(-1.0, 1.0)),
    }


MODEL = ModelSpec(
    name="conv_ae",
    config_cls=ConvAEConfig,
    parts_fn=parts,
    description="convolutional autoencoder: Conv 3-16-32, ConvT 32-16-3, Tanh; MSE (seed 004)",
    class_name="ConvAE",
    objective=Reconstruction,
    hyperparameters={"lr": 1e-3},
    batch_size=64,
    prior="none",
    # its part in seed 004's report (core/reports/seed_004.py draws the figures these curves go into)
    reports=(ReportRole(
        report="seed_004", order=1,
        run=RunSpec(
            key="conv_ae", model="conv_ae", heading="1. Autoencoder",
            steps={"seed": 560, "tiny": 3},
            diagram=("Input Image → Conv2d(3→16) → ReLU → Conv2d(16→32) → ReLU →\n"
                     "             ConvTranspose2d(32→16) → ReLU → ConvTranspose2d(16→3) → Tanh → Output Image"),
            summary="The baseline: a non-variational autoencoder trained on the mean squared error.",
        ),
        curves=(FigureSeries("ae_loss.png", Series("conv_ae", "loss", "AE MSE")),),
        grids=(GridFigure(file="ae.png", run="conv_ae", source="reconstructions", heading="Autoencoder",
                          alt="AE Reconstructions", section="Generated Reconstructions (AE, VAE, Norm-VAE)"),),
    ),),
)
