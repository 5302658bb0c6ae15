"""Image I/O shared by both trainers and the runtime (NumPy + Pillow only).

Conventions: model tensors are float32 in [0, 1], canonical layout (N, C, H, W); images handed
to users are uint8 (N, H, W, C), Pillow's layout.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ConfigError, DataError
from .files import atomic_write_bytes

#: Refuse images with more pixels than this *before* decoding them (decompression bombs).
MAX_IMAGE_PIXELS = 40_000_000
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class ImageTooLarge(DataError):
    """An image whose header declares more pixels than allowed (refused before decoding)."""


def open_image(source: str | os.PathLike | bytes, name: str | None = None, max_pixels: int | None = None) -> Image.Image:
    """Open and fully decode an image as RGB, refusing corrupt files and oversized ones.

    ``source`` is a path or the encoded bytes; ``name`` is what error messages call it;
    ``max_pixels`` defaults to :data:`MAX_IMAGE_PIXELS` as it is at call time.
    """
    if max_pixels is None:
        max_pixels = MAX_IMAGE_PIXELS
    label = name or (str(source) if not isinstance(source, bytes) else "image")
    if not isinstance(source, bytes):
        path = Path(source)
        if not path.is_file():
            raise DataError(f"image {label}: no such file")
        source = path.read_bytes()
    if not source:
        raise DataError(f"image {label}: empty file")
    try:
        with Image.open(io.BytesIO(source)) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise ImageTooLarge(f"image {label}: {w}x{h} pixels exceeds the limit of {max_pixels}")
            im.load()
            return im.convert("RGB")
    except DataError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own guard, far above any sane max_pixels
        raise ImageTooLarge(f"image {label}: {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"image {label}: not a readable image ({type(exc).__name__}: {exc})") from None


def resize_center_crop(im: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` (bilinear), then crop the centre ``size`` x ``size``.

    The same arithmetic as torchvision's ``Resize(size)`` + ``CenterCrop(size)``.
    """
    w, h = im.size
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    if (new_w, new_h) != (w, h):
        im = im.resize((new_w, new_h), Image.BILINEAR)
    left = int(round((new_w - size) / 2.0))
    top = int(round((new_h - size) / 2.0))
    return im.crop((left, top, left + size, top + size))


def load_image(source: str | os.PathLike | bytes, size: int, name: str | None = None,
               max_pixels: int | None = None) -> np.ndarray:
    """A model input: float32 (3, size, size) in [0, 1], resized and centre-cropped."""
    im = resize_center_crop(open_image(source, name, max_pixels), size)
    return np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / np.float32(255.0)


def to_uint8(x: np.ndarray, channels_first: bool = True) -> np.ndarray:
    """Float images in [0, 1] -> uint8, moving channels last: (..., C, H, W) -> (..., H, W, C)."""
    x = np.asarray(x, dtype=np.float32)
    if channels_first:
        x = np.moveaxis(x, -3, -1)
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


#: Frame rates a GIF/MP4 may ask for. GIF stores each frame's duration in hundredths of a second
#: in 16 bits (at most 655.35 s, at least 0.01 s): 0.1 fps (10 s a frame) to 100 fps covers every
#: sensible animation and keeps the encoders far from their limits.
FPS_RANGE = (0.1, 100.0)


def check_layout(n: int, nrow: int | None = None, fps: float | None = None) -> None:
    """Refuse grid/animation parameters outside their documented ranges, naming the field.

    ``nrow`` (images per grid row) is 1..n: more columns than images would only add blank width
    (``nrow=10**6`` asks for a grid millions of pixels wide). ``fps`` is in :data:`FPS_RANGE`.
    Raises :class:`~spec.errors.ConfigError` (a ``ValueError``) whose message starts with the field.
    """
    if nrow is not None and (isinstance(nrow, bool) or not isinstance(nrow, (int, np.integer))
                             or not 1 <= nrow <= max(1, n)):
        raise ConfigError(f"nrow must be an integer between 1 and n ({n}), got {nrow!r}")
    if fps is not None:
        low, high = FPS_RANGE
        if isinstance(fps, bool) or not isinstance(fps, (int, float, np.floating)) or not low <= fps <= high:
            raise ConfigError(f"fps must be a number between {low:g} and {high:g}, got {fps!r}")


def make_grid(images: np.ndarray, nrow: int | None = None, padding: int = 2, fill: int = 255) -> np.ndarray:
    """Tile uint8 (N, H, W, C) images into one (H', W', C) image, ``nrow`` images per row."""
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"make_grid wants uint8 (N, H, W, C), got {images.dtype} {images.shape}")
    n, h, w, c = images.shape
    if n == 0:
        raise ValueError("make_grid: no images")
    ncol = nrow or max(1, int(math.ceil(math.sqrt(n))))
    nrows = int(math.ceil(n / ncol))
    grid = np.full((nrows * (h + padding) + padding, ncol * (w + padding) + padding, c), fill, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, ncol)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y : y + h, x : x + w] = images[i]
    return grid


def _to_pil(array: np.ndarray) -> Image.Image:
    if array.shape[-1] == 1:
        return Image.fromarray(array[..., 0], mode="L")
    return Image.fromarray(array)


