"""Crash-safe file writing: a temp file in the target folder, fsync, then an atomic rename."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from .errors import OutputError

#: what every temp file of :func:`atomic_write_bytes` ends with (orphans of a killed write are swept by name)
TEMP_SUFFIX = ".tmp"


def _new_file_mode(path: Path) -> int:
    """The mode ``open(path, "w")`` would give: the old file's, or 0o666 minus the umask.

    ``mkstemp`` creates its file 0o600, which would leave every checkpoint, grid and ONNX file
    readable by its owner alone.
    """
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path``; a crash leaves the old file or the new one, never half of one.

    Any OS failure (a missing or read-only folder, a directory or file in the way, a full disk)
    raises :class:`~core.errors.OutputError` naming ``path``, after removing the temp file.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = _new_file_mode(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        tmp = None
    except FileExistsError:  # from mkdir: a file sits where a parent folder should be
        raise OutputError(f"cannot write {path}: a parent of it is a file, not a folder") from None
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_many(files: dict[Path, bytes]) -> list[Path]:
    """Write several files all or nothing: every temp file is written and synced first, and only
    then are they renamed into place, so a full disk or a bad path halfway through leaves none
    of the new files (and every old one) behind. Raises :class:`OutputError` naming the path."""
    staged: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            path = Path(path)
            if path.is_dir():
                raise OutputError(f"cannot write {path}: is a directory")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
                staged.append((tmp, path))
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.chmod(tmp, _new_file_mode(path))
            except FileExistsError:
                raise OutputError(f"cannot write {path}: a parent of it is a file, not a folder") from None
            except OSError as exc:
                raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
        for tmp, path in staged:
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
        staged = []
    finally:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
    return [Path(p) for p in files]
