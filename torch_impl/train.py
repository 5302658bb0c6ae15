"""``python -m torch_impl.train`` (twin: ``keras_impl/train.py``; flags: :mod:`core.cli`).

The loop, run directory and logging live in :mod:`core.training`, the objective's schedule in
:class:`core.trainer_base.FrameworkTrainer`; this file only says how torch builds a model and its
optimizers and runs one named update of :mod:`torch_impl.objectives`. Initial weights are drawn in
:mod:`core.init` from the seed, so both frameworks start from the same model.

How it computes (:class:`core.trainer_base.SpeedOptions`):

* ``--memory-format channels_last`` (the default): every 4-D parameter, buffer and image batch is
  channels_last (NHWC strides), every 5-D one channels_last_3d, so oneDNN's convolutions run
  without reordering their operands each call (on this project's 2-core AMD EPYC the seed
  150x150 VAE step took 2.8 CPU-s as NCHW, 1.0 channels_last with :mod:`core.allocator`'s setting).
  Only strides change: shapes, names and the canonical checkpoint are the same, and the numbers
  agree with ``contiguous`` (NCHW) to float rounding.
* ``--compile``: each update's forward and loss through ``torch.compile`` (backward compiled by
  AOTAutograd); the first step of each update pays the compilation.
"""

from __future__ import annotations

import logging
import sys
from typing import Callable

import numpy as np
import torch

from core.configs import BaseConfig
from core.objectives.base import Objective, Update
from core.trainer_base import Backend, FrameworkTrainer, SpeedOptions
from core.training import main as train_main

from .init import initialize
from .checkpoint import load_optimizers, load_tensors, save_model, save_optimizers
from .models import build
from .objectives import update_function
from .optimizers import Adam
from .parts import run_part

BACKEND = Backend("torch", run_part, save_model, load_tensors, save_optimizers, load_optimizers)

log = logging.getLogger(__name__)

#: tensor rank -> the channels-last memory format of that rank
CHANNELS_LAST = {4: torch.channels_last, 5: torch.channels_last_3d}


def memory_format_of(t: torch.Tensor, memory_format: str) -> torch.memory_format:
    """The torch memory format ``memory_format`` (``channels_last`` / ``contiguous``) means for ``t``."""
    if memory_format == "channels_last":
        return CHANNELS_LAST.get(t.dim(), torch.contiguous_format)
    return torch.contiguous_format


def to_memory_format(model: torch.nn.Module, memory_format: str) -> torch.nn.Module:
    """Re-stride every parameter and buffer of ``model`` in place (the same tensors, so optimizers
    built before or after hold them); names, shapes and values are unchanged."""
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            t.data = t.data.contiguous(memory_format=memory_format_of(t, memory_format))
    return model


def batch_tensor(array: np.ndarray, memory_format: str) -> torch.Tensor:
    """A canonical float32 array as a torch tensor in the trainer's memory format: 4-D images
    channels_last, other ranks as they are (a (B, T, C, H, W) clip's axes are not a 3-D conv's)."""
    t = torch.from_numpy(array)
    if memory_format == "channels_last" and t.dim() == 4:
        t = t.contiguous(memory_format=torch.channels_last)
    return t


def parameter_groups(model: torch.nn.Module) -> dict[str, list[torch.nn.Parameter]]:
    """The model's ``parameter_groups()`` (one per optimizer of its objective), or ``{"model": all}``."""
    hook = getattr(model, "parameter_groups", None)
    return dict(hook()) if hook else {"model": list(model.parameters())}


class Trainer(FrameworkTrainer):
    backend = BACKEND

    def build_model(self) -> torch.nn.Module:
        torch.manual_seed(self.seed)  # the framework's own RNG: dropout without injected masks
        model = initialize(build(self.config.model, self.config), self.seed)
        return to_memory_format(model, self.speed.memory_format)

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        groups = parameter_groups(self.model)
        self.updates: dict[str, Callable] = {}
        #: updates whose first (compiling) run is done
        self.compiled_ok: set[str] = set()
        return {o.name: Adam(groups[o.name], lr=o.lr, betas=o.betas, eps=o.eps) for o in self.objective.optimizers()}

    def _first_compiled_call(self, update: Update, args: tuple) -> dict[str, torch.Tensor]:
        """An update's first compiled run, forward and backward. An update that differentiates a gradient (a WGAN-GP
        penalty) cannot be compiled (AOTAutograd has no double backward): it is then run eagerly
        from here on, from the same buffers and RNG state, with a warning."""
        model = self.model
        buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
        rng = torch.get_rng_state()
        try:
            losses = self.update_fn(update)(*args)
            losses[update.loss].backward()
        except RuntimeError as exc:
            if "double backward" not in str(exc):
                raise
            log.warning("--compile: the %s update differentiates a gradient, which torch.compile cannot; "
                        "it runs eagerly", update.name)
            with torch.no_grad():
                for name, b in model.named_buffers():
                    b.copy_(buffers[name])
            torch.set_rng_state(rng)
            model.zero_grad(set_to_none=True)
            self.updates[update.name] = update_function(self.objective.name, update.name)
            losses = self.updates[update.name](*args)
            losses[update.loss].backward()
        self.compiled_ok.add(update.name)
        return losses

    def update_fn(self, update: Update) -> Callable:
        """The update's function (:mod:`torch_impl.objectives`), through ``torch.compile`` with ``--compile``."""
        fn = self.updates.get(update.name)
        if fn is None:
            fn = update_function(self.objective.name, update.name)
            if self.speed.compile:
                log.info("torch.compile: %s update (compiled on its first step)", update.name)
                fn = torch.compile(fn)
            self.updates[update.name] = fn
        return fn

    def run_update(self, update: Update, batch: np.ndarray, inputs: dict[str, np.ndarray]) -> dict[str, float]:
        model = self.model.train()
        fmt = self.speed.memory_format
        args = (model, batch_tensor(batch, fmt), {k: batch_tensor(v, fmt) for k, v in inputs.items()}, self.objective)
        optimizer = self.optimizers[update.optimizer]
        optimizer.zero_grad(set_to_none=True)
        if self.speed.compile and update.name not in self.compiled_ok:
            losses = self._first_compiled_call(update, args)
        else:
            losses = self.update_fn(update)(*args)
            losses[update.loss].backward()
        optimizer.step()
        return {k: float(v.detach()) for k, v in losses.items()}


def make_trainer(config: BaseConfig, objective: Objective, seed: int, total_steps: int = 1,
                 speed: SpeedOptions | None = None) -> Trainer:
    return Trainer(config, objective, seed, total_steps, speed)


def main(argv: list[str] | None = None) -> int:
    return train_main("torch", make_trainer, argv)


if __name__ == "__main__":
    sys.exit(main())
