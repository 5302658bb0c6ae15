"""Exceptions shared by every package. CLIs catch :class:`AgeError` and exit non-zero with its message."""


class AgeError(Exception):
    """Base class: a user-facing error whose message names the file or field at fault."""


class ConfigError(AgeError, ValueError):
    """A config, preset, model name or CLI value is invalid."""


class CheckpointError(AgeError):
    """A checkpoint file is missing, corrupt, of another model, or its tensors don't match."""


class DataError(AgeError):
    """A data directory or image file is missing, empty or unreadable."""


class ExportError(AgeError):
    """An ONNX export failed, or the exported graph does not match its source."""


class ModelFileError(AgeError):
    """An ONNX model file given to the runtime is missing, corrupt or not one of ours."""


class OutputError(AgeError):
    """A file could not be written (missing or read-only folder, a directory in the way, disk full)."""


def os_error_message(exc: OSError, action: str = "") -> str:
    """One line for an OS error that names the path: ``"cannot write out.png: No space left on device"``."""
    where = exc.filename if exc.filename is not None else "?"
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    what = exc.strerror or type(exc).__name__
    return f"{action + ' ' if action else ''}{where}: {what}"
