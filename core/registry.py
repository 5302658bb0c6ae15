"""The model registry: every ``core/models/<name>.py`` that defines ``MODEL`` (a
:class:`core.modelspec.ModelSpec`), found by scanning the folder, so adding a model registers it.

Also what every consumer asks of a model without knowing its name: its parts, the part that
generates, the file a part is exported to, and the facts the runtime needs.
"""

from __future__ import annotations

import importlib
import pkgutil

from .configs import BaseConfig
from .errors import ConfigError
from .modelspec import Dim, ModelSpec, PartSpec, TensorSpec  # noqa: F401 - re-exported

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


def data_range(config: BaseConfig) -> tuple[float, float]:
    """The value range the model generates in (its generator part's), which training maps the
    [0, 1] data onto: (0, 1) for Sigmoid outputs, (-1, 1) for Tanh ones."""
    part = get_model_spec(config.model).parts(config)[sample_part(config)]
    return part.value_range or (0.0, 1.0)


def latent_shape(config: BaseConfig) -> tuple[int, ...]:
    """Per-sample shape of what the generator part takes: the latent (a vector, or a feature map)."""
    part = get_model_spec(config.model).parts(config)[sample_part(config)]
    return tuple(int(d) for d in part.inputs[0].shape[1:])


def sample_part(config: BaseConfig) -> str:
    """The registry part that maps z to what the model generates (decoder / generator / video)."""
    parts = get_model_spec(config.model).parts(config)
    for name in GENERATOR_PARTS:
        if name in parts:
            return name
    raise ConfigError(f"model {config.model!r} has no generator part")


def _discover() -> dict[str, ModelSpec]:
    """Every ``core/models/<name>.py`` that defines ``MODEL``: the registry is the folder."""
    from . import models

    found: dict[str, ModelSpec] = {}
    for info in sorted(pkgutil.iter_modules(models.__path__), key=lambda m: m.name):
        spec = getattr(importlib.import_module(f"{models.__name__}.{info.name}"), "MODEL", None)
        if spec is None:
            continue
        if spec.name != info.name:
            raise ConfigError(f"core/models/{info.name}.py registers a model named {spec.name!r}; "
                              f"a model's file carries its name")
        if spec.config_cls.model != spec.name:
            raise ConfigError(f"core/models/{info.name}.py: {spec.config_cls.__name__}.model is "
                              f"{spec.config_cls.model!r}, not {spec.name!r}")
        found[spec.name] = spec
    return found


MODELS: dict[str, ModelSpec] = _discover()


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
