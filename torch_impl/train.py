"""``python -m torch_impl.train`` (twin: ``keras_impl/train.py``; flags: :mod:`core.cli`).

The loop, run directory and logging live in :mod:`core.training`, the objective's schedule in
:class:`core.trainer_base.FrameworkTrainer`; this file only says how torch builds a model and its
optimizers and runs one named update of :mod:`torch_impl.objectives`. Initial weights are drawn in
:mod:`core.init` from the seed, so both frameworks start from the same model.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from core.configs import BaseConfig
from core.objectives.base import Objective, Update
from core.trainer_base import Backend, FrameworkTrainer
from core.training import main as train_main

from .init import initialize
from .checkpoint import load_optimizers, load_tensors, save_model, save_optimizers
from .models import build
from .objectives import update_function
from .optimizers import Adam
from .parts import run_part

BACKEND = Backend("torch", run_part, save_model, load_tensors, save_optimizers, load_optimizers)


def parameter_groups(model: torch.nn.Module) -> dict[str, list[torch.nn.Parameter]]:
    """The model's ``parameter_groups()`` (one per optimizer of its objective), or ``{"model": all}``."""
    hook = getattr(model, "parameter_groups", None)
    return dict(hook()) if hook else {"model": list(model.parameters())}


class Trainer(FrameworkTrainer):
    backend = BACKEND

    def build_model(self) -> torch.nn.Module:
        torch.manual_seed(self.seed)  # the framework's own RNG: dropout without injected masks
        return initialize(build(self.config.model, self.config), self.seed)

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        groups = parameter_groups(self.model)
        return {o.name: Adam(groups[o.name], lr=o.lr, betas=o.betas, eps=o.eps) for o in self.objective.optimizers()}

    def run_update(self, update: Update, batch: np.ndarray, inputs: dict[str, np.ndarray]) -> dict[str, float]:
        model = self.model.train()
        fn = update_function(self.objective.name, update.name)
        losses = fn(model, torch.from_numpy(batch), {k: torch.from_numpy(v) for k, v in inputs.items()},
                    self.objective)
        optimizer = self.optimizers[update.optimizer]
        optimizer.zero_grad(set_to_none=True)
        losses[update.loss].backward()
        optimizer.step()
        return {k: float(v.detach()) for k, v in losses.items()}


def make_trainer(config: BaseConfig, objective: Objective, seed: int, total_steps: int = 1) -> Trainer:
    return Trainer(config, objective, seed, total_steps)


def main(argv: list[str] | None = None) -> int:
    return train_main("torch", make_trainer, argv)


if __name__ == "__main__":
    sys.exit(main())
