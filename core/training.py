"""The training driver both frameworks share: run directory, loop, logging, checkpoints, grids.

A framework supplies a :class:`Trainer` (one per model family); everything else - data order,
fixed noise, resume, TensorBoard, progress bar, PNGs, crash safety - happens here once, so
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
    loss.png                      loss curves
"""

from __future__ import annotations

import argparse
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
from .errors import AgeError, ConfigError, OutputError, os_error_message
from .files import atomic_write_text
from .jsonio import finite_number, loads as json_loads
from .images import make_grid, save_grid, to_uint8
from .noise import latents
from .registry import get_model_spec, make_config
from .tblog import EventWriter

log = logging.getLogger("age.train")

DEFAULT_EPOCHS = 10
#: Largest fixed-noise grid and batch a run may ask for (each is decoded or trained in one call).
MAX_SAMPLES = 1024
MAX_BATCH_SIZE = 4096


class Trainer(Protocol):
    """What a framework provides for one model family. Arrays are canonical NCHW float32."""

    framework: str
    config: BaseConfig

    def train_step(self, batch: np.ndarray, step: int) -> dict[str, float]: ...

    def sample(self, z: np.ndarray) -> np.ndarray: ...

    def reconstruct(self, batch: np.ndarray) -> np.ndarray | None: ...

    def save(self, path: Path, step: int) -> None: ...

    def load(self, path: Path) -> None: ...

    def save_optimizer(self, path: Path, step: int) -> None: ...

    def load_optimizer(self, path: Path) -> None: ...

    def log_extras(self, tb: EventWriter, run_root: Path, epoch: int, step: int, z: np.ndarray) -> None: ...


TrainerFactory = Callable[[BaseConfig, argparse.Namespace], Trainer]


def kl_weight(step: int, weight: float, warmup: int) -> float:
    """Linear KL warm-up: weight * min(1, step / warmup) (seed 004's annealing); warmup 0 = constant."""
    return weight if warmup <= 0 else weight * min(1.0, step / warmup)


#: independent noise streams of one training step (the second entry of the generator's seed)
NOISE_STREAMS = {"eps": 1, "prior": 2, "interpolation": 3}


def step_noise(seed: int, step: int, shape: tuple[int, ...], stream: str = "eps") -> np.ndarray:
    """Per-step noise, the same in both frameworks for the same (seed, step, stream).

    ``eps``: reparameterisation N(0, 1); ``prior``: generator input z ~ N(0, 1);
    ``interpolation``: the gradient penalty's per-sample U(0, 1) coefficients.
    """
    rng = np.random.default_rng([seed, NOISE_STREAMS[stream], step])
    if stream == "interpolation":
        return rng.random(shape, dtype=np.float32)
    return rng.standard_normal(shape, dtype=np.float32)


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


def _resolve_config(args: argparse.Namespace, run: Run) -> BaseConfig:
    if args.resume:
        latest = snapshots.latest(run.root)
        if latest is None and run.checkpoint.is_file() and run.state.is_file():
            latest = snapshots.adopt_legacy(run.root, load_checkpoint(run.checkpoint).step,
                                            read_state(run.state)["step"], run.framework)
        if latest is None:
            raise AgeError(f"--resume: {run.root} holds no snapshot to resume from "
                           f"(no {snapshots.SNAPSHOTS}/step_N directory)")
        config = load_checkpoint(latest.checkpoint).config
        if config.model != args.model:
            raise ConfigError(f"--resume: {latest.checkpoint} holds model {config.model!r}, not --model {args.model!r}")
        mode = getattr(config, "tanh_mode", None)
        if args.tanh_mode is not None and args.tanh_mode != mode:
            raise ConfigError(f"--resume: {latest.checkpoint} was trained with --tanh-mode {mode}, not {args.tanh_mode}")
        return config
    if run.has_run():
        raise AgeError(f"{run.root} already holds a run; pass --resume to continue it or choose another --out")
    overrides = {}
    if args.tanh_mode is not None:
        if args.model != "vaegan":
            raise ConfigError(f"--tanh-mode applies to --model vaegan, not {args.model!r}")
        overrides["tanh_mode"] = args.tanh_mode
    return make_config(args.model, args.preset, **overrides)


