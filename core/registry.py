"""The model registry: name -> config class -> the model's servable *parts*.

A part is one exported graph (``encoder``: image -> (mu, logvar); ``decoder``: z -> image, ...).
Export, the parity tests and the runtime all walk this one table. Shapes are given in the
canonical layout, which is torch's and ONNX's: images are (batch, C, H, W). The leading axis
is symbolic (``"batch"``) everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .configs import CONFIG_CLASSES, BaseConfig, ConvVAEConfig, VAEGANConfig
from .errors import ConfigError

Dim = int | str


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output of a part.

    ``kind`` says how frameworks lay it out: ``"image"`` is (batch, C, H, W) canonically and
    (batch, H, W, C) in Keras' public API; ``"video"`` is (batch, T, C, H, W) canonically and
    (batch, T, H, W, C) in Keras; ``"vector"`` is the same everywhere.
    """

    name: str
    shape: tuple[Dim, ...]
    kind: str = "vector"

    def concrete_shape(self, batch: int) -> tuple[int, ...]:
        return tuple(batch if d == "batch" else int(d) for d in self.shape)


@dataclass(frozen=True)
class PartSpec:
    name: str
    #: the model method both frameworks call for this part (same name in both twins)
    method: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    #: (low, high) of the first output's values, or None when unbounded.
    value_range: tuple[float, float] | None = None


@dataclass(frozen=True)
class ModelSpec:
    name: str
    config_cls: type[BaseConfig]
    parts_fn: Callable[[BaseConfig], dict[str, PartSpec]]
    description: str
    #: defaults of the trainers' --lr and --batch-size for this model
    train_defaults: dict[str, float] = field(default_factory=dict)
    #: the latent prior generation samples from: "normal" (N(0, I)), "sphere" (N(0, I) normalised
    #: to the unit sphere, A.G.E.), or "none" (an autoencoder: its latents have no prior to sample)
    prior: str = "normal"

    def parts(self, config: BaseConfig) -> dict[str, PartSpec]:
        return self.parts_fn(config)


def _conv_vae_parts(cfg: ConvVAEConfig) -> dict[str, PartSpec]:
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


def _vaegan_parts(cfg: VAEGANConfig) -> dict[str, PartSpec]:
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


#: the part names that map z to what a model generates (a model has exactly one of them)
GENERATOR_PARTS = ("generator", "decoder", "video_generator")
ENCODER_PART = "encoder"
#: the exported file of a part at each precision: ``<part>.onnx``, ``<part>.fp16.onnx``, ``<part>.int8.onnx``
PRECISIONS = {"fp32": ".onnx", "fp16": ".fp16.onnx", "int8": ".int8.onnx"}


def part_filename(part: str, precision: str = "fp32") -> str:
    """What ``export.onnx`` names a part's file, and where the runtime looks for it."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return f"{part}{PRECISIONS[precision]}"


#: what an encoder part's outputs say about it: (mu, logvar) is a Gaussian posterior, one output a point
ENCODER_KINDS = {("mu", "logvar"): "gaussian", ("z",): "deterministic"}
PRIORS = ("normal", "sphere", "none")


def runtime_facts(config: BaseConfig) -> dict[str, object]:
    """What the runtime needs to know about a model, written into every exported part's metadata:

    ``prior`` ("normal" | "sphere" | "none"), ``encoder_kind`` ("gaussian": the encoder gives
    (mu, logvar); "deterministic": it gives z; "none": no encoder) and ``reconstructs`` (it has both
    an encoder and a generator part, so ``reconstruct(image)`` is defined)."""
    spec = get_model_spec(config.model)
    parts = spec.parts(config)
    encoder = parts.get(ENCODER_PART)
    kind = "none" if encoder is None else ENCODER_KINDS.get(tuple(t.name for t in encoder.outputs))
    if kind is None:
        raise ConfigError(f"model {config.model!r}: encoder outputs {[t.name for t in encoder.outputs]} are "
                          f"neither (mu, logvar) nor (z,)")
    if spec.prior not in PRIORS:
        raise ConfigError(f"model {config.model!r}: prior {spec.prior!r} is not one of {PRIORS}")
    reconstructs = encoder is not None and any(p in parts for p in GENERATOR_PARTS)
    return {"prior": spec.prior, "encoder_kind": kind, "reconstructs": reconstructs}


def sample_part(config: BaseConfig) -> str:
    """The registry part that maps z to what the model generates (decoder / generator / video)."""
    parts = get_model_spec(config.model).parts(config)
    for name in GENERATOR_PARTS:
        if name in parts:
            return name
    raise ConfigError(f"model {config.model!r} has no generator part")


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("conv_vae", ConvVAEConfig, _conv_vae_parts, "convolutional VAE (seed 002)",
                  {"lr": 1e-3, "batch_size": 64}),
        ModelSpec("vaegan", VAEGANConfig, _vaegan_parts, "ParamTanh VAE-GAN with a WGAN-GP critic (seeds 000, 001)",
                  {"lr": 1e-4, "batch_size": 16}),
    )
}
assert set(MODELS) == set(CONFIG_CLASSES)


def get_model_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; known models: {sorted(MODELS)}")
    return MODELS[name]


def make_config(name: str, preset: str = "seed", **overrides) -> BaseConfig:
    """The config of model ``name`` at ``preset`` with ``overrides`` applied."""
    return get_model_spec(name).config_cls.preset(preset, **overrides)


def resolve_config(name: str, config: BaseConfig | None = None, preset: str = "seed", **overrides) -> BaseConfig:
    """What both frameworks' ``build()`` start from: ``config`` (with ``overrides``) or a preset."""
    spec = get_model_spec(name)
    if config is None:
        return spec.config_cls.preset(preset, **overrides)
    if config.model != name:
        raise ConfigError(f"config is for model {config.model!r}, not {name!r}")
    return spec.config_cls.from_dict({**config.to_dict(), **overrides}) if overrides else config
