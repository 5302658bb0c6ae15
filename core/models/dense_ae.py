"""``dense_ae``: the dense autoencoder of seed 003 (A.G.E., "Class: Autoencoder").

Config, parts and registration; the twins are ``torch_impl/models/dense_ae.py`` and
``keras_impl/models/dense_ae.py`` (class :class:`DenseAE`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..configs import BaseConfig, bounded
from ..errors import ConfigError
from ..modelspec import ModelSpec, PartSpec, TensorSpec
from ..objectives.reconstruction import Reconstruction


@dataclass(frozen=True)
class DenseAEConfig(BaseConfig):
    """Dense autoencoder of seed 003: "Encoder: Flattens input and applies a dense layer with ReLU
    activation. Decoder: Applies a dense layer with a sigmoid activation and reshapes to reconstruct
    the input shape. Training: Minimizes the mean squared error".

    Choices the seed leaves open (kept identical in both frameworks):

    * ``latent_dim`` = 64: the seed gives no width; 64 is the smallest of the latent sizes seed 004
      tried (64, 128, 256) and a 48x compression of a 32x32x3 image;
    * images are 32x32 RGB, the size of the embedded digits (:mod:`core.data`) the report trains on;
    * the flatten is channel-first (torch's (C, H, W) order) in both frameworks, so the Linear
      weights are torch's, transposed and nothing else; the encoder is ``Linear -> ReLU``, the
      decoder ``Linear -> Sigmoid`` and a reshape back to (C, H, W).
    """

    model: ClassVar[str] = "dense_ae"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "seed": {},
        "tiny": {"image_size": 16, "latent_dim": 16},
    }

    image_size: int = bounded(32, 1)
    in_channels: int = bounded(3, 1)
    latent_dim: int = bounded(64, 1)

    def validate(self) -> None:
        if min(self.image_size, self.in_channels, self.latent_dim) <= 0:
            raise ConfigError("dense_ae: image_size, in_channels and latent_dim must be positive")

    @property
    def flat_features(self) -> int:
        return self.in_channels * self.image_size**2

    def parameter_count(self) -> int:
        d, lat = self.flat_features, self.latent_dim
        return (d * lat + lat) + (lat * d + d)  # encoder Linear, decoder Linear

    def activation_count(self) -> int:
        return 2 * self.latent_dim + 2 * self.flat_features  # Linear + ReLU, Linear + Sigmoid


def parts(cfg: DenseAEConfig) -> dict[str, PartSpec]:
    image = TensorSpec("image", ("batch", cfg.in_channels, cfg.image_size, cfg.image_size), "image")
    z = TensorSpec("z", ("batch", cfg.latent_dim))
    return {
        "encoder": PartSpec("encoder", "encode", inputs=(image,), outputs=(z,)),
        "decoder": PartSpec("decoder", "decode", inputs=(z,), outputs=(image,), value_range=(0.0, 1.0)),
    }


MODEL = ModelSpec(
    name="dense_ae",
    config_cls=DenseAEConfig,
    parts_fn=parts,
    description="dense autoencoder: flatten, Linear+ReLU, Linear+Sigmoid, reshape; MSE (seed 003)",
    class_name="DenseAE",
    objective=Reconstruction,
    hyperparameters={"lr": 1e-3},
    batch_size=64,
    prior="none",
)
