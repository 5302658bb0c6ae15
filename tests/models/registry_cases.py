"""The registry-driven suite's cases and helpers: every registered model x variant.

A model gets every ``tests/models/test_registry_*.py`` check by being registered in
``core/models/<name>.py``; nothing here names a model. Cases are ``<model>`` (a model whose only
variant is ``default``) or ``<model>-<variant>`` (``vaegan-time``).

Twins are built once per session and case (:func:`twins`) with perturbed canonical weights
(:func:`perturbed_tensors`: core's initial weights, then noise on every tensor and lively
BatchNorm statistics), loaded into both frameworks; a test that trains them calls
:meth:`Twins.reset`. The measured differences are collected in :data:`MEASURED` and printed as
one table at the end of the run (``-v`` or ``AGE_PARITY_REPORT=1``).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from core.configs import BaseConfig
from core.registry import MODELS, ModelSpec

#: seed configs above this many parameters are too slow for the eval-parity check on 2 cores (the
#: largest registered, 25M parameters of 3D convolutions, takes about 5 s)
SEED_PARAMETER_LIMIT = 30_000_000


@dataclass(frozen=True)
class Case:
    model: str
    variant: str
    overrides: dict[str, Any] = field(hash=False, compare=False)

    @property
    def id(self) -> str:
        variants = MODELS[self.model].variants
        return self.model if list(variants) == ["default"] else f"{self.model}-{self.variant}"

    @property
    def spec(self) -> ModelSpec:
        return MODELS[self.model]

    def config(self, preset: str = "tiny") -> BaseConfig:
        return self.spec.config_cls.preset(preset, **self.overrides)

    def __str__(self) -> str:  # pragma: no cover - shown in messages
        return self.id


CASES = [Case(name, variant, dict(overrides)) for name, spec in sorted(MODELS.items())
         for variant, overrides in spec.variants.items()]
CASE_IDS = [c.id for c in CASES]


def cases() -> Any:
    """``@cases()``: parametrize a test's ``case`` argument over every model x variant."""
    return pytest.mark.parametrize("case", CASES, ids=CASE_IDS)


# --------------------------------------------------------------------------- comparisons


