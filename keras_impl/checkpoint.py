"""Keras model <-> canonical checkpoint (twin: ``torch_impl/checkpoint.py``).

Every mirrored variable is found by :func:`keras_impl.layers.core.torch_named_params` under its
torch name and converted with its named layout rule from :mod:`core.layouts`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping

import keras
import numpy as np

from core.checkpoint import (check_optimizer_value, check_tensors, load_checkpoint, read_optimizer_state,
                             save_checkpoint, save_optimizer_state)
from core.errors import CheckpointError
from core.layouts import rule

from .layers.core import torch_named_params
from .models import build

log = logging.getLogger(__name__)


def model_tensors(model: keras.Model) -> dict[str, np.ndarray]:
    """The model's canonical tensors: torch names and layouts, as NumPy."""
    return {name: rule(r).to_torch(np.asarray(var.numpy())) for name, var, r in torch_named_params(model)}


def expected_shapes(model: keras.Model) -> dict[str, tuple[int, ...]]:
    return {
        name: tuple(rule(r).to_torch(np.empty(tuple(var.shape), np.uint8)).shape)
        for name, var, r in torch_named_params(model)
    }


def load_tensors(model: keras.Model, tensors: Mapping[str, np.ndarray], source: str = "tensors") -> keras.Model:
    """Copy canonical tensors into ``model`` after checking names and shapes."""
    check_tensors(source, tensors, expected_shapes(model))
    for name, var, r in torch_named_params(model):
        var.assign(rule(r).to_keras(np.asarray(tensors[name], dtype=np.float32)))
    return model


def save_model(model: keras.Model, path: str | os.PathLike, step: int = 0) -> Path:
    """Write ``model`` as a canonical checkpoint (atomic)."""
    return save_checkpoint(path, model_tensors(model), model.config, "keras", step)


def load_model(path: str | os.PathLike, expected_model: str | None = None) -> keras.Model:
    """Build the model a checkpoint describes (from either framework) and load its weights."""
    ckpt = load_checkpoint(path, expected_model)
    model = build(ckpt.model, ckpt.config)
    load_tensors(model, ckpt.tensors, str(path))
    log.debug("loaded %s (%s, written by %s, step %d)", path, ckpt.model, ckpt.framework, ckpt.step)
    return model


def save_optimizers(optimizers: Mapping[str, keras.optimizers.Optimizer], path: str | os.PathLike,
                    step: int = 0) -> None:
    """Optimizer variables as one safetensors file: ``<name>.<index>`` in ``optimizer.variables``
    order; the layout lists each variable's shape and dtype (not its path: Keras numbers layer
    names per process, and identical runs must write identical bytes)."""
    tensors, layout = {}, {}
    for opt_name, optimizer in optimizers.items():
        layout[opt_name] = _variable_layout(optimizer)
        for i, var in enumerate(optimizer.variables):
            tensors[f"{opt_name}.{i:05d}"] = np.asarray(var.numpy())
    save_optimizer_state(path, tensors, "keras", step, layout)


def _variable_layout(optimizer: keras.optimizers.Optimizer) -> list[list]:
    """[[dtype, *shape], ...] of the optimizer's variables, in order."""
    return [[str(np.dtype(v.dtype)), *map(int, v.shape)] for v in optimizer.variables]


def _role(optimizer: keras.optimizers.Optimizer, var: keras.Variable) -> str | None:
    """What ``var`` of an Adam optimizer holds (:data:`core.checkpoint.OPTIMIZER_VALUE_RULES`)."""
    if var is optimizer.iterations:
        return "count"
    if var is getattr(optimizer, "_learning_rate", None):
        return "learning_rate"
    if any(var is v for v in getattr(optimizer, "_velocities", ())):
        return "second_moment"
    return None


def load_optimizers(optimizers: Mapping[str, keras.optimizers.Optimizer], path: str | os.PathLike) -> None:
    """Restore :func:`save_optimizers`' file into *built* optimizers (trainers build them up front),
    every tensor checked against its variable's shape and dtype before anything is assigned."""
    state = read_optimizer_state(path, "keras", optimizers)
    where = state.where
    assignments = []
    for opt_name, optimizer in optimizers.items():
        if not optimizer.built:
            raise CheckpointError(f"optimizer {opt_name} must be built before its state is loaded")
        variables = optimizer.variables
        layout = state.layout[opt_name]
        if layout != _variable_layout(optimizer):
            count = len(layout) if isinstance(layout, list) else "?"
            raise CheckpointError(f"{where}: {opt_name} holds {count} variables that do not match this optimizer's "
                                  f"{len(variables)} (dtype and shape of each)")
        for i, var in enumerate(variables):
            key = f"{opt_name}.{i:05d}"
            if key not in state.tensors:
                raise CheckpointError(f"{where}: tensor {key} is missing")
            array = state.tensors[key]
            if array.size == int(np.prod(var.shape)):
                array = array.reshape(tuple(var.shape))  # 0-d tensors come back as (1,)
            if tuple(array.shape) != tuple(var.shape) or array.dtype != np.dtype(var.dtype):
                raise CheckpointError(f"{where}: tensor {key} ({var.path}) is {array.dtype} {array.shape}, "
                                      f"expected {var.dtype} {tuple(var.shape)}")
            role = _role(optimizer, var)
            if role is not None:
                check_optimizer_value(where, key, role, array)
            assignments.append((var, array))
    extra = sorted(set(state.tensors) - {f"{o}.{i:05d}" for o, opt in optimizers.items() for i in range(len(opt.variables))})
    if extra:
        raise CheckpointError(f"{where}: unexpected tensor(s) {extra[:5]}")
    for var, array in assignments:
        var.assign(array)
