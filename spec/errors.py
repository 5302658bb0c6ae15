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
