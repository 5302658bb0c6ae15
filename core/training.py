"""The training driver both frameworks share: run directory, loop, logging, checkpoints, grids.

A framework supplies its :class:`Trainer` (the generic :class:`core.trainer_base.FrameworkTrainer`
with that framework's model, optimizers and updates); everything else - the run's settings, data
order, fixed noise, resume, TensorBoard, progress bar, PNGs, crash safety - happens here once, so
``python -m torch_impl.train`` and ``python -m keras_impl.train`` behave identically.

Run directory ``RUN/``::

    snapshots/step_N/             what --resume reads: checkpoint, optimizer state and
                                  train_state.json of one step, switched in by one atomic rename
                                  (:mod:`core.snapshot`)
    checkpoint.safetensors        the newest snapshot's checkpoint (a hard link), and beside it
    optimizer_<framework>.safetensors, train_state.json  the newest snapshot's other files
    checkpoints/step_N.safetensors periodic checkpoints (the last --keep-checkpoints kept)
    config.json                   the model config
    tb/                           TensorBoard event files
    samples/epoch_NNN.png         fixed-noise sample grid (core.noise.latents(samples, dim, seed))
    reconstructions/epoch_NNN.png top row: data, bottom row: reconstruction
    interpolations/epoch_NNN.png  models with an encoder: walks between pairs of those images' codes
    samples/epoch_NNN.gif|.mp4, samples/epoch_NNN_frames.png  video models: the fixed-noise clips
    checkpoint_best.safetensors   with --eval-every: the step with the best first metric (core.train_eval)
    loss.png                      loss curves
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Protocol

import numpy as np

from . import snapshot as snapshots
from .checkpoint import CheckpointError, load_checkpoint, read_optimizer_state
from .configs import BaseConfig
from .data import ImageFolder, open_dataset
from .epoch_media import write_interpolations
from .errors import AgeError, ConfigError, OutputError, os_error_message
from .files import atomic_write_text
from .jsonio import finite_number, loads as json_loads
from .images import make_grid, save_grid, to_uint8
from .priors import fixed_latents
from .allocator import retain_freed_memory
from .cli import given, speed_options
from .objectives.base import Objective
from . import runconfig
from .registry import MODELS, get_model_spec, make_config
from .tblog import EventWriter
from .trainer_base import SpeedOptions
from .train_eval import PREFIX, TrainingEvaluation

log = logging.getLogger("age.train")

DEFAULT_EPOCHS = 10
#: Largest fixed-noise grid and batch a run may ask for (each is decoded or trained in one call).
MAX_SAMPLES = 1024
MAX_BATCH_SIZE = 4096
#: latents per walk in the per-epoch interpolation strips (ends included)
INTERPOLATION_STEPS = 8


class Trainer(Protocol):
    """What a framework provides (:class:`core.trainer_base.FrameworkTrainer`). Arrays are canonical
    NCHW float32."""

    framework: str
    config: BaseConfig
    optimizers: dict

    def restore_history(self, history: list[dict[str, float]]) -> None: ...

    def train_step(self, batch: np.ndarray, step: int) -> dict[str, float]: ...

    def generate(self, z: np.ndarray) -> np.ndarray: ...

    def sample(self, z: np.ndarray) -> np.ndarray: ...

    def reconstruct(self, batch: np.ndarray) -> np.ndarray | None: ...

    def interpolate(self, a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray | None: ...

    def save(self, path: Path, step: int) -> None: ...

    def load(self, path: Path) -> None: ...

    def save_optimizer(self, path: Path, step: int) -> None: ...

    def load_optimizer(self, path: Path) -> None: ...

    def log_extras(self, tb: EventWriter, run_root: Path, epoch: int, step: int, z: np.ndarray) -> None: ...


#: (config, objective, seed, total steps, speed options) -> the framework's trainer
TrainerFactory = Callable[[BaseConfig, Objective, int, int, SpeedOptions], Trainer]


class Run:
    """Paths and small files of one run directory."""

    def __init__(self, root: str | Path, framework: str):
        self.root = Path(root)
        self.framework = framework
        self.checkpoint = self.root / snapshots.CHECKPOINT
        self.checkpoints = self.root / "checkpoints"
        self.optimizer = self.root / snapshots.optimizer_name(framework)
        self.state = self.root / snapshots.STATE
        self.config = self.root / "config.json"
        self.samples = self.root / "samples"
        self.reconstructions = self.root / "reconstructions"
        self.interpolations = self.root / "interpolations"
        self.best = self.root / "checkpoint_best.safetensors"
        self.loss_png = self.root / "loss.png"
        self.tb = self.root / "tb"

    def has_run(self) -> bool:
        return snapshots.latest(self.root) is not None or self.checkpoint.exists()


#: Largest ``train_state.json`` read back: its loss history grows ~100-300 bytes a step, so this is
#: about a million steps (the whole history is rewritten with every snapshot).
MAX_STATE_BYTES = 256 * 1024 * 1024


def encode_state(state: dict) -> str:
    """``train_state.json``: keys sorted, so identical runs write identical bytes."""
    return json.dumps(state, sort_keys=True)


def read_state(path: Path) -> dict:
    """``train_state.json``, validated: step and epoch non-negative integers, history a list of
    ``{"step": int, <loss name>: finite number, ...}`` in increasing step order, none past ``step``."""
    where = f"training state {path}"
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{where}: cannot read ({exc.strerror or exc})") from None
    state = json_loads(text, where, CheckpointError, max_bytes=MAX_STATE_BYTES)
    if not isinstance(state, dict):
        raise CheckpointError(f"{where}: must be a JSON object, got {type(state).__name__}")
    for key in ("step", "epoch"):
        value = state.get(key)
        if type(value) is not int or value < 0:
            raise CheckpointError(f"{where}: {key!r} must be an integer >= 0, got {str(value)[:40]!r}")
    history = state.get("history")
    if not isinstance(history, list):
        raise CheckpointError(f"{where}: 'history' must be a list, got {type(history).__name__}")
    previous = 0
    for i, entry in enumerate(history):
        if not isinstance(entry, dict) or type(entry.get("step")) is not int:
            raise CheckpointError(f"{where}: history[{i}] must be an object with an integer 'step'")
        if not previous < entry["step"] <= state["step"]:
            raise CheckpointError(f"{where}: history[{i}] has step {entry['step']}, expected one in "
                                  f"({previous}, {state['step']}]")
        previous = entry["step"]
        bad = [k for k, v in entry.items() if k != "step" and not finite_number(v)]
        if bad:
            raise CheckpointError(f"{where}: history[{i}] value {bad[0]!r} is not a finite number")
    return state


def plot_losses(history: list[dict], path: Path) -> None:
    """loss.png: every loss term against the step (raw, and a moving average when long)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(dict.fromkeys(k for h in history for k in h if k != "step"))
    fig, axes = plt.subplots(len(keys) or 1, 1, figsize=(7, 2.2 * max(1, len(keys))), squeeze=False)
    steps = np.array([h["step"] for h in history])
    for ax, key in zip(axes[:, 0], keys):
        values = np.array([h.get(key, np.nan) for h in history], dtype=np.float64)
        ax.plot(steps, values, lw=0.6, alpha=0.5, label=key)
        if len(values) >= 20:
            k = max(5, len(values) // 50)
            smooth = np.convolve(values, np.ones(k) / k, mode="valid")
            ax.plot(steps[k - 1 :], smooth, lw=1.4, label=f"{key} (avg {k})")
        ax.set_ylabel(key)
        ax.legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    from .files import atomic_write_bytes

    atomic_write_bytes(path, buf.getvalue())


def run_model(out: str) -> str | None:
    """The model of the run in ``out`` (for parsing ``--resume`` flags without ``--model``)."""
    path = Path(out) / runconfig.FILENAME
    try:
        model = runconfig.read(path).get("model") if path.is_file() else None
    except CheckpointError:
        return None
    return model if isinstance(model, str) and model in MODELS else None


def _resolve_config(args: argparse.Namespace, model: str | None, run: Run) -> BaseConfig:
    """The run's config: on ``--resume`` the newest snapshot's (``model`` None: whatever it holds),
    else ``model``'s preset with its config flags applied."""
    def config_flags(name: str) -> dict:
        spec = get_model_spec(name)
        return given(args, [f for f in dataclasses.fields(spec.config_cls) if f.name in spec.config_flags])

    if args.resume:
        latest = snapshots.latest(run.root)
        if latest is None and run.checkpoint.is_file() and run.state.is_file():
            latest = snapshots.adopt_legacy(run.root, load_checkpoint(run.checkpoint).step,
                                            read_state(run.state)["step"], run.framework)
        if latest is None:
            raise AgeError(f"--resume: {run.root} holds no snapshot to resume from "
                           f"(no {snapshots.SNAPSHOTS}/step_N directory)")
        config = load_checkpoint(latest.checkpoint).config
        if model is not None and config.model != model:
            raise ConfigError(f"--resume: {latest.checkpoint} holds model {config.model!r}, not --model {model!r}")
        for name, value in config_flags(config.model).items():
            if getattr(config, name) != value:
                raise ConfigError(f"--resume: {latest.checkpoint} was trained with --{name.replace('_', '-')} "
                                  f"{getattr(config, name)}, not {value}")
        return config
    if run.has_run():
        raise AgeError(f"{run.root} already holds a run; pass --resume to continue it or choose another --out")
    return make_config(model, args.preset, **config_flags(model))


def open_training_data(config: BaseConfig, data: str) -> ImageFolder:
    """What ``--data`` names, as the model's registration says it trains on (``ModelSpec.data``):
    an ImageFolder of images, or a folder of clips (:mod:`core.video_data`) cut to the config's
    ``num_frames``; both load [0, 1] batches in the canonical layout."""
    kind = get_model_spec(config.model).data
    if kind == "video":
        from .video_data import open_video_dataset

        return open_video_dataset(data, config.num_frames, config.image_size, config.in_channels)
    return open_dataset(data, config.image_size, config.in_channels)


class _Loop:
    def __init__(self, args: argparse.Namespace, trainer: Trainer, run: Run, data: ImageFolder, seed: int):
        self.args, self.trainer, self.run, self.data = args, trainer, run, data
        cfg = trainer.config
        #: fixed-noise latents (None for a model with no prior to sample: an autoencoder)
        self.fixed_z = fixed_latents(cfg, args.samples, seed)
        self.recon_batch = data.load(np.linspace(0, len(data) - 1, min(8, len(data))).astype(int))
        self.tb = EventWriter(run.tb)
        self.state = {"step": 0, "epoch": 0, "history": []}
        #: metrics during training (``--eval-every``), or None
        self.evaluation = (TrainingEvaluation(cfg, data, args.eval_n, args.eval_metrics, seed)
                           if args.eval_every else None)
        self.best: float | None = None

    def evaluate(self, step: int) -> None:
        """The metrics of ``step`` into its history entry and TensorBoard; a new best criterion
        value writes ``checkpoint_best.safetensors``."""
        values = self.evaluation.measure(self.trainer)
        entry = self.state["history"][-1]
        for name, value in values.items():
            entry[PREFIX + name] = value
            self.tb.scalar(f"eval/{name}", value, step)
        value = values[self.evaluation.criterion]
        if self.evaluation.better(value, self.best):
            self.best = value
            self.trainer.save(self.run.best, step)
            log.info("step %d: %s; best %s so far -> %s", step, ", ".join(f"{k} {v:.5g}" for k, v in values.items()),
                     self.evaluation.criterion, self.run.best)
        else:
            log.info("step %d: %s", step, ", ".join(f"{k} {v:.5g}" for k, v in values.items()))

    def snapshot(self, step: int, periodic: bool) -> None:
        """Write the resumable state of ``step`` as one snapshot (:mod:`core.snapshot`), then the
        periodic checkpoint. Weights or optimizer state that are no longer finite are never
        written: the run stops and the last good snapshot stays the newest."""
        run, trainer = self.run, self.trainer
        self.state["step"] = step
        state_text = encode_state(self.state)
        writers = {
            snapshots.CHECKPOINT: lambda path: trainer.save(path, step),
            snapshots.optimizer_name(run.framework): lambda path: trainer.save_optimizer(path, step),
            snapshots.STATE: lambda path: atomic_write_text(path, state_text),
        }
        try:
            snapshots.write(run.root, step, writers, run.framework)
        except CheckpointError as exc:
            good = snapshots.latest(run.root)
            kept = f"the last good snapshot ({good.root}, step {good.step}) is kept" if good else "nothing was saved"
            raise AgeError(f"step {step}: cannot save the training state ({exc}); stopping, {kept}") from None
        if periodic:
            path = run.checkpoints / f"step_{step:07d}.safetensors"
            trainer.save(path, step)
            kept = sorted(run.checkpoints.glob("step_*.safetensors"))
            for old in kept[: max(0, len(kept) - self.args.keep_checkpoints)]:
                old.unlink(missing_ok=True)
        self.tb.flush()

    def grids(self, epoch: int, step: int) -> None:
        from .images import encode_png

        run = self.run
        if self.fixed_z is not None:
            samples = to_uint8(self.trainer.sample(self.fixed_z))
            save_grid(samples, run.samples / f"epoch_{epoch:03d}.png")
            grid = make_grid(samples)
            self.tb.image("samples", encode_png(samples), grid.shape[0], grid.shape[1], step)
        recon = self.trainer.reconstruct(self.recon_batch)
        if recon is not None:
            pair = np.concatenate([to_uint8(self.recon_batch), to_uint8(recon)])
            save_grid(pair, run.reconstructions / f"epoch_{epoch:03d}.png", nrow=len(self.recon_batch))
            grid = make_grid(pair, nrow=len(self.recon_batch))
            self.tb.image("reconstructions", encode_png(pair, nrow=len(self.recon_batch)), grid.shape[0],
                          grid.shape[1], step)
        half = len(self.recon_batch) // 2
        walks = self.trainer.interpolate(self.recon_batch[:half], self.recon_batch[half : 2 * half],
                                         INTERPOLATION_STEPS) if half else None
        if walks is not None:
            write_interpolations(to_uint8(walks), run.interpolations, epoch, step, self.tb)
        self.trainer.log_extras(self.tb, run.root, epoch, step, self.fixed_z)
        if self.state["history"]:
            plot_losses(self.state["history"], run.loss_png)


class StepBoundaryInterrupts:
    """Ctrl-C (SIGINT) takes effect between training steps, never inside one.

    A step may apply several updates (a GAN's critic, then its generator): an interrupt between
    them, saved as the previous step, would replay half a step on ``--resume``. Inside
    :meth:`deferred` a SIGINT is only noted, and :meth:`check` raises it at the next step boundary;
    a second Ctrl-C inside the same step stops at once without saving (``mid_step``). Outside the
    main thread (where signal handlers cannot be set) interrupts behave as usual.
    """

    def __init__(self) -> None:
        self.pending = False
        self.mid_step = False

    def _note(self, signum: int, frame: object) -> None:
        if self.pending:
            self.mid_step = True
            raise KeyboardInterrupt
        self.pending = True
        log.warning("interrupt: finishing step and saving a snapshot (Ctrl-C again to stop without saving)")

    @contextmanager
    def deferred(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, self._note)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def check(self) -> None:
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


def resume(run: Run, trainer: Trainer, loop: "_Loop") -> int:
    """Load the newest snapshot into ``trainer`` and ``loop``; returns its step.

    The checkpoint, the optimizer state (when this framework wrote one) and the training state
    must all record the snapshot's step, or nothing is resumed.
    """
    latest = snapshots.latest(run.root)
    assert latest is not None  # _resolve_config checked
    state = read_state(latest.state)
    recorded = {latest.checkpoint.name: load_checkpoint(latest.checkpoint).step, latest.state.name: state["step"]}
    optimizer = latest.optimizer(run.framework)
    if optimizer.exists():
        recorded[optimizer.name] = read_optimizer_state(optimizer, run.framework, trainer.optimizers).step
    snapshots.check_steps(latest, recorded)
    trainer.load(latest.checkpoint)
    loop.state["history"] = state["history"]
    loop.state["epoch"] = state["epoch"]
    if loop.evaluation is not None:
        loop.best = loop.evaluation.best_in(state["history"])
    trainer.restore_history(loop.state["history"])
    if optimizer.exists():
        trainer.load_optimizer(optimizer)
    else:
        log.warning("no %s optimizer state in %s: resuming with a fresh optimizer", run.framework, latest.root)
    log.info("resuming at step %d from %s", latest.step, latest.root)
    return latest.step


def run_training(args: argparse.Namespace, framework: str, make_trainer: TrainerFactory) -> Path:
    """Train as ``args`` say; returns the run directory. Raises :class:`AgeError` on bad input."""
    run = Run(args.out, framework)
    model = args.model or (run_model(str(run.root)) if args.resume else None)
    if model is None and not args.resume:
        raise ConfigError(f"--model is required for a new run; one of {', '.join(sorted(MODELS))}")
    config = _resolve_config(args, model, run)
    model = config.model
    settings = runconfig.resolve(args, model, run.root, args.resume)
    if not 1 <= settings.batch_size <= MAX_BATCH_SIZE:
        raise ConfigError(f"--batch-size must be between 1 and {MAX_BATCH_SIZE}, got {settings.batch_size}")
    if not 1 <= args.samples <= MAX_SAMPLES:  # the grid is drawn every epoch: fail now, not then
        raise ConfigError(f"--samples must be between 1 and {MAX_SAMPLES}, got {args.samples}")
    if args.keep_checkpoints < 0 or args.checkpoint_every < 0 or args.eval_every < 0:
        raise ConfigError("--keep-checkpoints, --checkpoint-every and --eval-every must be >= 0")
    data = open_training_data(config, args.data)
    per_epoch = data.batches_per_epoch(settings.batch_size)
    if args.steps is not None:
        if args.steps <= 0:
            raise ConfigError("--steps must be positive")
        total = args.steps
    else:
        epochs = DEFAULT_EPOCHS if args.epochs is None else args.epochs
        if epochs <= 0:
            raise ConfigError("--epochs must be positive")
        total = epochs * per_epoch
    try:
        run.root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"--out {run.root}: cannot create the run directory ({exc.strerror or exc})") from None
    snapshots.sweep_orphans(run.root)
    atomic_write_text(run.config, json.dumps(json.loads(config.to_json()), indent=2, sort_keys=True))
    log.info("%s: %s (%s) on %d samples from %s, %d steps of batch %d (%d per epoch) -> %s",
             framework, config.model, "resumed" if args.resume else f"{args.preset} preset", len(data), data.root,
             total, settings.batch_size, per_epoch,
             run.root)
    log.info("%s objective: %s", settings.objective,
             ", ".join(f"{k}={v}" for k, v in settings.hyperparameters.to_dict().items()))

    objective = settings.objective_class(config, settings.hyperparameters)
    if not settings.schedule_steps:  # a new run (or one from before it was recorded): plan over this length
        settings = dataclasses.replace(settings, schedule_steps=total)
    runconfig.write(run.root, settings)
    speed = speed_options(args)
    log.info("speed options: --memory-format %s%s", speed.memory_format, " --compile" if speed.compile else "")
    trainer = make_trainer(config, objective, settings.seed, settings.schedule_steps, speed)
    loop = _Loop(args, trainer, run, data, settings.seed)
    step = 0
    if args.resume:
        step = resume(run, trainer, loop)
        if step >= total:
            log.info("run already has %d >= %d steps; nothing to do", step, total)
            return run.root

    from tqdm import tqdm

    bar = tqdm(total=total, initial=step, unit="step", disable=args.no_progress, dynamic_ncols=True,
               file=sys.stderr, mininterval=1.0)
    started = time.time()
    epoch = step // per_epoch
    interrupts = StepBoundaryInterrupts()
    try:
        while step < total:
            for batch in data.batches(settings.batch_size, settings.seed, epoch, skip=step - epoch * per_epoch):
                interrupts.check()
                with interrupts.deferred():  # the step and its bookkeeping happen whole or not at all
                    losses = trainer.train_step(batch, step)
                    step += 1
                    if not all(math.isfinite(v) for v in losses.values()):
                        raise AgeError(f"step {step}: non-finite loss {losses}; stopping (last good snapshot kept)")
                    loop.state["history"].append({"step": step, **{k: float(v) for k, v in losses.items()}})
                    if args.eval_every and step % args.eval_every == 0:
                        loop.evaluate(step)
                    for key, value in losses.items():
                        loop.tb.scalar(f"loss/{key}", value, step)
                    bar.update(1)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in list(losses.items())[:3]}, refresh=False)
                    if args.checkpoint_every and step % args.checkpoint_every == 0:
                        loop.snapshot(step, periodic=True)
                if step >= total:
                    break
            epoch_done = step % per_epoch == 0 or step >= total
            with interrupts.deferred():
                loop.state["epoch"] = epoch + 1 if step % per_epoch == 0 else epoch
                if epoch_done:
                    loop.snapshot(step, periodic=not args.checkpoint_every)  # first: refuses non-finite state
                    loop.grids(epoch + 1, step)
                    log.info("epoch %d done (step %d/%d, %s)", epoch + 1, step, total,
                             ", ".join(f"{k}={v:.4g}" for k, v in losses.items()))
            epoch += 1
        interrupts.check()  # a Ctrl-C during the last step: the run is complete and saved; say so
    except KeyboardInterrupt:
        bar.close()
        if interrupts.mid_step:
            log.warning("interrupted twice: not saving a half-done step; the last snapshot is kept")
        else:
            log.warning("interrupted after step %d: saving a snapshot", step)
            loop.snapshot(step, periodic=False)
        raise
    finally:
        bar.close()
        loop.tb.close()
    log.info("done: %d steps in %.1fs; checkpoint %s", step, time.time() - started, run.checkpoint)
    return run.root


def main(framework: str, make_trainer: TrainerFactory, argv: list[str] | None = None) -> int:
    """CLI entry point shared by both trainers; bad input -> one error line, exit code 2."""
    from .cli import model_of, objective_of, train_parser

    model = model_of(argv, run_model)
    parser = train_parser(f"python -m {framework}_impl.train", model, objective_of(argv, model, runconfig.stored_objective))
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    retain_freed_memory()  # a step's large blocks are reused, not unmapped and faulted in again (core.allocator)
    try:
        run_training(args, framework, make_trainer)
    except AgeError as exc:
        log.error("%s", exc)
        return 2
    except OSError as exc:  # reading data, TensorBoard files, ...: one line naming the path
        log.error("%s", os_error_message(exc))
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
