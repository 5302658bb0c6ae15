"""A run's resumable state, written as one consistent snapshot that a crash cannot tear.

``--resume`` needs three files of the *same* step: the canonical checkpoint, the framework's
optimizer state and ``train_state.json`` (step, epoch, loss history). Written one after another
in place, a crash or a full disk between two of them left the checkpoint at step 10 and the
rest at step 5, and a resumed run replayed steps silently. So every snapshot is a directory::

    RUN/snapshots/step_0000010/checkpoint.safetensors
                               optimizer_torch.safetensors   (the writing framework's)
                               train_state.json

built under a temporary name (``RUN/snapshots/.tmp-step_0000010-XXXX``), every file fsync'd, and
switched into place by **one** atomic ``rename``: a ``step_N`` directory exists complete or not at
all, so the newest one is always a consistent resume point, whatever was killed when. Each of
its files also records the step, and :func:`check_steps` refuses a snapshot whose files disagree.
Older snapshots are pruned after the new one is in place, and the newest one's files are copied
(atomically; copies, not hard links, so editing them can never touch the snapshot) to
``RUN/checkpoint.safetensors``, ``RUN/optimizer_<framework>.safetensors`` and
``RUN/train_state.json`` for people and tools (never read by ``--resume``).

Temporary files and directories left by a killed writer are swept by :func:`sweep_orphans` when
the next run starts, in the run's own folders only.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import CheckpointError, OutputError
from .files import TEMP_SUFFIX, atomic_write_bytes

log = logging.getLogger("age.train")

SNAPSHOTS = "snapshots"
CHECKPOINT = "checkpoint.safetensors"
STATE = "train_state.json"
_STEP_DIR = re.compile(r"^step_(\d{7,})$")
_TEMP_DIR_PREFIX = ".tmp-"
#: complete snapshots kept (the newest, and one before it in case the newest is unreadable)
KEEP = 2


def optimizer_name(framework: str) -> str:
    return f"optimizer_{framework}.safetensors"


def step_dir_name(step: int) -> str:
    return f"step_{step:07d}"


@dataclass(frozen=True)
class Snapshot:
    """One complete ``RUN/snapshots/step_N`` directory."""

    root: Path
    step: int

    @property
    def checkpoint(self) -> Path:
        return self.root / CHECKPOINT

    @property
    def state(self) -> Path:
        return self.root / STATE

    def optimizer(self, framework: str) -> Path:
        return self.root / optimizer_name(framework)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: ``writer(path)`` writes one file of the snapshot at ``path``
Writer = Callable[[Path], None]


def write(run_root: Path, step: int, writers: dict[str, Writer], framework: str) -> Snapshot:
    """Write ``writers`` (file name -> writer) as the snapshot of ``step`` and publish it.

    Nothing of the new snapshot is visible until every file is written and synced; on any failure
    the temporary directory is removed and the previous snapshot stays the newest.
    """
    folder = run_root / SNAPSHOTS
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{_TEMP_DIR_PREFIX}{step_dir_name(step)}-", dir=folder))
    except OSError as exc:
        raise OutputError(f"cannot write a snapshot in {folder}: {exc.strerror or exc}") from None
    final = folder / step_dir_name(step)
    try:
        for name, writer in writers.items():
            writer(tmp / name)
        _fsync_dir(tmp)
        if final.exists():  # the same step saved twice (an interrupt right after an epoch's snapshot)
            shutil.rmtree(tmp)
        else:
            os.rename(tmp, final)
            _fsync_dir(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    snapshot = Snapshot(final, step)
    _prune(folder, keep_from=step)
    _publish(run_root, snapshot, framework)
    return snapshot


def _complete(folder: Path) -> list[Snapshot]:
    """Complete snapshots, oldest first."""
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        m = _STEP_DIR.match(entry.name)
        if m and entry.is_dir() and not entry.is_symlink():
            found.append(Snapshot(entry, int(m.group(1))))
    return sorted(found, key=lambda s: s.step)


def _prune(folder: Path, keep_from: int) -> None:
    snapshots = [s for s in _complete(folder) if s.step <= keep_from]
    for old in snapshots[: max(0, len(snapshots) - KEEP)]:
        shutil.rmtree(old.root, ignore_errors=True)


def _publish(run_root: Path, snapshot: Snapshot, framework: str) -> None:
    """Copy the snapshot's files to the run root, each atomically."""
    for name in (CHECKPOINT, optimizer_name(framework), STATE):
        source = snapshot.root / name
        if source.exists():
            atomic_write_bytes(run_root / name, source.read_bytes())


