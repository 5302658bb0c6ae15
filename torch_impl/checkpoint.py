"""torch model <-> canonical checkpoint (twin: ``keras_impl/checkpoint.py``).

Canonical tensors *are* torch's state dict (minus ``num_batches_tracked``, see
:mod:`core.checkpoint`), so no layout rule is needed on this side. A model trained channels_last
(``torch_impl/train.py``) only has other strides: tensors are written C-contiguous (the canonical
bytes), and loaded weights and optimizer moments take the live parameter's strides.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import nn

from core.checkpoint import (check_adam_hyperparameters, check_optimizer_value, check_tensors, load_checkpoint,
                             read_optimizer_state, save_checkpoint, save_optimizer_state)
from core.errors import CheckpointError
from core.jsonio import check_like

from .models import build

log = logging.getLogger(__name__)

_SKIPPED_SUFFIX = ".num_batches_tracked"


def model_tensors(model: nn.Module) -> dict[str, np.ndarray]:
    """The model's canonical tensors: its state dict as NumPy, torch names and layouts."""
    return {
        name: t.detach().cpu().contiguous().numpy().copy()
        for name, t in model.state_dict().items()
        if not name.endswith(_SKIPPED_SUFFIX)
    }


def expected_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {n: tuple(t.shape) for n, t in model.state_dict().items() if not n.endswith(_SKIPPED_SUFFIX)}


def load_tensors(model: nn.Module, tensors: Mapping[str, np.ndarray], source: str = "tensors") -> nn.Module:
    """Copy canonical tensors into ``model`` after checking names and shapes."""
    check_tensors(source, tensors, expected_shapes(model))
    state = model.state_dict()
    with torch.no_grad():
        for name, array in tensors.items():
            state[name].copy_(torch.from_numpy(np.ascontiguousarray(array)))
    return model


def save_model(model: nn.Module, path: str | os.PathLike, step: int = 0) -> Path:
    """Write ``model`` as a canonical checkpoint (atomic)."""
    return save_checkpoint(path, model_tensors(model), model.config, "torch", step)


def load_model(path: str | os.PathLike, expected_model: str | None = None) -> nn.Module:
    """Build the model a checkpoint describes (from either framework) and load its weights, in eval mode."""
    ckpt = load_checkpoint(path, expected_model)
    model = build(ckpt.model, ckpt.config)
    load_tensors(model, ckpt.tensors, str(path))
    log.debug("loaded %s (%s, written by %s, step %d)", path, ckpt.model, ckpt.framework, ckpt.step)
    return model.eval()


def save_optimizers(optimizers: Mapping[str, torch.optim.Optimizer], path: str | os.PathLike,
                    step: int = 0) -> None:
    """Optimizer states as one safetensors file: tensors ``<name>.state.<param index>.<key>``,
    hyper-parameters (``param_groups``) as JSON in the metadata."""
    tensors, groups = {}, {}
    for opt_name, optimizer in optimizers.items():
        sd = optimizer.state_dict()
        groups[opt_name] = sd["param_groups"]
        for idx, entry in sd["state"].items():
            for key, value in entry.items():
                value = value if torch.is_tensor(value) else torch.tensor(value)
                tensors[f"{opt_name}.state.{idx}.{key}"] = value.detach().cpu().contiguous().numpy()
    save_optimizer_state(path, tensors, "torch", step, groups)


def _optimizer_params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


#: The param_groups numbers a state file may set (checked by range); every other entry (the
#: parameter indices, amsgrad, maximize, capturable, ...) must equal the live optimizer's.
_TUNABLE = ("lr", "betas", "eps")
#: Adam's per-parameter state, and the role of each tensor (:data:`core.checkpoint.OPTIMIZER_VALUE_RULES`)
_ADAM_STATE = {"step": "count", "exp_avg": None, "exp_avg_sq": "second_moment"}


