"""Plumbing every framework trainer shares: sampling, reconstruction, checkpoint and optimizer I/O.

A framework hands over its functions once, as a :class:`Backend`; a trainer subclass then only
writes ``__init__`` (model + optimizers) and ``train_step``. Arrays crossing this boundary are
canonical NCHW float32, whatever the framework's own layout.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .checkpoint import load_checkpoint
from .configs import BaseConfig
from .registry import get_model_spec


@dataclass(frozen=True)
class Backend:
    """One framework's model functions (``torch_impl`` / ``keras_impl`` modules of the same names)."""

    framework: str
    #: run_part(model, part, *arrays) -> tuple of canonical arrays
    run_part: Callable[..., tuple[np.ndarray, ...]]
    save_model: Callable[[Any, Path, int], Path]
    load_tensors: Callable[[Any, Any, str], Any]
    #: save_optimizers({name: optimizer}, path, step) / load_optimizers({name: optimizer}, path)
    save_optimizers: Callable[[dict[str, Any], Path, int], None]
    load_optimizers: Callable[[dict[str, Any], Path], None]


class FrameworkTrainer:
    """Base of every trainer: a subclass sets ``backend`` and, in ``__init__``, ``model`` and ``optimizers``.

    ``sample`` decodes fixed noise through the model's ``sample_part`` (the registry part that maps
    z to an image); ``reconstruct`` encodes with the ``encoder`` part when the model has one.
    """

    backend: Backend
    sample_part: str = "decoder"

    def __init__(self, config: BaseConfig, args: argparse.Namespace):
        self.config, self.args = config, args
        self.model: Any = None
        self.optimizers: dict[str, Any] = {}

    @property
    def framework(self) -> str:
        return self.backend.framework

    def train_step(self, batch: np.ndarray, step: int) -> dict[str, float]:
        raise NotImplementedError

    def sample(self, z: np.ndarray) -> np.ndarray:
        return self.backend.run_part(self.model, self.sample_part, z)[0]

    def reconstruct(self, batch: np.ndarray) -> np.ndarray | None:
        if "encoder" not in get_model_spec(self.config.model).parts(self.config):
            return None
        mu = self.backend.run_part(self.model, "encoder", batch)[0]
        return self.sample(mu)

    def log_extras(self, tb: Any, run_root: Path, epoch: int, step: int, z: np.ndarray) -> None:
        """Model-specific per-epoch outputs (videos, parameter histograms); none by default."""

    def save(self, path: Path, step: int) -> None:
        self.backend.save_model(self.model, path, step)

    def load(self, path: Path) -> None:
        self.backend.load_tensors(self.model, load_checkpoint(path, self.config.model).tensors, str(path))

    def save_optimizer(self, path: Path, step: int) -> None:
        self.backend.save_optimizers(self.optimizers, path, step)

    def load_optimizer(self, path: Path) -> None:
        self.backend.load_optimizers(self.optimizers, path)
