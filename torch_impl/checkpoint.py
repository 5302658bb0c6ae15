"""torch model <-> canonical checkpoint (twin: ``keras_impl/checkpoint.py``).

Canonical tensors *are* torch's state dict (minus ``num_batches_tracked``, see
:mod:`spec.checkpoint`), so no layout rule is needed on this side.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import nn

from spec.checkpoint import check_tensors, load_checkpoint, save_checkpoint

from .models import build

log = logging.getLogger(__name__)

_SKIPPED_SUFFIX = ".num_batches_tracked"


def model_tensors(model: nn.Module) -> dict[str, np.ndarray]:
    """The model's canonical tensors: its state dict as NumPy, torch names and layouts."""
    return {
        name: t.detach().cpu().numpy().copy()
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
