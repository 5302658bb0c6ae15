"""The one trainer, for every model and both frameworks: the objective's schedule run step by step.

:class:`FrameworkTrainer` knows nothing of any model or objective in particular. It asks the
objective (:mod:`core.objectives.base`) which updates run on a step and what their inputs are, and
asks the framework subclass (``torch_impl/train.py``, ``keras_impl/train.py``) to build the model,
its optimizers and to run one named update. Arrays crossing this boundary are canonical (NCHW)
float32; data arrive in [0, 1] and are mapped to the range the model generates in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .checkpoint import load_checkpoint
from .configs import BaseConfig
from .errors import ConfigError
from . import interpolation
from .epoch_media import write_videos
from .images import to_uint8
from .objectives.base import Objective, StepContext, Update
from .registry import ENCODER_PART, data_range, get_model_spec, sample_part


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


#: ``--memory-format`` choices: how torch lays out 4-D weights and images (and 5-D conv weights
#: and activations) while training; Keras computes channels-last whatever this says
MEMORY_FORMATS = ("channels_last", "contiguous")


@dataclass(frozen=True)
class SpeedOptions:
    """How a trainer computes, not what: the losses and weights agree to float rounding whatever
    these say, and checkpoints are canonical either way (``--memory-format``, ``--compile``)."""

    #: torch: ``channels_last`` (NHWC strides; 5-D convolutions channels_last_3d) or
    #: ``contiguous`` (NCHW, as torch allocates by default); Keras always runs NHWC
    memory_format: str = "channels_last"
    #: torch: each update through ``torch.compile``; Keras: each update's ``tf.function`` with
    #: ``jit_compile=True`` (XLA)
    compile: bool = False

    def __post_init__(self) -> None:
        if self.memory_format not in MEMORY_FORMATS:
            raise ConfigError(f"--memory-format must be one of {', '.join(MEMORY_FORMATS)}, "
                              f"got {self.memory_format!r}")
        if not isinstance(self.compile, bool):
            raise ConfigError(f"compile must be True or False, got {self.compile!r}")


class FrameworkTrainer:
    """Runs ``objective`` on a model of ``config``; a framework subclass implements the hooks
    ``build_model``, ``build_optimizers`` and ``run_update``; ``speed`` says how it computes
    (:class:`SpeedOptions`, the defaults when None)."""

    backend: Backend

    def __init__(self, config: BaseConfig, objective: Objective, seed: int, total_steps: int = 1,
                 speed: SpeedOptions | None = None):
        self.config, self.objective, self.seed, self.total_steps = config, objective, seed, total_steps
        self.speed = SpeedOptions() if speed is None else speed
        self.spec = get_model_spec(config.model)
        self.sample_part = sample_part(config)
        self.low, self.high = data_range(config)
        self.model: Any = self.build_model()
        self.optimizers: dict[str, Any] = self.build_optimizers()
        #: the newest losses of every update (carried on steps the update does not run)
        self.last: dict[str, dict[str, float]] = {}

    @property
    def framework(self) -> str:
        return self.backend.framework

    # -- framework hooks --------------------------------------------------------------------
    def build_model(self) -> Any:
        raise NotImplementedError

    def build_optimizers(self) -> dict[str, Any]:
        raise NotImplementedError

    def run_update(self, update: Update, batch: np.ndarray, inputs: dict[str, np.ndarray]) -> dict[str, float]:
        """One gradient step of ``update`` on ``batch`` (in the model's range); its losses."""
        raise NotImplementedError

    def training_scalars(self) -> dict[str, float]:
        """Model values logged with the losses every step (the twins' ``training_scalars()``)."""
        hook = getattr(self.model, "training_scalars", None)
        return dict(hook()) if hook else {}

    def summaries(self, z: np.ndarray) -> dict[str, np.ndarray]:
        """Model arrays summarised in TensorBoard per epoch (the twins' ``summaries(z)``)."""
        hook = getattr(self.model, "summaries", None)
        return dict(hook(z)) if hook else {}

    # -- the step -------------------------------------------------------------------------
    def to_model_range(self, batch: np.ndarray) -> np.ndarray:
        if (self.low, self.high) == (0.0, 1.0):
            return batch
        return (self.low + (self.high - self.low) * batch).astype(np.float32)

    def to_unit_range(self, x: np.ndarray) -> np.ndarray:
        if (self.low, self.high) == (0.0, 1.0):
            return x
        return ((x - self.low) / (self.high - self.low)).astype(np.float32)

    def train_step(self, batch: np.ndarray, step: int) -> dict[str, float]:
        """The objective's updates of ``step`` (0-based) on a [0, 1] batch; every loss (updates
        that did not run this step report their last values), the objective's logged values and
        the model's training scalars."""
        ctx = StepContext(self.seed, step, len(batch), self.total_steps)
        inputs = self.objective.step_inputs(ctx)
        x = self.to_model_range(batch)
        runs: dict[str, int] = {}
        for update in self.objective.schedule(step):
            occurrence = runs[update.name] = runs.get(update.name, -1) + 1
            self.last[update.name] = self.run_update(update, x, self.objective.update_inputs(inputs, update, occurrence))
        out: dict[str, float] = {}
        for update in self.objective.updates:
            out.update(self.last.get(update.name, {k: 0.0 for k in update.logs}))
        out.update(self.objective.logged(ctx))
        out.update(self.training_scalars())
        return out

    def restore_history(self, history: list[dict[str, float]]) -> None:
        """On ``--resume``: the last logged losses of every update, so a resumed run logs the same
        values on steps where an update does not run as an uninterrupted one."""
        last = history[-1] if history else {}
        self.last = {u.name: {k: float(last.get(k, 0.0)) for k in u.logs} for u in self.objective.updates
                     if all(k in last for k in u.logs)}

    # -- outputs ---------------------------------------------------------------------------
    def generate(self, z: np.ndarray) -> np.ndarray:
        """Generator output in [0, 1]: images (N, C, H, W) or videos (N, T, C, H, W)."""
        return self.to_unit_range(self.backend.run_part(self.model, self.sample_part, z)[0])

    def sample(self, z: np.ndarray) -> np.ndarray:
        """Images for the PNG grid: a video model's first frames."""
        out = self.generate(z)
        return out[:, 0] if out.ndim == 5 else out

    def encode(self, batch: np.ndarray) -> np.ndarray | None:
        """The encoder's first output (the posterior mean, or the code) for a [0, 1] batch; None
        for a model without an encoder."""
        if ENCODER_PART not in self.spec.parts(self.config):
            return None
        return self.backend.run_part(self.model, ENCODER_PART, self.to_model_range(batch))[0]

    def reconstruct(self, batch: np.ndarray) -> np.ndarray | None:
        """Encoder (its first output: the posterior mean or the code) then generator, for a [0, 1] batch."""
        code = self.encode(batch)
        if code is None:
            return None
        out = self.generate(code)
        return out[:, 0] if out.ndim == 5 else out

    def interpolate(self, a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray | None:
        """Decoded walks between the codes of two [0, 1] batches: (pairs, steps, C, H, W) in [0, 1]
        (a video model's first frames), along the prior's geometry (spherical for the sphere);
        None for a model without an encoder."""
        codes_a, codes_b = self.encode(a), self.encode(b)
        if codes_a is None:
            return None
        geometry = interpolation.geometry(self.spec.prior)
        rows = []
        for za, zb in zip(codes_a, codes_b):
            out = self.generate(interpolation.path(za, zb, steps, geometry))
            rows.append(out[:, 0] if out.ndim == 5 else out)
        return np.stack(rows)

    def log_extras(self, tb: Any, run_root: Path, epoch: int, step: int, z: np.ndarray | None) -> None:
        """Per-epoch outputs beyond the PNG grids: a video model's evaluation videos
        (:func:`core.epoch_media.write_videos`: GIF, MP4, frame strip; in TensorBoard too), and the
        model's summaries (a scalar mean, and a histogram when there is more than one value)."""
        if z is None:
            return
        out = self.generate(z)
        if out.ndim == 5:
            write_videos(to_uint8(out), run_root / "samples", epoch, step, tb)
        for name, values in self.summaries(z).items():
            tb.scalar(f"{name}/mean", float(np.mean(values)), step)
            if values.size > 1:
                tb.histogram(name, values, step)

    # -- state -----------------------------------------------------------------------------
    def save(self, path: Path, step: int) -> None:
        self.backend.save_model(self.model, path, step)

    def load(self, path: Path) -> None:
        self.backend.load_tensors(self.model, load_checkpoint(path, self.config.model).tensors, str(path))

    def save_optimizer(self, path: Path, step: int) -> None:
        self.backend.save_optimizers(self.optimizers, path, step)

    def load_optimizer(self, path: Path) -> None:
        self.backend.load_optimizers(self.optimizers, path)
