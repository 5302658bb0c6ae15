"""An interpolation's decoded steps as one file (shared by the CLI and the server).

``images`` are the uint8 steps :meth:`runtime.GeneratorSession.interpolate` returns.

Image models (``(steps, H, W, C)``):

* ``png``: a grid of the steps, one row (``nrow`` steps per row, default all of them);
* ``gif`` / ``mp4`` (mp4 needs imageio-ffmpeg): an animation, one step per frame (``nrow`` does
  not apply: refused);
* ``npy``: the raw uint8 array.

Video models (``(steps, T, H, W, C)``): what their other outputs are, ``gif`` / ``mp4`` with the
step videos side by side in one row (or ``nrow`` per row), or ``npy``; no ``png``.
"""

from __future__ import annotations

import numpy as np

from core import images as core_images


def formats(is_video: bool) -> tuple[str, ...]:
    """The formats an interpolation can be written as; the first is the default."""
    if is_video:
        return core_images.output_formats(True)
    return ("png", "gif", "mp4", "npy") if core_images.mp4_available() else ("png", "gif", "npy")


def format_refusal(fmt: str, is_video: bool) -> str | None:
    """Why ``fmt`` cannot hold an interpolation of this kind of model (None when it can); callers
    add the model's name."""
    allowed = formats(is_video)
    if fmt in allowed:
        return None
    if fmt == "mp4":
        return (f"MP4 output needs the optional package {core_images.MP4_PACKAGE} "
                f"(pip install {core_images.MP4_PACKAGE}); use {' or '.join(allowed)}")
    if is_video:
        return f"is a video generator: its interpolation is a {' or '.join(allowed)}, not {fmt}"
    return f"unknown format {fmt!r}; use {' or '.join(allowed)}"


def layout_refusal(fmt: str, is_video: bool, steps: int, nrow: int | None) -> str | None:
    """Why ``nrow`` does not apply (None when it does); the message starts with ``nrow``."""
    if nrow is None:
        return None
    if not is_video and fmt in ("gif", "mp4"):
        return "nrow: an animation of still images shows one step per frame; nrow applies to png strips and video grids"
    try:
        core_images.check_layout(steps, nrow=nrow)
    except ValueError as exc:
        return str(exc)
    return None


def encode(images: np.ndarray, fmt: str, is_video: bool, nrow: int | None = None, fps: float = 8.0) -> bytes:
    """The bytes of one ``fmt`` file showing the interpolation ``images`` (see the module docstring)."""
    images = np.asarray(images)
    why = format_refusal(fmt, is_video) or layout_refusal(fmt, is_video, len(images), nrow)
    if why is not None:
        raise ValueError(why)
    if fmt == "npy":
        return core_images.encode(images, "npy", None, fps)
    if not is_video and fmt in ("gif", "mp4"):
        return core_images.encode(images[None], fmt, None, fps)  # one "video" whose frames are the steps
    return core_images.encode(images, fmt, nrow or len(images), fps)
