"""What an objective is, written once for both frameworks.

An objective is everything about training a model except the tensor arithmetic: its typed
hyperparameters (defaults, ranges, help: the trainers' flags are generated from them), its
optimizers (which parameter group, learning rate, betas, eps: TTUR is two learning rates), its
updates and their schedule (which run on which step, and which loss each differentiates), the
per-step inputs both frameworks receive (noise streams drawn here from the seed, scheduled
scalars such as the KL weight) and the values it logs.

The twins implement only the named tensor updates: ``torch_impl/objectives/<name>.py`` and
``keras_impl/objectives/<name>.py`` each define one function per :class:`Update`, called
``fn(model, batch, inputs, objective) -> {loss name: scalar}``. The framework trainer then
differentiates ``losses[update.loss]`` with respect to the parameter group of ``update.optimizer``
and steps that optimizer. ``batch`` is the canonical data batch in the model's value range;
``inputs`` are :meth:`Objective.step_inputs`' arrays.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np

from ..configs import BaseConfig, checked_dataclass
from ..errors import ConfigError


def hyper(default: Any, low: float | None = None, high: float | None = None, *, help: str,
          low_open: bool = False, choices: tuple[str, ...] | None = None) -> Any:
    """A hyperparameter: default, range ([low, high], (low, high] with ``low_open``) or
    ``choices``, and the help text its generated ``--flag`` shows."""
    return field(default=default, metadata={"range": (low, high, low_open), "help": help, "choices": choices})


@dataclass(frozen=True)
class Hyperparameters:
    """Base of every objective's hyperparameters; fields are declared with :func:`hyper`."""

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "hyperparameters") -> "Hyperparameters":
        """Validated like a config: types, ranges, choices; unknown names refused."""
        hp = checked_dataclass(cls, values, source)
        hp.validate()
        return hp

    def validate(self) -> None:
        """Rules between fields (overridden where there are any)."""

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class OptimizerSpec:
    """One Adam optimizer: the parameter group it trains (the twins' ``parameter_groups()`` key;
    ``"model"``: every parameter) and its numbers. eps is torch's 1e-8, set explicitly in Keras
    (whose default is 1e-7)."""

    name: str
    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8


@dataclass(frozen=True)
class Update:
    """One gradient step: the twins' function ``name``, the optimizer it steps, the loss it
    differentiates and every loss it returns (logged, and carried on steps it does not run)."""

    name: str
    optimizer: str
    loss: str
    logs: tuple[str, ...]


@dataclass(frozen=True)
class StepContext:
    """Where training is: what per-step inputs and schedules depend on."""

    seed: int
    step: int  #: 0-based index of the step about to run
    batch: int  #: samples in this step's batch
    total_steps: int  #: the run's length (cyclical schedules span it)


class Objective:
    """Base class; a subclass sets the class attributes and overrides what differs."""

    #: the twins' module name (``torch_impl/objectives/<name>.py``)
    name: ClassVar[str] = ""
    hyperparameters: ClassVar[type[Hyperparameters]] = Hyperparameters
    updates: ClassVar[tuple[Update, ...]] = ()

    def __init__(self, config: BaseConfig, hp: Hyperparameters):
        if not isinstance(hp, self.hyperparameters):
            raise ConfigError(f"{self.name}: hyperparameters must be {self.hyperparameters.__name__}, "
                              f"got {type(hp).__name__}")
        self.config, self.hp = config, hp

    def optimizers(self) -> tuple[OptimizerSpec, ...]:
        raise NotImplementedError

    def schedule(self, step: int) -> tuple[Update, ...]:
        """The updates that run on ``step`` (0-based), in order. Default: all of them, every step."""
        return self.updates

    def step_inputs(self, ctx: StepContext) -> dict[str, np.ndarray]:
        """Per-step arrays both twins receive (noise, scheduled scalars as float32 0-d arrays)."""
        return {}

    def update_inputs(self, inputs: dict[str, np.ndarray], update: Update, occurrence: int) -> dict[str, np.ndarray]:
        """The inputs of one run of ``update`` within a step: ``occurrence`` counts from 0 when a
        schedule runs the same update several times in one step (A.G.E.'s generator steps), so
        each run can take its own noise. Default: the step's inputs unchanged."""
        return inputs

    def logged(self, ctx: StepContext) -> dict[str, float]:
        """Values logged beside the losses on this step (e.g. the KL weight in force)."""
        return {}


def update_function(package: str, objective: str, update: str) -> Callable:
    """A twin's implementation of ``update`` of ``objective``: ``<package>.<objective>.<update>``
    (``package`` is ``torch_impl.objectives`` or ``keras_impl.objectives``)."""
    return getattr(importlib.import_module(f"{package}.{objective}"), update)


def masks(inputs: dict, stream: str) -> list:
    """The dropout keep-masks of one pass from a step's inputs: ``<stream>_0``, ``<stream>_1``, ..."""
    out, i = [], 0
    while f"{stream}_{i}" in inputs:
        out.append(inputs[f"{stream}_{i}"])
        i += 1
    return out


def scalar(value: float) -> np.ndarray:
    """A per-step scalar input: a float32 0-d array (one tf.function trace serves every step)."""
    return np.asarray(value, dtype=np.float32)


def penalized(model: Any, method: str, z: Any, **kwargs: Any) -> tuple[Any, Any]:
    """(output, penalty): ``model.<method>(z)`` and the generator's own regulariser, when the model
    has one: its ``<method>_with_penalty(z)`` returns both (the two-stream video GAN's mask L1);
    otherwise the penalty is None. Framework-neutral: the twins' generator updates call it."""
    hook = getattr(model, f"{method}_with_penalty", None)
    if hook is not None:
        return hook(z, **kwargs)
    return getattr(model, method)(z, **kwargs), None


def with_penalty(losses: dict[str, Any], penalty: Any, loss: str = "generator") -> dict[str, Any]:
    """``losses`` with ``penalty`` added to ``losses[loss]`` and logged as ``<loss>_penalty``
    (unchanged when the model has no penalty)."""
    if penalty is None:
        return losses
    return {**losses, loss: losses[loss] + penalty, f"{loss}_penalty": penalty}
