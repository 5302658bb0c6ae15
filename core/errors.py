"""Exceptions shared by every package. CLIs catch :class:`AgeError` and exit non-zero with its message."""


class AgeError(Exception):
    """Base class: a user-facing error whose message names the file or field at fault."""

    #: Keras re-raises exceptions from a layer's ``call`` with its argument dump prepended unless
    #: this attribute is set; our messages are already complete and must read the same in both
    #: frameworks.
    _keras_call_info_injected = True


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


class BatchTooSmall(ConfigError):
    """BatchNorm in training mode was given a single value per channel (its variance is undefined)."""


def require_batch_statistics(batch: int | None, height: int | None, width: int | None) -> None:
    """Both frameworks' BatchNorm, in training mode, call this with the input's canonical sizes.

    torch refuses one value per channel (its variance is 0/0) and Keras silently wrote NaN into
    the running variance; both now raise this same :class:`BatchTooSmall`. Unknown (symbolic)
    sizes are skipped here; the Keras layer checks them in the graph.
    """
    if batch is None or height is None or width is None:
        return
    if batch * height * width <= 1:
        raise BatchTooSmall(batch_too_small_message(batch, height, width))


def batch_too_small_message(batch: object, height: object, width: object) -> str:
    return (f"BatchNorm in training mode needs more than 1 value per channel, got batch {batch} of "
            f"{height}x{width} maps; use a larger --batch-size or more training images")
