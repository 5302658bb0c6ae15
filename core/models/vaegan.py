"""``vaegan``: the ParamTanh VAE-GAN of seeds 000 and 001.

Config, parts and registration; the twins are ``torch_impl/models/vaegan.py`` and
``keras_impl/models/vaegan.py`` (class :class:`VAEGAN`); ParamTanh's formulas are in
:mod:`core.param_tanh`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..configs import BaseConfig, bounded
from ..errors import ConfigError
from ..modelspec import ModelSpec, PartSpec, TensorSpec
from ..objectives.wgan_gp import VAEWGANGP

TANH_MODES = ("single", "matrix", "time", "transformer")


@dataclass(frozen=True)
class VAEGANConfig(BaseConfig):
    """The ParamTanh VAE-GAN of seeds 000 ("ConstantParamTanh") and 001 ("TransformerParamTanh").

    Seed numbers: 128x128 RGB images, batch 16 (the trainer's ``--batch-size``), a Transformer of
    12 heads and 12 layers whose input channels are NUM_FRAMES x CHANNELS.

    Choices the seeds leave open (kept identical in both frameworks):

    * encoder: per ``hidden_dims`` entry Conv2d(k=3, s=1, p=1) -> ReLU -> MaxPool2d(2), so
      128 -> 64 -> 32 -> 16 -> 8 with the default four blocks; ``fc_mu``/``fc_logvar`` are
      Linear on the channel-first flattened features; latent 128 (as seed 002);
    * decoder: Linear(latent -> C*s*s) -> ReLU, then ConvTranspose2d(k=4, s=2, p=1) -> ReLU per
      block back up the widths, a last ConvTranspose2d(hidden[0] -> channels) and Sigmoid; then
      the :class:`ParamTanh` of ``tanh_mode``;
    * critic: the encoder's blocks with LeakyReLU(0.2) instead of ReLU (a dead ReLU gives the
      gradient penalty nothing to hold on to) and no BatchNorm (it couples the samples of a batch,
      which the per-sample gradient penalty assumes they are not), then Linear(features -> 1);
    * ``num_frames`` is the seeds' NUM_FRAMES (8): the length of the ``time`` mode's video and of
      the ``transformer`` mode's synthetic video. Tokens are ``patch_size`` patches (16 -> an 8x8
      grid of 64 tokens), embedded to ``transformer_dim`` (192 = 12 heads x 16) with a learned
      position embedding; post-norm layers (torch's default) with ReLU feed-forward of
      ``transformer_ff`` and no dropout, LayerNorm eps 1e-5.
    """

    model: ClassVar[str] = "vaegan"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "seed": {},
        "tiny": {"image_size": 32, "latent_dim": 16, "hidden_dims": (16, 32), "num_frames": 4, "patch_size": 8,
                 "transformer_dim": 48, "transformer_layers": 2, "transformer_ff": 96},
    }

    image_size: int = bounded(128, 2)
    in_channels: int = bounded(3, 1)
    latent_dim: int = bounded(128, 1)
    hidden_dims: tuple[int, ...] = field(default=(32, 64, 128, 256), metadata={"range": (1, None, False)})
    tanh_mode: str = field(default="single", metadata={"choices": TANH_MODES,
                                                        "help": "ParamTanh mode (seeds 000, 001)"})
    num_frames: int = bounded(8, 1, 1024)
    patch_size: int = bounded(16, 1)
    transformer_dim: int = bounded(192, 1)
    transformer_heads: int = bounded(12, 1)
    transformer_layers: int = bounded(12, 1, 256)
    transformer_ff: int = bounded(768, 1)
    layer_norm_eps: float = bounded(1e-5, 0.0, 1.0, low_open=True)
    critic_slope: float = bounded(0.2, 0.0, 1.0)

    def validate(self) -> None:
        if self.tanh_mode not in TANH_MODES:
            raise ConfigError(f"vaegan: unknown tanh_mode {self.tanh_mode!r}; choose one of {list(TANH_MODES)}")
        if not self.hidden_dims or any(h <= 0 for h in self.hidden_dims):
            raise ConfigError(f"vaegan: hidden_dims must be positive, got {self.hidden_dims}")
        if min(self.latent_dim, self.in_channels, self.num_frames, self.patch_size, self.transformer_dim,
               self.transformer_heads, self.transformer_layers, self.transformer_ff) <= 0:
            raise ConfigError("vaegan: sizes, frames, patch and transformer dimensions must be positive")
        scale = 2 ** len(self.hidden_dims)
        if self.image_size % scale:
            raise ConfigError(f"vaegan: image_size {self.image_size} must be divisible by 2^{len(self.hidden_dims)} "
                              f"(one MaxPool2d(2) per hidden block)")
        if self.image_size % self.patch_size:
            raise ConfigError(f"vaegan: image_size {self.image_size} must be divisible by patch_size {self.patch_size}")
        if self.transformer_dim % self.transformer_heads:
            raise ConfigError(f"vaegan: transformer_dim {self.transformer_dim} must be divisible by "
                              f"transformer_heads {self.transformer_heads}")

    def parameter_count(self) -> int:
        c, s, lat, flat = self.in_channels, self.image_size, self.latent_dim, self.flat_features
        widths = (c, *self.hidden_dims)
        convs = sum(9 * a * b + b for a, b in zip(widths, widths[1:]))  # encoder; the critic has the same
        rev = widths[::-1]  # hidden[-1] .. hidden[0], channels: ConvTranspose2d(4, 2, 1) with bias
        decoder = sum(16 * a * b + b for a, b in zip(rev, rev[1:]))
        vae = convs + 2 * (flat * lat + lat) + (lat * flat + flat) + decoder
        critic = convs + flat + 1
        return vae + critic + self._param_tanh_parameters(c * s * s)

    def _param_tanh_parameters(self, image: int) -> int:
        if self.tanh_mode == "single":
            return 1
        if self.tanh_mode == "matrix":
            return image
        if self.tanh_mode == "time":
            return 4 * image  # a, b, omega, phi
        e, ff, p2 = self.transformer_dim, self.transformer_ff, self.patch_size**2
        layer = (3 * e * e + 3 * e) + (e * e + e) + (e * ff + ff) + (ff * e + e) + 4 * e  # attention, FFN, 2 norms
        embed = p2 * self.transformer_in_channels * e + e + self.num_patches * e
        return embed + self.transformer_layers * layer + e * self.in_channels * p2 + self.in_channels * p2

    def activation_count(self) -> int:
        c, s, lat = self.in_channels, self.image_size, self.latent_dim
        convs, side = 0, s
        for h in self.hidden_dims:  # conv + activation at full size, then the pooled map
            convs += 2 * h * side * side + h * (side // 2) ** 2
            side //= 2
        decoder, side = self.flat_features * 2, self.feature_size
        for h in (*self.hidden_dims[-2::-1], c):  # ConvTranspose2d + activation, doubling the side
            side *= 2
            decoder += 2 * h * side * side
        frames = self.num_frames if self.is_video else 1
        out = 2 * frames * c * s * s  # alpha and tanh(alpha * x)
        if self.tanh_mode == "transformer":
            e, n = self.transformer_dim, self.num_patches
            per_layer = n * (3 * e + 2 * self.transformer_heads * n + 6 * e + 2 * self.transformer_ff)
            out += self.transformer_in_channels * s * s + 2 * n * e + self.transformer_layers * per_layer \
                + 2 * c * s * s
        # encoder and critic (real and fake), decoder, latents; video frames are judged one by one
        return convs * (1 + 2 * frames) + 3 * lat + decoder + out

    @property
    def feature_size(self) -> int:
        """Spatial side of the last encoder block's output."""
        return self.image_size // 2 ** len(self.hidden_dims)

    @property
    def flat_features(self) -> int:
        return self.hidden_dims[-1] * self.feature_size**2

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def transformer_in_channels(self) -> int:
        """The seeds' TRANSFORMER_IN_CHANNELS = NUM_FRAMES * CHANNELS."""
        return self.num_frames * self.in_channels

    @property
    def is_video(self) -> bool:
        return self.tanh_mode == "time"


def parts(cfg: VAEGANConfig) -> dict[str, PartSpec]:
    """encoder, critic, and ``generator`` (z -> image) or, in ``time`` mode, ``video_generator``
    (z -> T frames). Generated values are tanh(alpha * sigmoid(.)): in [0, 1) for alpha >= 0,
    which is the display range; a negative learned alpha gives values below 0, shown as 0."""
    c, s = cfg.in_channels, cfg.image_size
    image = TensorSpec("image", ("batch", c, s, s), "image")
    z = TensorSpec("z", ("batch", cfg.latent_dim))
    parts = {
        "encoder": PartSpec("encoder", "encode", inputs=(image,),
                            outputs=(TensorSpec("mu", ("batch", cfg.latent_dim)),
                                     TensorSpec("logvar", ("batch", cfg.latent_dim)))),
        "critic": PartSpec("critic", "critique", inputs=(image,), outputs=(TensorSpec("score", ("batch", 1)),)),
    }
    if cfg.is_video:
        video = TensorSpec("video", ("batch", cfg.num_frames, c, s, s), "video")
        parts["video_generator"] = PartSpec("video_generator", "generate_video", inputs=(z,), outputs=(video,),
                                            value_range=(0.0, 1.0))
    else:
        parts["generator"] = PartSpec("generator", "generate", inputs=(z,), outputs=(image,), value_range=(0.0, 1.0))
    return parts


MODEL = ModelSpec(
    name="vaegan",
    config_cls=VAEGANConfig,
    parts_fn=parts,
    description="ParamTanh VAE-GAN with a WGAN-GP critic (seeds 000, 001)",
    class_name="VAEGAN",
    objective=VAEWGANGP,
    hyperparameters={"lr": 1e-4},
    batch_size=16,
    config_flags=("tanh_mode",),
    variants={mode: {"tanh_mode": mode} for mode in TANH_MODES},
)