def latest(run_root: Path) -> Snapshot | None:
    """The newest complete snapshot of the run, or None for a run that has none."""
    snapshots = _complete(run_root / SNAPSHOTS)
    return snapshots[-1] if snapshots else None


def adopt_legacy(run_root: Path, checkpoint_step: int, state_step: int, framework: str) -> Snapshot:
    """Make a snapshot of a run written before snapshots existed (checkpoint.safetensors and
    train_state.json in the run root), if both record the same step; its optimizer state (an older
    format) is left out, so the run resumes with a fresh optimizer."""
    checkpoint, state = run_root / CHECKPOINT, run_root / STATE
    if checkpoint_step != state_step:
        raise CheckpointError(f"{run_root}: a run from before snapshots whose {CHECKPOINT} is at step "
                              f"{checkpoint_step} but {STATE} at step {state_step} (torn by a crash); it "
                              f"cannot be resumed without replaying or skipping steps")
    data = {CHECKPOINT: checkpoint.read_bytes(), STATE: state.read_bytes()}
    log.warning("%s: adopting a run written before snapshots at step %d (its optimizer restarts fresh)",
                run_root, checkpoint_step)
    return write(run_root, checkpoint_step, {name: (lambda path, b=b: atomic_write_bytes(path, b))
                                             for name, b in data.items()}, framework)


def check_steps(snapshot: Snapshot, recorded: dict[str, int]) -> None:
    """Every file of a snapshot must record the snapshot's own step (``recorded``: file -> step)."""
    wrong = {name: step for name, step in recorded.items() if step != snapshot.step}
    if wrong:
        detail = ", ".join(f"{name} says step {step}" for name, step in wrong.items())
        raise CheckpointError(f"snapshot {snapshot.root} is inconsistent: it is step {snapshot.step} but {detail}; "
                              f"refusing to resume from it (it was edited by hand, or copied together from "
                              f"different steps)")


#: the folders of a run directory that hold files written through temp files
RUN_FOLDERS = (".", SNAPSHOTS, "checkpoints", "samples", "reconstructions")


def is_run(run_root: Path) -> bool:
    """Whether ``run_root`` was written by a trainer (it has a config.json or snapshots)."""
    return (run_root / "config.json").is_file() or (run_root / SNAPSHOTS).is_dir()


def sweep_orphans(run_root: Path) -> int:
    """Remove what killed writes left behind in a run directory: ``.*.tmp`` files in the run's own
    folders (:data:`RUN_FOLDERS`, not recursively) and ``snapshots/.tmp-*`` directories. A folder
    that is not a run (:func:`is_run`) is left alone. Returns how many were removed (and logs it)."""
    if not is_run(run_root):
        return 0
    removed = 0
    for folder in RUN_FOLDERS:
        here = run_root / folder
        if not here.is_dir():
            continue
        for entry in here.iterdir():
            if entry.is_symlink():
                continue
            if entry.is_file() and entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX):
                entry.unlink(missing_ok=True)
                removed += 1
            elif folder == SNAPSHOTS and entry.is_dir() and entry.name.startswith(_TEMP_DIR_PREFIX):
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
    if removed:
        log.warning("%s: removed %d temporary file(s) left by an interrupted write", run_root, removed)
    return removed
