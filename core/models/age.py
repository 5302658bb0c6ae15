"""``age``: Adversarial Generator-Encoder Networks (Ulyanov, Vedaldi & Lempitsky, AAAI 2018).

Config, parts and registration; the twins are ``torch_impl/models/age.py`` and
``keras_impl/models/age.py`` (class :class:`AGE`); the game they train with is
:class:`core.objectives.age_game.AGEGame` (its updates: ``*_impl/objectives/age_game.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..configs import BaseConfig, bounded
from ..errors import ConfigError
from ..init import Init, normal
from ..modelspec import ModelSpec, PartSpec, TensorSpec
from ..objectives.age_game import AGEGame
from ..priors import SPHERE_EPS


@dataclass(frozen=True)
class AGEConfig(BaseConfig):
    """A DCGAN-style encoder and generator (Radford et al. 2015) on the unit sphere, the networks
    of the reference code's 32-pixel recipe (DmitryUlyanov/AGE, ``models/dcgan32px.py``, run on
    CIFAR-10 with ``--nz 128``), in DCGAN's symmetric form.

    The ``seed`` preset (32x32 RGB in [-1, 1], latent 128):

    * encoder e: image (B, 3, 32, 32) -> Conv(64, 4x4, stride 2, pad 1, no bias) -> LeakyReLU 0.2
      (no BatchNorm on the first block, as in DCGAN) -> [Conv(w, 4x4, s2, p1, no bias) ->
      BatchNorm -> LeakyReLU 0.2] for w = 128, 256 (32 -> 16 -> 8 -> 4) -> ``head``
      Conv(latent, 4x4, stride 1, no pad, with bias) -> (B, latent, 1, 1) -> flatten ->
      z / sqrt(Σ z^2 + 1e-12): a unit vector (:data:`core.priors.SPHERE_EPS`, the same
      projection the prior's noise gets);
    * generator g: z (B, latent) -> (B, latent, 1, 1) -> ConvT(256, 4x4, stride 1, no pad, no bias)
      -> BatchNorm -> ReLU (4x4) -> [ConvT(w, 4x4, s2, p1, no bias) -> BatchNorm -> ReLU] for
      w = 128, 64 (8, 16) -> ConvT(3, 4x4, s2, p1, no bias) -> Tanh: (B, 3, 32, 32) in [-1, 1].

    Where the reference differs (its 32-pixel nets, ``--ndf 64 --ngf 64``): its encoder has the
    same widths 64-128-256 but ends with a 4x4 stride-2 conv to a 2x2 map and a 2x2 average pool
    (here one 4x4 valid conv, DCGAN's discriminator head); its generator is 512-256-128 wide, adds
    a fourth 128-wide ConvT block at 32x32 and ends with a 1x1 conv to RGB (here the issue's
    256-128-64 and DCGAN's ConvT straight to RGB, the encoder's mirror image).

    Initial weights (:meth:`init_rule`): every conv and transposed-conv weight ~ N(0, 0.02^2)
    (the reference's ``weights_init``, from DCGAN §4), set by the torch twin's constructor and
    declared to :mod:`core.init` by both twins; the head's bias keeps torch's default. BatchNorm
    starts at the identity (weight 1, bias 0; the reference draws its weight from N(1, 0.02^2),
    which the toolkit's BatchNorm convention does not do). BatchNorm uses torch's eps 1e-5 and
    momentum 0.1 (the reference's, torch defaults), set explicitly in the Keras twin.

    Sizes: the encoder halves the image once per ``encoder_dims`` entry and the generator
    doubles its 4x4 map once per ``generator_dims`` entry, so ``image_size`` must be
    4 * 2**len(encoder_dims) = 4 * 2**len(generator_dims) (32 at the seed, 16 in ``tiny``).
    The data are RGB (``in_channels`` 3): the embedded digits load as RGB at ``image_size``.
    """

    model: ClassVar[str] = "age"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "seed": {},
        "tiny": {"image_size": 16, "latent_dim": 8, "encoder_dims": (8, 16), "generator_dims": (16, 8)},
    }

    image_size: int = bounded(32, 8)
    in_channels: int = bounded(3, 1)
    latent_dim: int = bounded(128, 2)
    encoder_dims: tuple[int, ...] = field(default=(64, 128, 256), metadata={"range": (1, None, False)})
    generator_dims: tuple[int, ...] = field(default=(256, 128, 64), metadata={"range": (1, None, False)})
    leaky_slope: float = bounded(0.2, 0.0, 1.0)
    bn_eps: float = bounded(1e-5, 0.0, 1.0, low_open=True)
    bn_momentum: float = bounded(0.1, 0.0, 1.0)  # torch convention: new = (1 - m) * old + m * batch

    kernel_size: ClassVar[int] = 4
    stride: ClassVar[int] = 2
    padding: ClassVar[int] = 1
    #: side of the encoder's last map and of the generator's first (the 4x4 head / projection)
    base_size: ClassVar[int] = 4
    #: std of the conv and transposed-conv weights' initial N(0, std^2) (DCGAN, the reference)
    weight_std: ClassVar[float] = 0.02
    #: eps of the encoder's unit-sphere projection (the prior's too)
    sphere_eps: ClassVar[float] = SPHERE_EPS

    def validate(self) -> None:
        if not self.encoder_dims or not self.generator_dims:
            raise ConfigError("age: encoder_dims and generator_dims need at least one width each")
        for name, dims in (("encoder_dims", self.encoder_dims), ("generator_dims", self.generator_dims)):
            want = self.base_size * 2 ** len(dims)
            if self.image_size != want:
                raise ConfigError(f"age: image_size {self.image_size} does not fit {name} {list(dims)}: each width "
                                  f"halves (encoder) or doubles (generator) a {self.base_size}x{self.base_size} map, "
                                  f"so image_size must be {self.base_size} * 2**{len(dims)} = {want}")

    @property
    def encoder_sizes(self) -> list[int]:
        """Side after each encoder block: (16, 8, 4) at the seed."""
        return [self.image_size // 2 ** (i + 1) for i in range(len(self.encoder_dims))]

    @property
    def generator_sizes(self) -> list[int]:
        """Side after each generator block (before the last ConvT to the image): (4, 8, 16) at the seed."""
        return [self.base_size * 2**i for i in range(len(self.generator_dims))]

    def init_rule(self) -> Init:
        """The initial rule of every conv and transposed-conv weight: N(0, 0.02^2)."""
        return normal(std=self.weight_std)

    def parameter_count(self) -> int:
        k2, c, m = self.kernel_size**2, self.in_channels, self.latent_dim
        e, g = self.encoder_dims, self.generator_dims
        # encoder: convs without bias; BatchNorm (weight, bias, running mean and variance) after all but the first
        encoder = sum(k2 * a * b for a, b in zip((c, *e), e)) + sum(4 * b for b in e[1:])
        encoder += k2 * e[-1] * m + m  # the head, with bias
        # generator: ConvTs without bias, each but the last followed by BatchNorm
        generator = sum(k2 * a * b + 4 * b for a, b in zip((m, *g), g)) + k2 * g[-1] * c
        return encoder + generator

    def activation_count(self) -> int:
        # encoder: conv + LeakyReLU (first block), conv + BN + LeakyReLU (others), the head and its projection
        sizes = self.encoder_sizes
        encoder = 2 * self.encoder_dims[0] * sizes[0] ** 2
        encoder += sum(3 * w * s * s for w, s in zip(self.encoder_dims[1:], sizes[1:])) + 2 * self.latent_dim
        # generator: ConvT + BN + ReLU per block, the last ConvT and Tanh
        generator = sum(3 * w * s * s for w, s in zip(self.generator_dims, self.generator_sizes))
        generator += 2 * self.in_channels * self.image_size**2
        # a training update runs each network twice (the encoder step: e(x), g(e(x)), g(z), e(g(z)))
        return 2 * (encoder + generator)


def parts(cfg: AGEConfig) -> dict[str, PartSpec]:
    """``encoder`` (image in [-1, 1] -> ``z``, one unit vector per image: a deterministic encoder)
    and ``generator`` (z on the unit sphere -> image in [-1, 1]); eval mode (BatchNorm on running
    statistics)."""
    image = TensorSpec("image", ("batch", cfg.in_channels, cfg.image_size, cfg.image_size), "image")
    z = TensorSpec("z", ("batch", cfg.latent_dim))
    return {
        "encoder": PartSpec("encoder", "encode", inputs=(image,), outputs=(z,)),
        "generator": PartSpec("generator", "generate", inputs=(z,), outputs=(image,), value_range=(-1.0, 1.0)),
    }


MODEL = ModelSpec(
    name="age",
    config_cls=AGEConfig,
    parts_fn=parts,
    description="Adversarial Generator-Encoder Networks: DCGAN encoder and generator on the unit sphere, "
                "32x32 RGB (Ulyanov et al. 2018)",
    class_name="AGE",
    objective=AGEGame,
    hyperparameters={},  # the objective's defaults are this model's recipe (reference CIFAR-10 command)
    batch_size=64,
    prior="sphere",
)