def _check_groups(where: str, name: str, groups: object, optimizer: torch.optim.Optimizer) -> None:
    live = optimizer.state_dict()["param_groups"]
    check_like(where, groups, live, CheckpointError, f"layout.{name}")
    for i, (group, want) in enumerate(zip(groups, live)):  # type: ignore[arg-type]
        check_adam_hyperparameters(f"{where}: layout.{name}[{i}]", group["lr"], group["betas"], group["eps"])
        for key, value in want.items():
            if key not in _TUNABLE and group[key] != (list(value) if isinstance(value, tuple) else value):
                raise CheckpointError(f"{where}: layout.{name}[{i}].{key} is {group[key]!r}; this optimizer "
                                      f"has {value!r}")


def load_optimizers(optimizers: Mapping[str, torch.optim.Optimizer], path: str | os.PathLike) -> None:
    """Restore :func:`save_optimizers`' file, validated against the live optimizers: the same
    param_groups (only lr, betas and eps may differ, within their ranges), and for every parameter
    of an optimizer that has stepped exactly Adam's state (``step`` a whole number >= 0,
    ``exp_avg``, and ``exp_avg_sq`` >= 0, of the parameter's shape)."""
    state = read_optimizer_state(path, "torch", optimizers)
    where = state.where
    for opt_name, optimizer in optimizers.items():
        _check_groups(where, opt_name, state.layout[opt_name], optimizer)
    states: dict[str, dict[int, dict]] = {name: {} for name in optimizers}
    for name, array in state.tensors.items():
        parts = name.split(".")
        if len(parts) != 4 or parts[0] not in optimizers or parts[1] != "state" or not parts[2].isdigit():
            raise CheckpointError(f"{where}: unexpected tensor {name!r} (expected <optimizer>.state.<index>.<key>)")
        opt_name, _, idx, key = parts
        params = _optimizer_params(optimizers[opt_name])
        if int(idx) >= len(params):
            raise CheckpointError(f"{where}: tensor {name!r} names parameter {idx}; {opt_name} has {len(params)}")
        if key not in _ADAM_STATE:
            raise CheckpointError(f"{where}: tensor {name!r}: {key!r} is not part of Adam's state "
                                  f"({', '.join(_ADAM_STATE)})")
        want = () if key == "step" else tuple(params[int(idx)].shape)
        if key == "step" and array.size == 1:
            array = array.reshape(())  # files written before 0-d tensors kept their shape
        if tuple(array.shape) != want or array.dtype != np.float32:
            raise CheckpointError(f"{where}: tensor {name!r} is {array.dtype} {tuple(array.shape)}, "
                                  f"expected float32 {want}")
        if _ADAM_STATE[key] is not None:
            check_optimizer_value(where, name, _ADAM_STATE[key], array)
        states[opt_name].setdefault(int(idx), {})[key] = torch.from_numpy(array.copy())
    for opt_name, optimizer in optimizers.items():
        held = [set(states[opt_name].get(i, {})) for i in range(len(_optimizer_params(optimizer)))]
        if any(held):  # an optimizer that has stepped holds Adam's full state for every parameter
            for idx, have in enumerate(held):
                if have != set(_ADAM_STATE):
                    raise CheckpointError(f"{where}: {opt_name} parameter {idx} has state {sorted(have)}; "
                                          f"every parameter needs {sorted(_ADAM_STATE)}")
        try:
            optimizer.load_state_dict({"state": states[opt_name], "param_groups": state.layout[opt_name]})
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{where}: {opt_name} does not fit this model ({exc})") from None
        _stride_like_params(optimizer)


def _stride_like_params(optimizer: torch.optim.Optimizer) -> None:
    """Loaded moments are C-contiguous; give each its parameter's strides (channels_last ones for a
    channels_last model), as the moments Adam creates itself have, so the update runs as fast."""
    for param in _optimizer_params(optimizer):
        entry = optimizer.state.get(param, {})
        for key, value in entry.items():
            if torch.is_tensor(value) and value.shape == param.shape and value.stride() != param.stride():
                entry[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)