def encode_png(images: np.ndarray, nrow: int | None = None) -> bytes:
    buf = io.BytesIO()
    _to_pil(make_grid(images, nrow)).save(buf, format="PNG")
    return buf.getvalue()


def save_grid(images: np.ndarray, path: str | os.PathLike, nrow: int | None = None) -> Path:
    """Write uint8 (N, H, W, C) images as one PNG grid, atomically."""
    return atomic_write_bytes(path, encode_png(images, nrow))


def encode_gif(videos: np.ndarray, nrow: int | None = None, fps: float = 8.0) -> bytes:
    """Animated GIF of uint8 videos (N, T, H, W, C): frame t shows frame t of every video in a grid."""
    videos = np.asarray(videos)
    if videos.ndim != 5:
        raise ValueError(f"encode_gif wants (N, T, H, W, C), got {videos.shape}")
    frames = [_to_pil(make_grid(videos[:, t], nrow)).convert("RGB") for t in range(videos.shape[1])]
    buf = io.BytesIO()
    frames[0].save(
        buf, format="GIF", save_all=True, append_images=frames[1:], duration=int(1000 / fps), loop=0
    )
    return buf.getvalue()


def save_gif(videos: np.ndarray, path: str | os.PathLike, nrow: int | None = None, fps: float = 8.0) -> Path:
    return atomic_write_bytes(path, encode_gif(videos, nrow, fps))


#: pip package that ships a static ffmpeg; needed for MP4 only (GIF needs nothing beyond Pillow)
MP4_PACKAGE = "imageio-ffmpeg"


def mp4_available() -> bool:
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False
    return True


def encode_mp4(videos: np.ndarray, nrow: int | None = None, fps: float = 8.0, quality: float = 8.0) -> bytes:
    """H.264 MP4 (yuv420p, plays everywhere) of uint8 videos (N, T, H, W, C), laid out like
    :func:`encode_gif`. The grid is padded (white) to even sides, which yuv420p requires, instead of
    letting ffmpeg rescale it. Needs the optional ``imageio-ffmpeg`` package (its own ffmpeg binary)."""
    videos = np.asarray(videos)
    if videos.ndim != 5:
        raise ValueError(f"encode_mp4 wants (N, T, H, W, C), got {videos.shape}")
    try:
        import imageio_ffmpeg
    except ImportError:
        raise RuntimeError(f"MP4 output needs the optional package {MP4_PACKAGE}: pip install {MP4_PACKAGE} "
                           f"(or write .gif)") from None
    frames = [make_grid(videos[:, t], nrow) for t in range(videos.shape[1])]
    h, w = frames[0].shape[:2]
    ph, pw = h + h % 2, w + w % 2
    with tempfile.TemporaryDirectory(prefix="age_mp4_") as tmp:
        path = Path(tmp) / "video.mp4"
        writer = imageio_ffmpeg.write_frames(str(path), (pw, ph), fps=fps, codec="libx264", quality=quality,
                                             macro_block_size=1, ffmpeg_log_level="error")
        writer.send(None)  # start ffmpeg
        try:
            for frame in frames:
                rgb = np.full((ph, pw, 3), 255, dtype=np.uint8)
                rgb[:h, :w] = frame if frame.shape[-1] == 3 else frame[..., :1]
                writer.send(np.ascontiguousarray(rgb))
        finally:
            writer.close()
        return path.read_bytes()


# --------------------------------------------------------------------------- output formats

#: every output format, and its media type (HTTP responses)
MEDIA_TYPES = {"png": "image/png", "gif": "image/gif", "mp4": "video/mp4", "npy": "application/octet-stream"}


def output_formats(is_video: bool) -> tuple[str, ...]:
    """What a generator's output can be written as: a PNG grid of images; an animated GIF or
    (with imageio-ffmpeg) an MP4 of videos; the raw uint8 array as ``.npy`` for both. The first
    is the default."""
    if not is_video:
        return ("png", "npy")
    return ("gif", "mp4", "npy") if mp4_available() else ("gif", "npy")


def format_refusal(fmt: str, is_video: bool) -> str | None:
    """Why ``fmt`` does not suit this kind of generator (None when it does); callers add the name."""
    allowed = output_formats(is_video)
    if fmt in allowed:
        return None
    if fmt == "mp4" and is_video:
        return f"MP4 output needs the optional package {MP4_PACKAGE} (pip install {MP4_PACKAGE}); use gif or npy"
    if is_video:
        return f"is a video generator; use {' or '.join(allowed)}, not {fmt}"
    if fmt in MEDIA_TYPES:
        return f"generates still images, not videos; use {' or '.join(allowed)}, not {fmt}"
    return f"unknown format {fmt!r}; use {' or '.join(allowed)}"


def encode(images: np.ndarray, fmt: str, nrow: int | None = None, fps: float = 8.0) -> bytes:
    """uint8 images (N, H, W, C) or videos (N, T, H, W, C) as the bytes of one ``fmt`` file."""
    if fmt == "npy":
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(images), allow_pickle=False)
        return buf.getvalue()
    if fmt == "png":
        return encode_png(images, nrow)
    if fmt == "gif":
        return encode_gif(images, nrow, fps)
    if fmt == "mp4":
        return encode_mp4(images, nrow, fps)
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(MEDIA_TYPES)}")
