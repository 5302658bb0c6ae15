"""What a run writes once per epoch beside its PNG grids: evaluation videos and interpolation strips.

Every file goes to the run directory and the same picture to TensorBoard (whose image plugin
shows an animated GIF as it is), written atomically, so an interrupted epoch never leaves half a
file behind.

* Video models: the fixed-noise clips as ``samples/epoch_NNN.gif`` (one clip per grid cell,
  animated), ``samples/epoch_NNN.mp4`` when the optional imageio-ffmpeg is installed, and
  ``samples/epoch_NNN_frames.png``, a strip per clip (one row a clip, one column a frame), which
  shows motion on paper.
* Models with an encoder and a prior: ``interpolations/epoch_NNN.png``, one row per pair of
  reconstruction images, from the first image's code to the second's (linear for Gaussian
  latents, spherical for latents on the unit sphere: :mod:`core.interpolation`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from .files import atomic_write_bytes
from .images import encode_gif, encode_mp4, encode_png, make_grid, mp4_available

log = logging.getLogger(__name__)

#: at most this many clips in the frame strip (a row each)
STRIP_CLIPS = 8


def _tb_image(tb: Any, tag: str, encoded: bytes, picture: np.ndarray, step: int) -> None:
    tb.image(tag, encoded, picture.shape[0], picture.shape[1], step)


def write_videos(videos: np.ndarray, folder: Path, epoch: int, step: int, tb: Any = None, fps: float = 8.0) -> list[Path]:
    """uint8 videos (N, T, H, W, C) -> GIF, MP4 (when available) and the frame strip PNG of ``epoch``;
    the paths written."""
    n, frames = videos.shape[:2]
    stem = folder / f"epoch_{epoch:03d}"
    gif = encode_gif(videos, fps=fps)
    written = [atomic_write_bytes(stem.with_suffix(".gif"), gif)]
    if mp4_available():
        written.append(atomic_write_bytes(stem.with_suffix(".mp4"), encode_mp4(videos, fps=fps)))
    clips = videos[:STRIP_CLIPS]
    strip_images = clips.reshape(-1, *videos.shape[2:])
    strip = encode_png(strip_images, nrow=frames)
    written.append(atomic_write_bytes(folder / f"epoch_{epoch:03d}_frames.png", strip))
    if tb is not None:
        first = make_grid(videos[:, 0])
        _tb_image(tb, "samples/video", gif, first, step)
        _tb_image(tb, "samples/frames", strip, make_grid(strip_images, nrow=frames), step)
    return written


def write_interpolations(rows: np.ndarray, folder: Path, epoch: int, step: int, tb: Any = None) -> Path:
    """uint8 (pairs, steps, H, W, C) -> ``interpolations/epoch_NNN.png``, a row per pair."""
    steps = rows.shape[1]
    images = rows.reshape(-1, *rows.shape[2:])
    png = encode_png(images, nrow=steps)
    path = atomic_write_bytes(folder / f"epoch_{epoch:03d}.png", png)
    if tb is not None:
        _tb_image(tb, "interpolations", png, make_grid(images, nrow=steps), step)
    return path
