"""Image I/O shared by both trainers and the runtime (NumPy + Pillow only).

Conventions: model tensors are float32 in [0, 1], canonical layout (N, C, H, W); images handed
to users are uint8 (N, H, W, C), Pillow's layout.
"""

from __future__ import annotations

import io
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ConfigError, DataError
from .files import atomic_write_bytes

#: Refuse images with more pixels than this *before* decoding them (decompression bombs).
MAX_IMAGE_PIXELS = 40_000_000
#: Refuse images whose longer side is more than this many times their shorter side, from the header.
#: The centre crop of such an image keeps under 1% of it (a 1 x 4,000,000 strip is not a picture),
#: so it is refused with a message rather than stretched. It also caps the decoded size of thin
#: strips, which Pillow stores with an 8-byte pointer per row. The resize work does not depend on
#: it: :func:`resize_center_crop` resamples only the crop box, whatever the aspect ratio.
MAX_ASPECT_RATIO = 100
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")

#: 8-bit modes Pillow converts to RGB itself (CMYK, YCbCr, LAB and HSV by their colour formulas)
_RGB_MODES = frozenset({"1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"})
#: modes with an alpha band: composited on white
_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})
#: one band of more than 8 bits: scaled by the range the file declares (:func:`_integer_depth`)
_DEEP_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
#: TIFF tags that say what a sample is
_TIFF_BITS_PER_SAMPLE, _TIFF_SAMPLE_FORMAT = 258, 339


class ImageTooLarge(DataError):
    """An image whose header declares more pixels than allowed (refused before decoding)."""


def open_image(source: str | os.PathLike | bytes, name: str | None = None, max_pixels: int | None = None) -> Image.Image:
    """Open and fully decode an image as 8-bit RGB, refusing corrupt, oversized and odd ones.

    ``source`` is a path or the encoded bytes; ``name`` is what error messages call it;
    ``max_pixels`` defaults to :data:`MAX_IMAGE_PIXELS` as it is at call time.

    From the header, before any pixel is decoded, it refuses more than ``max_pixels`` pixels
    (:class:`ImageTooLarge`), an aspect ratio above :data:`MAX_ASPECT_RATIO`, and a mode whose value
    range is unknown. Every failure, an OS one included (a missing or unreadable file, a directory,
    a FIFO), is a :class:`~core.errors.DataError` whose message names the image. The conversion
    to RGB is :func:`_to_rgb`.
    """
    if max_pixels is None:
        max_pixels = MAX_IMAGE_PIXELS
    label = name or (str(source) if not isinstance(source, bytes) else "image")
    if isinstance(source, bytes):
        if not source:
            raise DataError(f"image {label}: empty file")
        return _decode(io.BytesIO(source), label, max_pixels)
    with _open_file(Path(source), label) as fh:
        return _decode(fh, label, max_pixels)


