"""``video_gan``: a GAN of 3D convolutions that generates short clips (seed 003, A.G.E.).

Config, parts and registration; the twins are ``torch_impl/models/video_gan.py`` and
``keras_impl/models/video_gan.py`` (class :class:`VideoGAN`). Trained on clips
(:mod:`core.video_data`: a folder of GIF/MP4 files or frame folders; the embedded moving digits
by default), with the BCE objective (one-sided label smoothing) or WGAN-GP (``--objective``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..configs import BaseConfig, bounded
from ..errors import ConfigError
from ..modelspec import ModelSpec, ObjectiveChoice, PartSpec, TensorSpec, gan_parts
from ..objectives.bce_gan import BCEGAN
from ..objectives.wgan_gp import WGANGP

ARCHITECTURES = ("single", "two_stream")


@dataclass(frozen=True)
class VideoGANConfig(BaseConfig):
    """A video GAN in the VGAN / MoCoGAN shape family (Vondrick et al. 2016; Tulyakov et al. 2018).

    Generator, ``architecture="single"``: z (B, latent) is read as a (latent, 1, 1, 1) volume and
    ``ConvTranspose3d(latent, g0, kernel (base_frames, base_size, base_size))`` makes the
    g0 x 2 x 4 x 4 base (512 x 2 x 4 x 4 at the seed); then one stride-2 block per further width,
    ``ConvTranspose3d(k 4, s 2, p 1)`` + BatchNorm3d + ReLU, and a last ConvTranspose3d to
    ``in_channels`` + Tanh: 2 x 4 x 4 -> 4 x 8 x 8 -> 8 x 16 x 16 -> 16 x 32 x 32 -> 16 x 64 x 64.
    Space doubles in every upsampling layer; time doubles in the first ``time_doublings`` of them
    (log2(num_frames / base_frames): 3 at the seed) and is kept by the others (temporal kernel 3,
    stride 1, padding 1). The output is (B, T, C, H, W), the toolkit's video layout.

    ``architecture="two_stream"`` (Vondrick, Pirsiavash, Torralba 2016, "Generating Videos with
    Scene Dynamics", section 3.1): the 3D stream above ends in two heads, a foreground f (Tanh,
    C channels) and a mask m (Sigmoid, 1 channel), and a 2D stream from the same z (ConvTranspose2d
    of the same widths, BatchNorm2d + ReLU, Tanh) draws one static background b; the video is
    m * f + (1 - m) * b, b repeated over time. The generator's loss adds ``mask_l1`` times the mean
    of m: the paper's sparsity prior lambda * ||m(z)||_1 on the mask with its lambda = 0.1, taken as
    a mean over the mask's elements (not a sum) so the weight does not grow with the clip size. It
    keeps the foreground from painting the whole frame.

    Discriminator: one ``Conv3d(k 4, s 2, p 1)`` + LeakyReLU(0.2) per ``discriminator_dims`` entry
    (time halved in the first ``time_doublings`` layers, as the generator doubles it), then a
    Conv3d whose kernel covers what is left (2 x 4 x 4 at the seed) to one logit. No BatchNorm in
    the discriminator: WGAN-GP's penalty is per sample, and batch statistics would couple the
    samples (Gulrajani et al. 2017, section 4); the same network serves the BCE objective.

    BatchNorm in the generator uses torch's defaults (eps 1e-5, momentum 0.1), set in both twins.
    Presets: ``seed`` (16 frames of 64 x 64 greyscale: the moving digits), ``color`` (the same in
    RGB, for folders of real clips), ``small`` (8 frames of 32 x 32 from a 1 x 4 x 4 base, half the
    widths: a CPU-sized run), ``tiny`` (4 frames of 16 x 16, narrow: for tests).
    """

    model: ClassVar[str] = "video_gan"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "seed": {},
        "color": {"in_channels": 3},
        "small": {"image_size": 32, "num_frames": 8, "latent_dim": 64, "base_frames": 1,
                  "generator_dims": (256, 128, 64), "discriminator_dims": (64, 128, 256)},
        "tiny": {"image_size": 16, "num_frames": 4, "latent_dim": 8, "generator_dims": (16, 8),
                 "discriminator_dims": (8, 16)},
    }

    image_size: int = bounded(64, 2)
    num_frames: int = bounded(16, 1, 1024)
    in_channels: int = bounded(1, 1)
    latent_dim: int = bounded(100, 1)
    generator_dims: tuple[int, ...] = field(default=(512, 256, 128, 64), metadata={"range": (1, None, False)})
    discriminator_dims: tuple[int, ...] = field(default=(64, 128, 256, 512), metadata={"range": (1, None, False)})
    base_frames: int = bounded(2, 1, 1024)
    architecture: str = field(default="single", metadata={
        "choices": ARCHITECTURES, "help": "single 3D stream, or two_stream (Vondrick et al. 2016: "
                                          "3D foreground with a mask over a 2D static background)"})
    mask_l1: float = bounded(0.1, 0.0, 1e3)
    leaky_slope: float = bounded(0.2, 0.0, 1.0)
    bn_eps: float = bounded(1e-5, 0.0, 1.0, low_open=True)
    bn_momentum: float = bounded(0.1, 0.0, 1.0)

    kernel: ClassVar[int] = 4  # spatial (and doubling/halving temporal) kernel, stride 2, padding 1
    steady_kernel: ClassVar[int] = 3  # temporal kernel of a layer that keeps the frame count (stride 1, padding 1)

    def validate(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(f"video_gan: unknown architecture {self.architecture!r}; choose one of "
                              f"{list(ARCHITECTURES)}")
        if not self.generator_dims or not self.discriminator_dims:
            raise ConfigError("video_gan: generator_dims and discriminator_dims need at least one width each")
        ratio, rest = divmod(self.num_frames, self.base_frames)
        if rest or ratio & (ratio - 1):
            raise ConfigError(f"video_gan: num_frames {self.num_frames} must be base_frames {self.base_frames} "
                              f"times a power of two")
        if self.time_doublings > len(self.generator_dims):
            raise ConfigError(f"video_gan: {self.num_frames} frames from {self.base_frames} need "
                              f"{self.time_doublings} doublings; generator_dims gives {len(self.generator_dims)} "
                              f"upsampling layers")
        if self.time_doublings > len(self.discriminator_dims):
            raise ConfigError(f"video_gan: the discriminator halves time once per layer; "
                              f"{len(self.discriminator_dims)} layers cannot take {self.num_frames} frames back "
                              f"to {self.base_frames}")
        up = 2 ** len(self.generator_dims)
        if self.image_size % up or self.image_size < up:
            raise ConfigError(f"video_gan: image_size {self.image_size} must be a multiple of {up} "
                              f"(2**{len(self.generator_dims)}: one doubling per upsampling layer)")
        down = 2 ** len(self.discriminator_dims)
        if self.image_size % down:
            raise ConfigError(f"video_gan: image_size {self.image_size} must be a multiple of {down} "
                              f"(2**{len(self.discriminator_dims)}: the discriminator halves it per layer)")

    # -- sizes ------------------------------------------------------------------------------
    @property
    def time_doublings(self) -> int:
        """log2(num_frames / base_frames): the layers that double (generator) or halve (discriminator) time."""
        return int(round(math.log2(self.num_frames // self.base_frames)))

    @property
    def base_size(self) -> int:
        """Side of the generator's base volume: image_size / 2**len(generator_dims) (4 at the seed)."""
        return self.image_size // 2 ** len(self.generator_dims)

    @property
    def two_stream(self) -> bool:
        return self.architecture == "two_stream"

    def temporal(self, layer: int) -> tuple[int, int]:
        """(temporal kernel, temporal stride) of upsampling/downsampling layer ``layer``:
        (4, 2) while time doubles (halves), then (3, 1)."""
        return (self.kernel, 2) if layer < self.time_doublings else (self.steady_kernel, 1)

    def generator_shapes(self) -> list[tuple[int, int, int]]:
        """(frames, side) after the base and after each upsampling layer, as (frames, side, side)."""
        shapes, t, s = [(self.base_frames, self.base_size, self.base_size)], self.base_frames, self.base_size
        for i in range(len(self.generator_dims)):
            t, s = t * self.temporal(i)[1], s * 2
            shapes.append((t, s, s))
        return shapes

    def discriminator_shapes(self) -> list[tuple[int, int, int]]:
        """(frames, side, side) after each discriminator layer: (8, 32), (4, 16), (2, 8), (2, 4) at the seed."""
        shapes, t, s = [], self.num_frames, self.image_size
        for i in range(len(self.discriminator_dims)):
            t, s = t // self.temporal(i)[1], s // 2
            shapes.append((t, s, s))
        return shapes

    # -- budget ------------------------------------------------------------------------------
    def _stream_parameters(self, dims: int) -> int:
        """Weights of one upsampling stream (3D: ``dims`` 3, 2D: ``dims`` 2) up to its last width."""
        g = self.generator_dims
        base = self.latent_dim * g[0] * (self.base_size**2) * (self.base_frames if dims == 3 else 1) + 4 * g[0]
        blocks = 0
        for i, (a, b) in enumerate(zip(g, g[1:])):
            kt = self.temporal(i)[0] if dims == 3 else 1
            blocks += a * b * kt * self.kernel**2 + 4 * b
        return base + blocks

    def _head_parameters(self, layer: int, out: int, dims: int) -> int:
        kt = self.temporal(layer)[0] if dims == 3 else 1
        return self.generator_dims[-1] * out * kt * self.kernel**2 + out

    def parameter_count(self) -> int:
        last, c = len(self.generator_dims) - 1, self.in_channels
        generator = self._stream_parameters(3) + self._head_parameters(last, c, 3)
        if self.two_stream:
            generator += self._head_parameters(last, 1, 3)  # mask head
            generator += self._stream_parameters(2) + self._head_parameters(last, c, 2)  # background
        widths, d = (c, *self.discriminator_dims), 0
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            d += a * b * self.temporal(i)[0] * self.kernel**2 + b
        t, s, _ = self.discriminator_shapes()[-1]
        d += self.discriminator_dims[-1] * t * s * s + 1
        return generator + d

    def activation_count(self) -> int:
        # generator: conv, BN, ReLU per hidden volume; the output conv and Tanh (more for two streams)
        shapes, g, c = self.generator_shapes(), self.generator_dims, self.in_channels
        hidden = sum(3 * ch * t * h * w for ch, (t, h, w) in zip(g, shapes))
        t, h, w = shapes[-1]
        video = c * t * h * w
        generator = hidden + 2 * video
        if self.two_stream:
            frames = [(1, h2, w2) for _, h2, w2 in shapes]
            generator += sum(3 * ch * h2 * w2 for ch, (_, h2, w2) in zip(g, frames)) + 2 * c * h * w
            generator += 2 * t * h * w + 3 * video  # mask and its sigmoid; the blend
        d = sum(2 * ch * t2 * h2 * w2 for ch, (t2, h2, w2) in zip(self.discriminator_dims, self.discriminator_shapes()))
        return generator + 2 * (d + 1)


