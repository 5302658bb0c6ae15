"""uint8 images -> response bytes: a PNG grid, an animated GIF grid (video) or a ``.npy`` array."""

from __future__ import annotations

import io

import numpy as np

from spec import images as spec_images

MEDIA_TYPES = {"png": "image/png", "gif": "image/gif", "npy": "application/octet-stream"}


def encode(images: np.ndarray, fmt: str, nrow: int | None = None, fps: float = 8.0) -> bytes:
    """``images``: uint8 (N, H, W, C), or (N, T, H, W, C) for video."""
    if fmt == "npy":
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(images), allow_pickle=False)
        return buf.getvalue()
    if fmt == "gif":
        return spec_images.encode_gif(images, nrow=nrow, fps=fps)
    if fmt == "png":
        return spec_images.encode_png(images, nrow=nrow)
    raise ValueError(f"unknown format {fmt!r}")


def filename(model: str, fmt: str) -> str:
    return f"{model}.{fmt}"