def _open_file(path: Path, label: str) -> BinaryIO:
    """``path`` opened for reading; a DataError naming it when it is not a readable, non-empty file.

    Opened non-blocking and checked with ``fstat`` on the open descriptor, so a FIFO named
    ``x.png`` cannot hang the caller and nothing can swap the file between the check and the read.
    """
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise DataError(f"image {label}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"image {label}: is a directory, not an image file") from None
    except OSError as exc:
        raise DataError(f"image {label}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise DataError(f"image {label}: is a directory, not an image file")
        if not stat.S_ISREG(info.st_mode):
            raise DataError(f"image {label}: not a regular file")
        if info.st_size == 0:
            raise DataError(f"image {label}: empty file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _decode(fh: BinaryIO, label: str, max_pixels: int) -> Image.Image:
    """Header checks, decoding and conversion of untrusted bytes: any failure is a DataError.

    Pillow's plugins raise whatever a malformed file leads them to (OSError, ValueError,
    SyntaxError, EOFError, struct.error, and TypeError for a TIFF tag of the wrong type among
    others), so every exception but MemoryError is "not a readable image" here; the code in this
    block only reads the file and converts what Pillow decoded from it.
    """
    try:
        im = Image.open(fh)
        _check_header(im, label, max_pixels)
        im.load()
        return _to_rgb(im, label)
    except (DataError, MemoryError):
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own guard, far above any sane max_pixels
        raise ImageTooLarge(f"image {label}: {exc}") from None
    except UnidentifiedImageError:
        raise DataError(f"image {label}: not a readable image (not a format Pillow knows)") from None
    except Exception as exc:  # noqa: BLE001 - see the docstring
        raise DataError(f"image {label}: not a readable image ({type(exc).__name__}: {exc})") from None


def _check_header(im: Image.Image, label: str, max_pixels: int) -> None:
    """Everything that can be refused before decoding: size, aspect ratio, mode."""
    w, h = im.size
    if w < 1 or h < 1:
        raise DataError(f"image {label}: {w}x{h} pixels, nothing to show")
    if w * h > max_pixels:
        raise ImageTooLarge(f"image {label}: {w}x{h} pixels exceeds the limit of {max_pixels}")
    if max(w, h) > MAX_ASPECT_RATIO * min(w, h):
        raise DataError(f"image {label}: {w}x{h} pixels, an aspect ratio of {max(w, h) / min(w, h):.0f}:1, "
                        f"exceeds the limit of {MAX_ASPECT_RATIO:g}:1")
    if im.mode in _DEEP_MODES:
        if im.mode != "F":
            _integer_depth(im, label)
    elif im.mode not in _RGB_MODES and im.mode not in _ALPHA_MODES:
        raise DataError(f"image {label}: unsupported image mode {im.mode}")


def _first(value: object, default: int) -> int | None:
    """A TIFF tag's first value (tags hold one value per sample); None when it is not an integer."""
    if value is None:
        return default
    if isinstance(value, (tuple, list)):
        value = value[0] if value else None
    return value if isinstance(value, int) else None


def _integer_depth(im: Image.Image, label: str) -> tuple[int, bool]:
    """(bits, signed) of a deep integer image, from what the file declares, never guessed.

    Pillow opens a 16-bit greyscale PNG as ``I;16``; a TIFF as ``I;16`` (unsigned 16 and, unscaled,
    12 bits), or as ``I`` for signed 16-bit and for any 32-bit integer samples, so for TIFF the
    BitsPerSample and SampleFormat tags decide; a 16-bit PGM as ``I``, rescaled by Pillow from its
    maxval to 0..65535. Other formats' deep integer images (FITS, JPEG 2000, ...) are refused.
    """
    if im.format == "TIFF":
        tags = getattr(im, "tag_v2", {})
        bits = _first(tags.get(_TIFF_BITS_PER_SAMPLE), 1)
        sample_format = _first(tags.get(_TIFF_SAMPLE_FORMAT), 1)
        if sample_format in (1, 2) and bits is not None and 8 < bits <= 32:
            return bits, sample_format == 2
        raise DataError(f"image {label}: TIFF with {bits}-bit samples of format {sample_format} is not supported")
    if (im.format == "PNG" and im.mode.startswith("I;16")) or (im.format == "PPM" and im.mode == "I"):
        return 16, False
    raise DataError(f"image {label}: {im.format} image of mode {im.mode}: the value range of its samples "
                    f"is unknown; save it as a PNG")


def _to_rgb(im: Image.Image, label: str) -> Image.Image:
    """8-bit RGB with every mode mapped to [0, 255] by its real range.

    - 8-bit modes (1, L, P, RGB, CMYK, YCbCr, LAB, HSV): Pillow's own conversion (16-bit RGB and
      RGBA PNGs and TIFFs arrive here already reduced to 8 bits by Pillow).
    - Alpha (LA, PA, RGBA, a palette or colour key with transparency): composited on white, what a
      viewer shows on a white page; the colour under a transparent pixel is undefined (often black)
      and must not become training data. A fully opaque image keeps its exact pixels.
    - One deep band (16- and 32-bit integers, floats): integers divided by the largest value their
      declared bit depth holds (16-bit by 65535, 12-bit TIFF by 4095, unsigned 32-bit by 2^32 - 1),
      signed ones by the largest positive value; floats are taken as [0, 1]. A sample that would
      not round into 0..255 (a negative one, a float above 1, NaN) is refused, never clipped.
      Then rounded to 8 bits, the precision of every other training image.
    """
    mode = im.mode
    if mode in _DEEP_MODES:
        return _deep_to_rgb(im, label)
    if mode in _ALPHA_MODES or im.has_transparency_data:
        rgba = (im.convert("LA") if mode == "La" else im).convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
        return canvas
    return im.convert("RGB")


def _deep_to_rgb(im: Image.Image, label: str) -> Image.Image:
    samples = np.asarray(im)
    if im.mode == "F":
        if not np.all(np.isfinite(samples)):
            raise DataError(f"image {label}: float samples include NaN or infinity")
        scaled = samples.astype(np.float32, copy=False) * np.float32(255.0)
        kind = "float samples outside [0, 1]"
    else:
        bits, signed = _integer_depth(im, label)
        if bits == 32 and not signed:
            samples = samples.astype(np.int32, copy=False).view(np.uint32)  # Pillow holds them as int32
        white = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
        scaled = samples.astype(np.float32) * np.float32(255.0 / white)
        kind = f"{'signed' if signed else 'unsigned'} {bits}-bit samples outside 0..{white}"
    low, high = float(scaled.min()), float(scaled.max())
    if low < -0.5 or high >= 255.5:  # values that would not round into 0..255
        raise DataError(f"image {label}: {kind} (they range from {low / 255:.6g} to {high / 255:.6g} of white)")
    grey = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(grey, mode="L").convert("RGB")


def resize_center_crop(im: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` (bilinear), then crop the centre ``size`` x ``size``.

    The same arithmetic as torchvision's ``Resize(size)`` + ``CenterCrop(size)``, but only the
    crop box is resampled: the box is mapped back to source coordinates and handed to Pillow's
    ``resize(box=...)``, so the work is O(size^2) whatever the aspect ratio (resizing a 1 x 4,000,000
    image in full would ask for 16 GB first). Each output pixel has the same source centre and
    filter weights as in the full resize up to float rounding, so the result equals resize-then-crop
    within 1/255 (an exact rounding tie can fall the other way: ~7% of values on random noise).
    """
    if size < 1:
        raise ValueError(f"resize_center_crop: size must be >= 1, got {size}")
    w, h = im.size
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    left = int(round((new_w - size) / 2.0))
    top = int(round((new_h - size) / 2.0))
    if (new_w, new_h) == (w, h):
        return im.crop((left, top, left + size, top + size))
    sx, sy = w / new_w, h / new_h
    box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
    return im.resize((size, size), Image.BILINEAR, box=box)


#: ITU-R BT.601 luma weights: how a 1-channel model sees an RGB picture
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def load_image(source: str | os.PathLike | bytes, size: int, name: str | None = None,
               max_pixels: int | None = None, channels: int = 3) -> np.ndarray:
    """A model input: float32 (channels, size, size) in [0, 1], resized and centre-cropped.

    Every image the toolkit reads (training data, the variations CLIs, the runtime and the server)
    comes through here: :func:`open_image`'s header checks, then :func:`resize_center_crop`.
    ``channels`` is 3 (RGB) or 1 (the :data:`LUMA` of the RGB picture).
    """
    if channels not in (1, 3):
        raise ValueError(f"load_image: channels must be 1 or 3, got {channels}")
    return model_input(open_image(source, name, max_pixels), size, channels)


def model_input(im: Image.Image, size: int, channels: int = 3) -> np.ndarray:
    """A decoded RGB picture (already checked: :func:`open_image`, or a frame of a checked clip) as
    a model input: :func:`resize_center_crop`, float32 (channels, size, size) in [0, 1]."""
    x = np.asarray(resize_center_crop(im, size), dtype=np.float32).transpose(2, 0, 1) / np.float32(255.0)
    return np.tensordot(LUMA, x, axes=1)[None] if channels == 1 else x


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
    Raises :class:`~core.errors.ConfigError` (a ``ValueError``) whose message starts with the field.
    """
    if nrow is not None and (isinstance(nrow, bool) or not isinstance(nrow, (int, np.integer))
                             or not 1 <= nrow <= max(1, n)):
        raise ConfigError(f"nrow must be an integer between 1 and n ({n}), got {nrow!r}")
    if fps is not None:
        low, high = FPS_RANGE
        if isinstance(fps, bool) or not isinstance(fps, (int, float, np.floating)) or not low <= fps <= high:
            raise ConfigError(f"fps must be a number between {low:g} and {high:g}, got {fps!r}")


def make_grid(images: np.ndarray, nrow: int | None = None, padding: int = 2, fill: int = 255) -> np.ndarray:
    """Tile uint8 (N, H, W, C) images into one (H', W', C) image, ``nrow`` (1..N, default a square
    grid) images per row; an ``nrow`` outside that range is a ConfigError (:func:`check_layout`)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"make_grid wants uint8 (N, H, W, C), got {images.dtype} {images.shape}")
    n, h, w, c = images.shape
    if n == 0:
        raise ValueError("make_grid: no images")
    check_layout(n, nrow)
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
    check_layout(videos.shape[0], nrow, fps)
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
    check_layout(videos.shape[0], nrow, fps)
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
    """uint8 images (N, H, W, C) or videos (N, T, H, W, C) as the bytes of one ``fmt`` file.

    ``nrow`` and ``fps`` are checked (:func:`check_layout`) for every format, before any work,
    so no caller reaches an encoder with an unbounded layout.
    """
    images = np.asarray(images)
    check_layout(images.shape[0] if images.ndim else 0, nrow, fps)
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
