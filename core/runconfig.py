"""A run's resolved settings, ``RUN/hyperparameters.json``: what reproduces it from its directory.

Written when a run starts and read back by ``--resume``: the model, seed, batch size, the data,
the length the run was planned with (``schedule_steps``: a cyclical KL schedule's cycles are cut
from it, so extending a run continues its cycles instead of re-cutting them) and the objective's
resolved hyperparameters (defaults, then the model's, then the flags). A resumed run takes them
from the file; a flag that contradicts the file is refused rather than silently changing a run
halfway (extend a run with ``--steps``/``--epochs``; start a new one to change it). A run from
before this file existed resumes with the flags and defaults, with a warning.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cli import given, hyperparameter_defaults, hyperparameter_fields
from .errors import CheckpointError, ConfigError
from .files import atomic_write_text
from .jsonio import loads as json_loads
from .noise import check_seed
from .objectives.base import Hyperparameters
from .registry import get_model_spec

log = logging.getLogger("age.train")

FILENAME = "hyperparameters.json"
#: A settings file is a few hundred bytes; anything far larger is not one.
MAX_BYTES = 1 << 20
DEFAULT_SEED = 0


@dataclass(frozen=True)
class RunSettings:
    model: str
    seed: int
    batch_size: int
    hyperparameters: Hyperparameters
    #: the run's planned length when it started (what step schedules spanning the run use)
    schedule_steps: int = 0
    data: str = ""
    #: the objective's name (the model's default unless ``--objective`` chose another)
    objective: str = ""

    @property
    def objective_class(self) -> type:
        return get_model_spec(self.model).objective_choice(self.objective or None).objective

    def to_json(self) -> str:
        return json.dumps({"model": self.model, "objective": self.objective, "seed": self.seed,
                           "batch_size": self.batch_size, "schedule_steps": self.schedule_steps, "data": self.data,
                           "hyperparameters": self.hyperparameters.to_dict()}, indent=2, sort_keys=True)


def read(path: Path) -> dict[str, Any]:
    """The stored settings, shape-checked (values are checked where they are used)."""
    where = f"run settings {path}"
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{where}: cannot read ({exc.strerror or exc})") from None
    values = json_loads(text, where, CheckpointError, max_bytes=MAX_BYTES)
    if not isinstance(values, dict) or not isinstance(values.get("hyperparameters"), dict):
        raise CheckpointError(f"{where}: must be an object with a 'hyperparameters' object")
    for key in ("seed", "batch_size", "schedule_steps"):
        if type(values.get(key, 0)) is not int or values.get(key, 0) < 0:
            raise CheckpointError(f"{where}: {key!r} must be an integer >= 0")
    for key in ("seed", "batch_size"):
        if key not in values:
            raise CheckpointError(f"{where}: {key!r} is missing")
    for key in ("model", "data", "objective"):
        if not isinstance(values.get(key, ""), str):
            raise CheckpointError(f"{where}: {key!r} must be a string")
    if "model" not in values:
        raise CheckpointError(f"{where}: 'model' is missing")
    return values


def stored_objective(run_root: str | Path) -> str | None:
    """The objective a run was started with, or None (no readable settings file): what
    ``--resume`` parses the flags of."""
    try:
        return read(Path(run_root) / FILENAME).get("objective")
    except CheckpointError:
        return None


def write(run_root: Path, settings: RunSettings) -> None:
    atomic_write_text(run_root / FILENAME, settings.to_json())


def resolve(args: argparse.Namespace, model: str, run_root: Path, resume: bool) -> RunSettings:
    """Defaults < model defaults < stored (on ``--resume``) < flags; a flag that differs from
    the stored value is refused, naming both. ``schedule_steps`` is the stored one, or 0 for a new
    run (the caller fills in the length it plans)."""
    spec = get_model_spec(model)
    stored_path = run_root / FILENAME
    stored = read(stored_path) if resume and stored_path.is_file() else None
    if resume and stored is None:
        log.warning("%s: no %s (a run from before it existed): resuming with the flags given and the model's "
                    "defaults; the optimizer state keeps the learning rates it was saved with", run_root, FILENAME)
    schedule_steps, data = 0, args.data
    requested = getattr(args, "objective", None)
    objective = requested
    if stored is not None:
        if stored.get("model") != model:
            raise ConfigError(f"--resume: {stored_path} is for model {stored.get('model')!r}, not {model!r}")
        kept = stored.get("objective") or spec.objective_choice().objective.name
        if requested is not None and requested != kept:
            raise ConfigError(f"--resume: --objective {requested} differs from the run's {kept} ({stored_path}); "
                              f"start a new run to change it")
        objective = kept
    choice = spec.objective_choice(objective)
    objective = choice.objective.name
    flags = given(args, hyperparameter_fields(model, objective))
    values = dict(hyperparameter_defaults(model, objective))
    if stored is not None:
        names = {f.name for f in hyperparameter_fields(model, objective)}
        missing = sorted(names - set(stored["hyperparameters"]))
        if missing:
            raise CheckpointError(f"run settings {stored_path}: hyperparameters {missing} are missing")
        values.update(stored["hyperparameters"])
        schedule_steps = stored.get("schedule_steps", 0)
        if stored.get("data") and stored["data"] != args.data:
            log.warning("--resume: --data %s differs from the data the run started on (%s)", args.data, stored["data"])
        top = {"seed": args.seed, "batch_size": args.batch_size}
        for name, value in [*flags.items(), *((k, v) for k, v in top.items() if v is not None)]:
            have = stored[name] if name in top else stored["hyperparameters"].get(name)
            if have != value:
                raise ConfigError(f"--resume: --{name.replace('_', '-')} {value} differs from the run's {have} "
                                  f"({stored_path}); start a new run to change it")
        seed, batch_size = stored["seed"], stored["batch_size"]
    else:
        values.update(flags)
        seed = DEFAULT_SEED if args.seed is None else args.seed
        batch_size = spec.batch_size if args.batch_size is None else args.batch_size
    try:
        hp = choice.objective.hyperparameters.from_dict(values, f"{model} {objective} hyperparameters")
    except ConfigError as exc:
        raise ConfigError(f"{exc} (flags {', '.join('--' + k.replace('_', '-') for k in flags) or 'none'})") from None
    check_seed(seed)
    return RunSettings(model, seed, batch_size, hp, schedule_steps, data, objective)
