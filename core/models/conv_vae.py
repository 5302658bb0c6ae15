"""``conv_vae``: the convolutional VAE of seed 002 ("Variational Autoencoder (VAE) Image Generator").

Config, parts and registration; the twins are ``torch_impl/models/conv_vae.py`` and
``keras_impl/models/conv_vae.py`` (class :class:`ConvVAE`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..configs import BaseConfig, bounded, conv_out_size
from ..errors import ConfigError
from ..modelspec import ModelSpec, PartSpec, TensorSpec
from ..objectives.elbo import ELBO

@dataclass(frozen=True)
class ConvVAEConfig(BaseConfig):
    """Convolutional VAE of seed 002 ("Variational Autoencoder (VAE) Image Generator").

    Seed defaults: 150x150 RGB input, latent 128, hidden channels 32-64-128-256-512,
    BatchNorm, LeakyReLU, Sigmoid output.

    Choices the seed leaves open (kept identical in both frameworks):

    * every encoder block is Conv2d(k=3, s=2, p=1) -> BatchNorm2d -> LeakyReLU, so 150 ->
      75 -> 38 -> 19 -> 10 -> 5; ``mu``/``logvar`` are Linear layers on the flattened
      (C, H, W) features (flattened in torch's channel-first order in both frameworks);
    * the decoder mirrors it: Linear(latent -> C*H*W), then ConvTranspose2d(k=3, s=2, p=1)
      blocks whose ``output_padding`` (0 or 1) is chosen per block so that each block
      restores exactly the encoder's size at that depth (5 -> 10 -> 19 -> 38 -> 75), then a
      final ConvTranspose2d(hidden[0] -> hidden[0]) + BatchNorm + LeakyReLU back to the input
      size, Conv2d(hidden[0] -> C, k=3, p=1) and Sigmoid;
    * LeakyReLU slope 0.01 and BatchNorm eps 1e-5 / momentum 0.1 are torch's defaults and are
      set explicitly in Keras (whose defaults are 0.3, 1e-3 and 0.99).
    """

    model: ClassVar[str] = "conv_vae"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "seed": {},
        "tiny": {"image_size": 32, "latent_dim": 16, "hidden_dims": (16, 32, 64)},
    }

    image_size: int = bounded(150, 8)
    in_channels: int = bounded(3, 1)
    latent_dim: int = bounded(128, 1)
    hidden_dims: tuple[int, ...] = field(default=(32, 64, 128, 256, 512), metadata={"range": (1, None, False)})
    leaky_slope: float = bounded(0.01, 0.0, 1.0)
    bn_eps: float = bounded(1e-5, 0.0, 1.0, low_open=True)
    bn_momentum: float = bounded(0.1, 0.0, 1.0)  # torch convention: new = (1 - m) * old + m * batch

    kernel_size: ClassVar[int] = 3
    stride: ClassVar[int] = 2
    padding: ClassVar[int] = 1

    def validate(self) -> None:
        if self.image_size < 8:
            raise ConfigError(f"conv_vae: image_size must be >= 8, got {self.image_size}")
        if not self.hidden_dims or any(int(h) <= 0 for h in self.hidden_dims):
            raise ConfigError(f"conv_vae: hidden_dims must be positive, got {self.hidden_dims}")
        if self.latent_dim <= 0 or self.in_channels <= 0:
            raise ConfigError("conv_vae: latent_dim and in_channels must be positive")
        if self.feature_sizes[-1] < 1:
            raise ConfigError(
                f"conv_vae: image_size {self.image_size} is too small for {len(self.hidden_dims)} stride-2 blocks"
            )

    def parameter_count(self) -> int:
        k2, c, lat, flat = self.kernel_size**2, self.in_channels, self.latent_dim, self.flat_features
        widths = (c, *self.hidden_dims)
        encoder = sum(k2 * a * b + 4 * b for a, b in zip(widths, widths[1:]))  # conv (no bias) + BatchNorm
        rev = widths[:0:-1]
        decoder = sum(k2 * a * b + 4 * b for a, b in zip(rev, rev[1:]))
        last = rev[-1]
        final = k2 * last * last + 4 * last + k2 * last * c + c
        return encoder + 2 * (flat * lat + lat) + (lat * flat + flat) + decoder + final

    def activation_count(self) -> int:
        sizes, dims = self.feature_sizes, self.hidden_dims
        encoder = sum(3 * h * s * s for h, s in zip(dims, sizes[1:]))  # conv, BatchNorm, LeakyReLU
        decoder = sum(3 * h * s * s for h, s in zip(dims, sizes))  # the mirror, final block included
        return encoder + 2 * self.latent_dim + self.flat_features + decoder + 2 * self.in_channels * self.image_size**2

    @property
    def feature_sizes(self) -> list[int]:
        """Spatial size at the input of every encoder block, plus the final one."""
        sizes = [self.image_size]
        for _ in self.hidden_dims:
            sizes.append(conv_out_size(sizes[-1], self.kernel_size, self.stride, self.padding))
        return sizes

    @property
    def flat_features(self) -> int:
        return self.hidden_dims[-1] * self.feature_sizes[-1] ** 2

    @property
    def decoder_output_paddings(self) -> list[int]:
        """output_padding of each decoder ConvTranspose2d, the final one included.

        A ConvTranspose2d(k=3, s=2, p=1) maps n -> 2n - 1 + output_padding; the decoder's
        block i must land on the encoder's size one level up.
        """
        sizes = self.feature_sizes
        pads = []
        for small, big in zip(sizes[:0:-1], sizes[-2::-1]):
            pad = big - (2 * small - 1)
            if pad not in (0, 1):  # pragma: no cover - impossible for k=3, s=2, p=1
                raise ConfigError(f"conv_vae: cannot invert size {big} -> {small}")
            pads.append(pad)
        return pads


def parts(cfg: ConvVAEConfig) -> dict[str, PartSpec]:
    image = TensorSpec("image", ("batch", cfg.in_channels, cfg.image_size, cfg.image_size), "image")
    return {
        "encoder": PartSpec(
            "encoder",
            "encode",
            inputs=(image,),
            outputs=(TensorSpec("mu", ("batch", cfg.latent_dim)), TensorSpec("logvar", ("batch", cfg.latent_dim))),
        ),
        "decoder": PartSpec(
            "decoder",
            "decode",
            inputs=(TensorSpec("z", ("batch", cfg.latent_dim)),),
            outputs=(image,),
            value_range=(0.0, 1.0),
        ),
    }


MODEL = ModelSpec(
    name="conv_vae",
    config_cls=ConvVAEConfig,
    parts_fn=parts,
    description="convolutional VAE (seed 002)",
    class_name="ConvVAE",
    objective=ELBO,
    hyperparameters={"lr": 1e-3},
    batch_size=64,
)