def parts(cfg: VideoGANConfig) -> dict[str, PartSpec]:
    """``generator`` (z -> video (batch, T, C, H, W) in [-1, 1], BatchNorm on running statistics)
    and ``discriminator`` (video -> one logit)."""
    video = TensorSpec("video", ("batch", cfg.num_frames, cfg.in_channels, cfg.image_size, cfg.image_size), "video")
    return gan_parts(video, cfg.latent_dim)


MODEL = ModelSpec(
    name="video_gan",
    config_cls=VideoGANConfig,
    parts_fn=parts,
    description="3D-conv video GAN (VGAN/MoCoGAN shapes), 16 frames of 64x64; BCE or WGAN-GP (seed 003)",
    class_name="VideoGAN",
    objective=BCEGAN,
    # one-sided label smoothing 0.9 (Salimans et al. 2016); Adam 2e-4, beta1 0.5 (Radford et al. 2015,
    # the VGAN recipe)
    hyperparameters={"lr_generator": 2e-4, "lr_discriminator": 2e-4, "beta1": 0.5, "real_label": 0.9},
    alternatives=(ObjectiveChoice(WGANGP, {}),),
    batch_size=16,
    config_flags=("architecture",),
    variants={"default": {}, "two_stream": {"architecture": "two_stream"}},
    data="video",
)
