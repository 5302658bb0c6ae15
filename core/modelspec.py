"""The types a model registers with: :class:`ModelSpec` and the servable *parts* it is made of.

A part is one exported graph (``encoder``: image -> (mu, logvar); ``decoder``: z -> image, ...).
Export, the parity tests and the runtime all walk a model's parts. Shapes are given in the
canonical layout, which is torch's and ONNX's: images are (batch, C, H, W). The leading axis
is symbolic (``"batch"``) everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .configs import BaseConfig
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
class ObjectiveChoice:
    """An objective a model can also train with (``--objective NAME``), with the model's own
    defaults for its hyperparameters (over the objective's)."""

    objective: type
    hyperparameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """Everything the toolkit knows about one model: the ``MODEL`` of ``core/models/<name>.py``.

    The twins are found by convention: class ``class_name`` in ``torch_impl/models/<twin>.py`` and
    ``keras_impl/models/<twin>.py``, where ``twin`` is the model's own name unless it reuses
    another model's code (a model may be another's network with other defaults).
    """

    name: str
    config_cls: type[BaseConfig]
    parts_fn: Callable[[BaseConfig], dict[str, PartSpec]]
    description: str
    #: the twins' class name
    class_name: str
    #: the objective it trains with (a :class:`core.objectives.base.Objective` subclass)
    objective: type
    #: the objective's hyperparameter defaults for this model (e.g. the seed's learning rates)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    #: objectives it can train with instead (``--objective NAME``; the default is ``objective``)
    alternatives: tuple[ObjectiveChoice, ...] = ()
    #: the trainers' default --batch-size
    batch_size: int = 64
    #: config fields the trainers expose as flags (``--tanh-mode``); other fields come from presets
    config_flags: tuple[str, ...] = ()
    #: config overrides the registry-driven tests run (e.g. one per output-layer mode)
    variants: dict[str, dict[str, Any]] = field(default_factory=lambda: {"default": {}})
    #: the latent prior generation samples from: "normal" (N(0, I)), "sphere" (N(0, I) normalised
    #: to the unit sphere, A.G.E.), or "none" (an autoencoder: its latents have no prior to sample)
    prior: str = "normal"
    #: the module of the twins, when the model reuses another model's code
    twin: str | None = None
    #: what ``--data`` holds for it: "image" (an ImageFolder, the embedded digits by default) or
    #: "video" (a folder of clips, the embedded moving digits by default: :mod:`core.video_data`)
    data: str = "image"
    #: the reports the model takes part in (:class:`core.report_spec.ReportRole`: its run, curves and grids)
    reports: tuple[Any, ...] = ()

    def parts(self, config: BaseConfig) -> dict[str, PartSpec]:
        return self.parts_fn(config)

    @property
    def objectives(self) -> dict[str, ObjectiveChoice]:
        """Every objective it trains with, by name; the default first."""
        choices = (ObjectiveChoice(self.objective, dict(self.hyperparameters)), *self.alternatives)
        return {c.objective.name: c for c in choices}

    def objective_choice(self, name: str | None = None) -> ObjectiveChoice:
        """The objective called ``name`` (None: the default), or a ConfigError naming the choices."""
        choices = self.objectives
        if name is None:
            return next(iter(choices.values()))
        if name not in choices:
            raise ConfigError(f"model {self.name!r} trains with the objective {' or '.join(choices)}, not {name!r}")
        return choices[name]

    @property
    def twin_module(self) -> str:
        return self.twin or self.name


def gan_parts(sample: TensorSpec, latent_dim: int,
              value_range: tuple[float, float] = (-1.0, 1.0)) -> dict[str, PartSpec]:
    """The parts of a GAN that makes ``sample`` (an image or a video): ``generator`` (z (batch,
    latent_dim) -> sample in ``value_range``, method ``generate``) and ``discriminator`` (sample ->
    ``logit`` (batch, 1), method ``discriminate``; eval mode, so no dropout)."""
    return {
        "generator": PartSpec("generator", "generate", inputs=(TensorSpec("z", ("batch", latent_dim)),),
                              outputs=(sample,), value_range=value_range),
        "discriminator": PartSpec("discriminator", "discriminate", inputs=(sample,),
                                  outputs=(TensorSpec("logit", ("batch", 1)),)),
    }


def image_gan_parts(channels: int, size: int, latent_dim: int,
                    value_range: tuple[float, float] = (-1.0, 1.0)) -> dict[str, PartSpec]:
    """:func:`gan_parts` of images (batch, C, S, S)."""
    return gan_parts(TensorSpec("image", ("batch", channels, size, size), "image"), latent_dim, value_range)
