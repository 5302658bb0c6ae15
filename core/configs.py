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
#: Largest model, in checkpoint elements (float32: 1 GiB). The seed configs hold up to 14M.
MAX_PARAMETERS = 2**28
#: Largest activation footprint, in elements per sample summed over layers (float32: 512 MiB
#: per sample). The seed configs need up to 39M (a video generator judged frame by frame).
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
    elif isinstance(default, tuple) and all(isinstance(v, float) for v in default) and default:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, numbers.Real) and not isinstance(v, bool)
                                                      for v in value)
        out = tuple(float(v) for v in value) if ok else value
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


def checked_dataclass(cls: type, values: dict[str, Any], owner: str | None = None) -> Any:
    """``cls(**values)`` after every value passed :func:`_coerce` (its field's type) and, on the
    built instance, :func:`_check_range` (its declared range, finite, bounded; a ``choices``
    metadata entry lists the allowed strings). Unknown names are refused with the known ones."""
    owner = owner or cls.__name__
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{owner}: unknown field(s) {unknown}; known: {sorted(names)}")
    coerced = {f.name: _coerce(owner, f, values[f.name]) for f in dataclasses.fields(cls) if f.name in values}
    obj = cls(**coerced)
    for f in dataclasses.fields(cls):
        value = getattr(obj, f.name)
        _check_range(owner, f, value)
        choices = f.metadata.get("choices")
        if choices is not None and value not in choices:
            raise ConfigError(f"{owner}: field {f.name!r} must be one of {list(choices)}, got {value!r}")
    return obj


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
        cfg = checked_dataclass(cls, values)
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

    def dropout_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Per-sample shapes of the dropout layers one pass through the model's dropout-carrying
        network meets, in order (the objective draws a keep-mask for each); none by default."""
        return ()

    def dropout_rate(self) -> float:
        """The probability with which those dropout layers drop a unit."""
        return 0.0

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


def config_from_json(text: str, source: str = "config") -> BaseConfig:
    """Rebuild a config from its JSON form; ``source`` names the file in error messages."""
    if not isinstance(text, (str, bytes)):
        raise ConfigError(f"{source}: config is missing")
    values = json_loads(text, f"{source}: config", ConfigError)
    if not isinstance(values, dict) or "model" not in values:
        raise ConfigError(f"{source}: config JSON has no 'model' field")
    name = values.pop("model")
    from .registry import MODELS  # the registry imports every model's config module

    if not isinstance(name, str) or name not in MODELS:
        raise ConfigError(f"{source}: unknown model {name!r}; known: {sorted(MODELS)}")
    try:
        return MODELS[name].config_cls.from_dict(values)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: bad config ({exc})") from None
