"""Model configs: one dataclass per model, seed defaults plus small presets.

Every config serialises to JSON (``to_json``/``config_from_json``) and travels inside every
checkpoint and exported ONNX file, so a model can always be rebuilt from its file alone.

Because configs arrive inside files a stranger may have crafted, nothing is built from one until
it has passed three checks, all here and framework-neutral:

1. every field has the type of its default, and numbers are finite and inside the field's
   declared range (:func:`bounded`; integers are at most :data:`MAX_INT`, lists at most
   :data:`MAX_LIST` long);
2. the model's own consistency rules (``validate``);
3. the size budget: :meth:`BaseConfig.parameter_count` (every tensor of the checkpoint) must not
   exceed :data:`MAX_PARAMETERS` and :meth:`BaseConfig.activation_count` (the elements every layer
   outputs for one sample, summed) must not exceed :data:`MAX_ACTIVATIONS`, so a 400-byte config
   asking for latent_dim 10**7 is refused before anything allocates 40 GB.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import ConfigError
from .jsonio import loads as json_loads

#: Largest value any integer field may hold (sizes, widths, counts): far above every real model,
#: far below anything that overflows a framework's int32/int64 shape arithmetic.
MAX_INT = 2**20
#: Longest list field (e.g. ``hidden_dims``).
MAX_LIST = 32
#: Largest model, in checkpoint elements (float32: 1 GiB). The seed configs hold 8M (conv_vae)
#: to 14M (vaegan transformer).
MAX_PARAMETERS = 2**28
#: Largest activation footprint, in elements per sample summed over layers (float32: 512 MiB
#: per sample). The seed configs need 5M (conv_vae) to 39M (vaegan time: 8 frames judged one by one).
MAX_ACTIVATIONS = 2**27


def bounded(default: Any, low: float | None = None, high: float | None = None, *, low_open: bool = False) -> Any:
    """A dataclass field whose value must lie in [low, high] ((low, high] with ``low_open``).

    The range is checked by :meth:`BaseConfig.from_dict`, so it holds for presets, CLI overrides
    and configs read from files alike, and the message names the field.
    """
    return field(default=default, metadata={"range": (low, high, low_open)})


def _check_range(owner: str, f: dataclasses.Field, value: Any) -> None:
    values = value if isinstance(value, tuple) else (value,)
    if isinstance(value, tuple) and len(value) > MAX_LIST:
        raise ConfigError(f"{owner}: field {f.name!r} has {len(value)} entries; at most {MAX_LIST} are allowed")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{owner}: field {f.name!r} must be finite, got {v!r}")
        if isinstance(v, int) and abs(v) > MAX_INT:
            raise ConfigError(f"{owner}: field {f.name!r} = {v} exceeds the limit of {MAX_INT}")
        low, high, low_open = f.metadata.get("range", (None, None, False))
        too_low = low is not None and (v <= low if low_open else v < low)
        if too_low or (high is not None and v > high):
            lo = "-inf" if low is None else f"{low:g}"
            hi = "inf" if high is None else f"{high:g}"
            interval = f"{'(' if low_open else '['}{lo}, {hi}]"
            raise ConfigError(f"{owner}: field {f.name!r} must be in {interval}, got {v!r}")


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
        for f in dataclasses.fields(cls):
            _check_range(cls.__name__, f, getattr(cfg, f.name))
        cfg.validate()
        cfg.check_budget()
        return cfg

    def validate(self) -> None:  # overridden per model
        pass

    def parameter_count(self) -> int:
        """Elements of every tensor the model's checkpoint holds (weights and BatchNorm statistics)."""
        raise NotImplementedError(f"{type(self).__name__} must say how many parameters it builds")

    def activation_count(self) -> int:
        """Elements every layer outputs for one sample, summed (what a training step keeps for backward)."""
        raise NotImplementedError(f"{type(self).__name__} must say how large its activations are")

    def check_budget(self) -> None:
        """Refuse configs whose model would exceed :data:`MAX_PARAMETERS` or :data:`MAX_ACTIVATIONS`."""
        params, acts = self.parameter_count(), self.activation_count()
        if params > MAX_PARAMETERS:
            raise ConfigError(f"{self.model}: this config builds {params:,} parameters; the limit is "
                              f"{MAX_PARAMETERS:,} (core.configs.MAX_PARAMETERS)")
        if acts > MAX_ACTIVATIONS:
            raise ConfigError(f"{self.model}: this config needs {acts:,} activation elements per sample; the "
                              f"limit is {MAX_ACTIVATIONS:,} (core.configs.MAX_ACTIVATIONS)")

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
    tanh_mode: str = "single"
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


CONFIG_CLASSES: dict[str, type[BaseConfig]] = {c.model: c for c in (ConvVAEConfig, VAEGANConfig)}


def config_from_json(text: str, source: str = "config") -> BaseConfig:
    """Rebuild a config from its JSON form; ``source`` names the file in error messages."""
    if not isinstance(text, (str, bytes)):
        raise ConfigError(f"{source}: config is missing")
    values = json_loads(text, f"{source}: config", ConfigError)
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
