"""``dcgan``: the TensorFlow DCGAN tutorial's networks (seed 003, A.G.E.).

Config, parts and registration; the twins are ``torch_impl/models/dcgan.py`` and
``keras_impl/models/dcgan.py`` (class :class:`DCGAN`); they reuse the repo's layers plus
``BatchNorm1d`` (``*_impl/layers/batchnorm.py``) and the injected-mask Dropout
(``*_impl/layers/dropout.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..configs import BaseConfig, bounded, conv_out_size
from ..errors import ConfigError
from ..modelspec import ModelSpec, PartSpec, image_gan_parts
from ..objectives.bce_gan import BCEGAN


@dataclass(frozen=True)
class DCGANConfig(BaseConfig):
    """``make_generator_model`` / ``make_discriminator_model`` of TensorFlow's DCGAN tutorial
    (tensorflow/docs, site/en/tutorials/generative/dcgan.ipynb), trained on 28x28 greyscale digits.

    The tutorial's defaults (the ``seed`` preset):

    * noise 100; images 28x28x1 in [-1, 1] (the tutorial maps MNIST by (x - 127.5) / 127.5; here
      the trainers map the [0, 1] data onto the generator's Tanh range); the embedded digits are
      loaded greyscale (``in_channels`` 1, :func:`core.data.open_dataset`);
    * G: Dense(7*7*256, no bias) -> BatchNorm -> LeakyReLU -> reshape (256, 7, 7) ->
      ConvT(128, 5x5, stride 1, same, no bias) -> BN -> LeakyReLU -> ConvT(64, 5x5, stride 2,
      same, no bias) -> BN -> LeakyReLU -> ConvT(1, 5x5, stride 2, same, no bias) -> Tanh;
    * D: Conv(64, 5x5, stride 2, same) -> LeakyReLU -> Dropout 0.3 -> Conv(128, 5x5, stride 2,
      same) -> LeakyReLU -> Dropout 0.3 -> flatten -> Dense(1): one logit per image;
    * the objective is :class:`core.objectives.bce_gan.BCEGAN` on logits (the tutorial's
      ``BinaryCrossentropy(from_logits=True)``, non-saturating generator loss) with this model's
      defaults: both Adam learning rates 1e-4, beta1 0.9 (Keras' Adam default; the tutorial sets
      none), real label 1.0 (no label smoothing); batch 256; 16 fixed examples (the trainers'
      ``--samples`` default).

    Parity traps, matched explicitly in both twins:

    * **LeakyReLU slope 0.3**: Keras' ``LeakyReLU()`` default (the tutorial's) is 0.3; torch's
      ``nn.LeakyReLU()`` default is 0.01. ``leaky_slope`` = 0.3 is passed to both.
    * **BatchNorm**: the tutorial's is Keras' default ``BatchNormalization()``, momentum 0.99 and
      epsilon 1e-3. In torch's convention (new = (1 - m) * old + m * batch) that is
      ``bn_momentum`` 0.01 and ``bn_eps`` 1e-3, set in both twins (torch's defaults would be 0.1
      and 1e-5). The first BatchNorm normalises the 12544 Dense features *before* the reshape (a
      ``BatchNorm1d``, one statistic per feature, as the tutorial does), not 256 channels after
      it. The running variance follows torch (unbiased batch variance), in both twins.
    * **"same" padding, 5x5 kernels**: stride 1 is torch ``padding=2`` exactly (TF pads 2 + 2).
      A stride-2 ``Conv2d`` uses ``padding=2``: 28 -> 14 -> 7 as TF's "same" (ceil(n / 2)), but
      TF pads asymmetrically (for 28: 1 before, 2 after; total 3) where torch pads 2 and 2, so
      away from the first output row and column TF's output equals this one on the input shifted
      by one pixel up-left (its sampling grid sits on odd pixels, this one on even pixels; checked
      in ``tests/models/test_dcgan.py``): the same sizes and parameter shapes, a
      one-pixel alignment difference that only matters when loading weights trained by the
      tutorial itself. A stride-2 ``ConvTranspose2d`` uses ``padding=2, output_padding=1``: n ->
      (n - 1) * 2 - 4 + 5 + 1 = 2n (7 -> 14 -> 28), cropping the full transposed output
      (2n + 3 wide) to ``[2, 2n + 2)`` where TF's "same" crops ``[1, 2n + 1)`` (the same one-pixel
      offset, the adjoint of the conv above). Symmetric padding keeps both twins and the ONNX
      export on torch's convention.
    * **Layout**: the reshape after the Dense is channel-first (256, 7, 7) and the discriminator
      flattens channel-first (torch's order) in both twins (the tutorial reshapes to (7, 7, 256)
      and flattens NHWC: a fixed permutation of the same Dense weights).
    * **Dropout masks** are drawn in core (:func:`core.noise.dropout_masks`) per sample in the
      canonical channel-first layout, :meth:`dropout_shapes` ((64, 14, 14), (128, 7, 7)); the
      Keras twin transposes each (B, C, H, W) mask to its NHWC activations.

    Sizes: ``generator_dims`` (g0, g1, ..., gn) are the channels of the reshaped projection and of
    each ConvT block; the first ConvT has stride 1, every later one (the last, to
    ``in_channels``, included) stride 2, so the base map is ``image_size / 2**n`` square (the
    tutorial: 28 / 4 = 7). The discriminator halves the size per ``discriminator_dims`` entry
    (ceil(n / 2)). Presets: ``seed`` (the tutorial), ``tiny`` (16x16 greyscale, narrow: for
    tests), ``color`` (64x64 RGB for photo folders: the tutorial's widths with a 16x16 base,
    64 = 16 * 4; the discriminator reaches 16x16x128 before its Dense).
    """

    model: ClassVar[str] = "dcgan"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "seed": {},
        "tiny": {"image_size": 16, "latent_dim": 16, "generator_dims": (32, 16, 8), "discriminator_dims": (8, 16)},
        "color": {"image_size": 64, "in_channels": 3},
    }

    image_size: int = bounded(28, 2)
    in_channels: int = bounded(1, 1)
    latent_dim: int = bounded(100, 1)
    generator_dims: tuple[int, ...] = field(default=(256, 128, 64), metadata={"range": (1, None, False)})
    discriminator_dims: tuple[int, ...] = field(default=(64, 128), metadata={"range": (1, None, False)})
    leaky_slope: float = bounded(0.3, 0.0, 1.0)
    dropout: float = bounded(0.3, 0.0, 1.0)
    bn_eps: float = bounded(1e-3, 0.0, 1.0, low_open=True)
    bn_momentum: float = bounded(0.01, 0.0, 1.0)  # torch convention: new = (1 - m) * old + m * batch

    kernel_size: ClassVar[int] = 5
    padding: ClassVar[int] = 2  # "same" for k=5 (see the docstring)
    output_padding: ClassVar[int] = 1  # stride-2 ConvT: n -> 2n

    def validate(self) -> None:
        if len(self.generator_dims) < 2 or not self.discriminator_dims:
            raise ConfigError("dcgan: generator_dims needs at least two widths (the projection and one ConvT "
                              "block) and discriminator_dims at least one")
        if self.dropout >= 1.0:
            raise ConfigError(f"dcgan: dropout must be below 1 (it scales kept units by 1/(1-p)), got {self.dropout}")
        scale = self.upsampling
        if self.image_size % scale:
            raise ConfigError(f"dcgan: image_size {self.image_size} must be a multiple of {scale} "
                              f"(2**{len(self.generator_dims) - 1}, one doubling per stride-2 ConvT)")

    @property
    def upsampling(self) -> int:
        """image_size / base_size: 2 per stride-2 ConvT (all but the first)."""
        return 2 ** (len(self.generator_dims) - 1)

    @property
    def base_size(self) -> int:
        """Side of the generator's reshaped projection: 7 at the seed, 16 in ``color``."""
        return self.image_size // self.upsampling

    @property
    def projection_features(self) -> int:
        """g0 * base**2: the Dense width and the BatchNorm1d's features (12544 at the seed)."""
        return self.generator_dims[0] * self.base_size**2

    @property
    def generator_sizes(self) -> list[int]:
        """Side after each ConvT: (7, 14, 28) at the seed."""
        sizes = [self.base_size]
        for _ in self.generator_dims[2:]:
            sizes.append(sizes[-1] * 2)
        sizes.append(sizes[-1] * 2)
        return sizes

    @property
    def discriminator_sizes(self) -> list[int]:
        """Side after each discriminator conv: (14, 7) at the seed."""
        sizes, n = [], self.image_size
        for _ in self.discriminator_dims:
            n = conv_out_size(n, self.kernel_size, 2, self.padding)
            sizes.append(n)
        return sizes

    @property
    def flat_features(self) -> int:
        """The discriminator's Dense input: 128 * 7 * 7 = 6272 at the seed."""
        return self.discriminator_dims[-1] * self.discriminator_sizes[-1] ** 2

    def parameter_count(self) -> int:
        k2, g, c = self.kernel_size**2, self.generator_dims, self.in_channels
        # Dense (no bias) + BatchNorm1d (weight, bias, running mean and variance)
        generator = self.latent_dim * self.projection_features + 4 * self.projection_features
        generator += sum(k2 * a * b + 4 * b for a, b in zip(g, g[1:]))  # ConvT (no bias) + BatchNorm2d
        generator += k2 * g[-1] * c  # the last ConvT, no bias, no BatchNorm
        widths = (c, *self.discriminator_dims)
        discriminator = sum(k2 * a * b + b for a, b in zip(widths, widths[1:])) + self.flat_features + 1
        return generator + discriminator

    def activation_count(self) -> int:
        # generator: Dense, BN, LeakyReLU; ConvT, BN, LeakyReLU per block; the last ConvT and Tanh
        f = self.projection_features
        sizes = self.generator_sizes
        blocks = sum(3 * ch * s * s for ch, s in zip(self.generator_dims[1:], sizes))
        generator = 3 * f + blocks + 2 * self.in_channels * self.image_size**2
        # discriminator: conv, LeakyReLU, Dropout per block, then the logit; a training step
        # judges real and generated images
        discriminator = sum(3 * ch * s * s for ch, s in zip(self.discriminator_dims, self.discriminator_sizes)) + 1
        return generator + 2 * discriminator

    def dropout_shapes(self) -> tuple[tuple[int, ...], ...]:
        """One canonical (C, H, W) per discriminator Dropout: ((64, 14, 14), (128, 7, 7)) at the seed."""
        return tuple((int(ch), s, s) for ch, s in zip(self.discriminator_dims, self.discriminator_sizes))

    def dropout_rate(self) -> float:
        return self.dropout


def parts(cfg: DCGANConfig) -> dict[str, PartSpec]:
    """``generator`` (z -> image in [-1, 1], BatchNorm on running statistics) and
    ``discriminator`` (image -> logit, eval mode: no dropout)."""
    return image_gan_parts(cfg.in_channels, cfg.image_size, cfg.latent_dim)


MODEL = ModelSpec(
    name="dcgan",
    config_cls=DCGANConfig,
    parts_fn=parts,
    description="the TensorFlow DCGAN tutorial's generator and discriminator, 28x28 greyscale, BCE (seed 003)",
    class_name="DCGAN",
    objective=BCEGAN,
    hyperparameters={"lr_generator": 1e-4, "lr_discriminator": 1e-4, "beta1": 0.9, "real_label": 1.0},
    batch_size=256,
)