def _apply_model_defaults(args: argparse.Namespace) -> None:
    """--lr and --batch-size left unset take the model's defaults (registry ``train_defaults``)."""
    defaults = get_model_spec(args.model).train_defaults
    if args.lr is None:
        args.lr = float(defaults.get("lr", 1e-3))
    if args.batch_size is None:
        args.batch_size = int(defaults.get("batch_size", 64))


class _Loop:
    def __init__(self, args: argparse.Namespace, trainer: Trainer, run: Run, data: ImageFolder):
        self.args, self.trainer, self.run, self.data = args, trainer, run, data
        cfg = trainer.config
        self.fixed_z = latents(args.samples, cfg.latent_dim, args.seed)
        self.recon_batch = data.load(np.linspace(0, len(data) - 1, min(8, len(data))).astype(int))
        self.tb = EventWriter(run.tb)
        self.state = {"step": 0, "epoch": 0, "history": []}

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
        run = self.run
        samples = to_uint8(self.trainer.sample(self.fixed_z))
        save_grid(samples, run.samples / f"epoch_{epoch:03d}.png")
        recon = self.trainer.reconstruct(self.recon_batch)
        if recon is not None:
            pair = np.concatenate([to_uint8(self.recon_batch), to_uint8(recon)])
            save_grid(pair, run.reconstructions / f"epoch_{epoch:03d}.png", nrow=len(self.recon_batch))
        grid = make_grid(samples)
        from .images import encode_png

        self.tb.image("samples", encode_png(samples), grid.shape[0], grid.shape[1], step)
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
    config = _resolve_config(args, run)
    _apply_model_defaults(args)
    if args.n_critic <= 0 or args.gp_weight < 0:
        raise ConfigError("--n-critic must be positive and --gp-weight >= 0")
    if args.batch_size <= 0 or not (math.isfinite(args.lr) and args.lr > 0):
        raise ConfigError("--batch-size must be positive and --lr a positive finite number")
    for flag in ("kl_weight", "gp_weight", "adv_weight"):
        if not math.isfinite(getattr(args, flag)):
            raise ConfigError(f"--{flag.replace('_', '-')} must be a finite number")
    if not 1 <= args.samples <= MAX_SAMPLES:  # the grid is drawn every epoch: fail now, not then
        raise ConfigError(f"--samples must be between 1 and {MAX_SAMPLES}, got {args.samples}")
    if args.batch_size > MAX_BATCH_SIZE:
        raise ConfigError(f"--batch-size must be at most {MAX_BATCH_SIZE}, got {args.batch_size}")
    if args.keep_checkpoints < 0 or args.checkpoint_every < 0:
        raise ConfigError("--keep-checkpoints and --checkpoint-every must be >= 0")
    data = open_dataset(args.data, config.image_size)
    per_epoch = data.batches_per_epoch(args.batch_size)
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
    log.info("%s: %s (%s preset) on %d images from %s, %d steps of batch %d (%d per epoch) -> %s",
             framework, config.model, args.preset, len(data), data.root, total, args.batch_size, per_epoch, run.root)

    trainer = make_trainer(config, args)
    loop = _Loop(args, trainer, run, data)
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
            for batch in data.batches(args.batch_size, args.seed, epoch, skip=step - epoch * per_epoch):
                interrupts.check()
                with interrupts.deferred():  # the step and its bookkeeping happen whole or not at all
                    losses = trainer.train_step(batch, step)
                    step += 1
                    if not all(math.isfinite(v) for v in losses.values()):
                        raise AgeError(f"step {step}: non-finite loss {losses}; stopping (last good snapshot kept)")
                    loop.state["history"].append({"step": step, **{k: float(v) for k, v in losses.items()}})
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
    from .cli import train_parser

    args = train_parser(f"python -m {framework}_impl.train").parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