def max_abs(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def compare(got: Any, want: Any, tol: float, path: str = "") -> float:
    """transformers' recursive max-|diff| check: dicts, sequences and arrays; fails naming the
    first output path (``decoder/image``) whose shape or values differ by more than ``tol``.
    Returns the largest difference seen."""
    if isinstance(want, dict):
        assert isinstance(got, dict), f"{path or '<root>'}: got {type(got).__name__}, want a dict"
        assert set(got) == set(want), f"{path or '<root>'}: keys {sorted(got)} != {sorted(want)}"
        return max([compare(got[k], want[k], tol, f"{path}/{k}" if path else str(k)) for k in want], default=0.0)
    if isinstance(want, (list, tuple)):
        assert len(got) == len(want), f"{path or '<root>'}: {len(got)} outputs, want {len(want)}"
        return max([compare(g, w, tol, f"{path}[{i}]") for i, (g, w) in enumerate(zip(got, want))], default=0.0)
    g, w = np.asarray(got), np.asarray(want)
    assert g.shape == w.shape, f"{path}: shape {g.shape} != {w.shape}"
    assert np.all(np.isfinite(g)) and np.all(np.isfinite(w)), f"{path}: non-finite values"
    diff = max_abs(g, w)
    assert diff <= tol, f"{path}: max |diff| {diff:.3e} > {tol:g} (max |want| {float(np.max(np.abs(w))):.3g})"
    return diff


def rel_close(a: float, b: float, tol: float) -> bool:
    """|a - b| <= tol, relative where the values are larger than 1."""
    return abs(a - b) <= tol * max(1.0, abs(a))


#: {(case id, check): largest difference}; printed at the end of the session
MEASURED: dict[tuple[str, str], float] = {}


def record(case: Case | str, check: str, value: float) -> None:
    key = (str(case if isinstance(case, str) else case.id), check)
    MEASURED[key] = max(MEASURED.get(key, 0.0), float(value))


# --------------------------------------------------------------------------- weights and twins


def perturbed_tensors(model: str, config: BaseConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Canonical tensors for ``config``: core's initial weights (``torch_impl.init``), then noise
    on every float tensor (half its spread, 0.3 for constant ones such as alpha, LayerNorm gains
    or a head's bias) and BatchNorm running statistics away from 0 / 1, so no check passes by a
    symmetric or trivial init."""
    import torch_impl
    from torch_impl.checkpoint import model_tensors
    from torch_impl.init import initialize

    tensors = model_tensors(initialize(torch_impl.build(model, config=config), seed))
    rng = np.random.default_rng(seed + 1000)
    out = {}
    for name in sorted(tensors):
        t = tensors[name]
        if not np.issubdtype(t.dtype, np.floating):
            out[name] = t
        elif name.endswith("running_var"):
            out[name] = rng.uniform(0.5, 2.0, t.shape).astype(t.dtype)
        elif name.endswith("running_mean"):
            out[name] = rng.uniform(-0.5, 0.5, t.shape).astype(t.dtype)
        else:
            spread = float(t.std()) if t.size > 1 else 0.0
            scale = 0.5 * spread if spread > 1e-6 else 0.3
            out[name] = (t + scale * rng.standard_normal(t.shape)).astype(t.dtype)
    return out


@dataclass
class Twins:
    case: Case
    preset: str
    torch: Any
    keras: Any
    tensors: dict[str, np.ndarray]

    @property
    def config(self) -> BaseConfig:
        return self.torch.config

    def reset(self) -> "Twins":
        """Both models back to :attr:`tensors`, torch in eval mode."""
        from keras_impl.checkpoint import load_tensors as keras_load
        from torch_impl.checkpoint import load_tensors as torch_load

        torch_load(self.torch, self.tensors).eval()
        keras_load(self.keras, self.tensors)
        return self


_TWINS: dict[tuple[str, str], Twins] = {}


def case_seed(case: Case) -> int:
    """The seed of a case's perturbed weights: from its id, so registering another model does not
    change every other case's weights (a list index would)."""
    return zlib.crc32(case.id.encode()) % 100_000


def twins(case: Case, preset: str = "tiny") -> Twins:
    """Session-cached twins of ``case`` at ``preset`` with the same perturbed weights (reset)."""
    key = (case.id, preset)
    if key not in _TWINS:
        import keras_impl
        import torch_impl

        config = case.config(preset)
        tensors = perturbed_tensors(case.model, config, seed=case_seed(case))
        _TWINS[key] = Twins(case, preset, torch_impl.build(case.model, config=config),
                            keras_impl.build(case.model, config=config), tensors)
    return _TWINS[key].reset()


def drop_twins(case: Case, preset: str) -> None:
    """Free a large preset's twins once its test is done."""
    _TWINS.pop((case.id, preset), None)


def part_inputs(part, batch: int, seed: int = 0) -> list[np.ndarray]:
    from export.validation import random_inputs

    return random_inputs(part, batch, seed)


def run_parts(run_part, model, parts, inputs: dict[str, list[np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    """{part: {output name: array}} of ``run_part`` on ``inputs[part]``."""
    return {name: {t.name: np.asarray(o) for t, o in zip(part.outputs, run_part(model, name, *inputs[name]))}
            for name, part in parts.items()}


def objective_of(case: Case, config: BaseConfig, objective: str | None = None):
    """The model's objective ``objective`` (None: its default) at its registered hyperparameters
    (what the trainers start from)."""
    from core.cli import hyperparameter_defaults

    cls = case.spec.objective_choice(objective).objective
    return cls(config, cls.hyperparameters.from_dict(hyperparameter_defaults(case.model, objective)))
