"""Model configs: one dataclass per model, seed defaults plus small presets.

Every config serialises to JSON (``to_json``/``config_from_json``) and travels inside every
checkpoint and exported ONNX file, so a model can always be rebuilt from its file alone.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import ConfigError


def conv_out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Spatial size after a torch-style Conv2d: floor((size + 2p - k) / s) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def _coerce(owner: str, f: dataclasses.Field, value: Any) -> Any:
    """``value`` as the type of the field's default (int, float, bool, str or a tuple of ints).

    Configs come from JSON in checkpoints and ONNX files: a string, null, fraction or nested
    list where a number belongs must fail here, naming the field, not deep inside a model build.
    """
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]

    def integral(v: Any) -> bool:
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    if isinstance(default, bool):
        ok, out = isinstance(value, bool), value
    elif isinstance(default, int):
        ok = integral(value)
        out = int(value) if ok else value
    elif isinstance(default, float):
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        out = float(value) if ok else value
    elif isinstance(default, tuple):
        ok = isinstance(value, (list, tuple)) and all(integral(v) for v in value)
        out = tuple(int(v) for v in value) if ok else value
    elif isinstance(default, str):
        ok, out = isinstance(value, str), value
    else:  # pragma: no cover - no such field yet
        ok, out = True, value
    if not ok:
        kind = {bool: "a boolean", int: "an integer", float: "a number", tuple: "a list of integers",
                str: "a string"}.get(type(default), type(default).__name__)
        raise ConfigError(f"{owner}: field {f.name!r} must be {kind}, got {value!r}")
    return out


@dataclass(frozen=True)
class BaseConfig:
    """Common behaviour: presets, validation, JSON round trip."""

    model: ClassVar[str] = ""
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    @classmethod
    def preset(cls, name: str = "seed", **overrides: Any) -> "BaseConfig":
        if name not in cls.presets:
            raise ConfigError(
                f"unknown preset {name!r} for model {cls.model!r}; choose one of {sorted(cls.presets)}"
            )
        values = {**cls.presets[name], **overrides}
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "BaseConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown field(s) {unknown}; known: {sorted(names)}")
        coerced = {}
        for f in dataclasses.fields(cls):
            if f.name in values:
                coerced[f.name] = _coerce(cls.__name__, f, values[f.name])
        cfg = cls(**coerced)
        cfg.validate()
        return cfg

    def validate(self) -> None:  # overridden per model
        pass

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def to_json(self) -> str:
        return json.dumps({"model": self.model, **self.to_dict()}, sort_keys=True)


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

    image_size: int = 150
    in_channels: int = 3
    latent_dim: int = 128
    hidden_dims: tuple[int, ...] = field(default=(32, 64, 128, 256, 512))
    leaky_slope: float = 0.01
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1  # torch convention: new = (1 - m) * old + m * batch

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

    image_size: int = 128
    in_channels: int = 3
    latent_dim: int = 128
    hidden_dims: tuple[int, ...] = field(default=(32, 64, 128, 256))
    tanh_mode: str = "single"
    num_frames: int = 8
    patch_size: int = 16
    transformer_dim: int = 192
    transformer_heads: int = 12
    transformer_layers: int = 12
    transformer_ff: int = 768
    layer_norm_eps: float = 1e-5
    critic_slope: float = 0.2

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


CONFIG_CLASSES: dict[str, type[BaseConfig]] = {c.model: c for c in (ConvVAEConfig, VAEGANConfig)}


def config_from_json(text: str, source: str = "config") -> BaseConfig:
    """Rebuild a config from its JSON form; ``source`` names the file in error messages."""
    try:
        values = json.loads(text)
    except (TypeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{source}: config is not valid JSON ({exc})") from None
    if not isinstance(values, dict) or "model" not in values:
        raise ConfigError(f"{source}: config JSON has no 'model' field")
    name = values.pop("model")
    if not isinstance(name, str) or name not in CONFIG_CLASSES:
        raise ConfigError(f"{source}: unknown model {name!r}; known: {sorted(CONFIG_CLASSES)}")
    try:
        return CONFIG_CLASSES[name].from_dict(values)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: bad config ({exc})") from None
