"""Video training data: a folder of clips, and the embedded default, moving digits.

The video twin of :mod:`core.data`. A training sample is a clip of ``num_frames`` (T) frames in the
canonical video layout, float32 (T, C, S, S) in [0, 1]; a batch is (N, T, C, S, S). Every frame is
preprocessed exactly like a training image (:func:`core.images.load_image`: the shorter side
resized to S, the centre S x S cropped, RGB or, for ``channels`` 1, the :data:`~core.images.LUMA`
of the RGB picture), and batches come from one NumPy iterator, so torch and Keras see the same
pixels in the same order for the same seed.

**A clip folder** (``--data DIR``): every non-hidden entry of DIR is one clip, taken in natural
name order (``clip2`` before ``clip10``):

- a GIF (or any multi-frame file Pillow reads), read frame by frame;
- a video file (``.mp4``, ``.mov``, ``.avi``, ``.mkv``, ``.webm``, ...), read through the optional
  ``imageio-ffmpeg`` package (imported lazily; without it these clips are skipped). ffmpeg is told
  the container format from the file name and may open local files only, so a file that is really
  a playlist cannot make it fetch or read anything else;
- a sub-folder of frame images (any :data:`~core.images.IMAGE_EXTENSIONS`), in natural name order
  (``frame2`` before ``frame10``); other files and sub-folders in it are ignored.

Clips are checked when the folder is opened, cheaply: frames are counted and frame sizes read
from headers against :mod:`core.images`' pixel, aspect-ratio and mode limits (video files are
decoded once, to a thumbnail, because only decoding counts their frames exactly). At most
:data:`MAX_CLIP_FRAMES` frames of a clip are considered. Unreadable clips, clips of fewer than T
frames, frame folders whose frames differ in size and non-video files are skipped with one
warning that counts them and names the first; symlinks that lead out of the data directory are not
followed. A frame that breaks later (a file changed after the check) is a
:class:`~core.errors.DataError` naming it when its batch is loaded.

**Cutting**: a clip longer than T gives a window of T consecutive frames. Which window is drawn
from ``np.random.default_rng([seed, epoch, clip index])``, so it is the same in both frameworks
and changes from epoch to epoch.

**Moving digits** (``--data digits`` or ``moving_digits``), the recipe of Moving MNIST (Srivastava,
Mansimov and Salakhutdinov, "Unsupervised Learning of Video Representations using LSTMs",
ICML 2015): each clip shows ``digits_per_clip`` handwritten digits, each a scan from
scikit-learn's bundled ``load_digits()`` (the same 1,797 8x8 scans, 16 grey levels, that
:func:`core.data.prepare_digits` serves as images; nothing is downloaded), upsampled bicubic to
:func:`digit_size` pixels (28 on a 64-pixel canvas, as Moving MNIST puts 28-pixel MNIST digits on
64-pixel frames). Each digit starts at a uniformly random position inside the canvas with a
uniformly random direction and a speed of :func:`speed_range` pixels per frame (2 to 4 at 64
pixels), moves in a straight line and bounces off the edges: when a step would carry it past an
edge, that component of its velocity is reversed first, so it never leaves the frame and every
frame moves it by its full speed (at least a pixel along its faster axis; a reflected position
could round to the same pixel twice and freeze it for a frame). Digits are drawn at the rounded
position and combined by per-pixel maximum on a black canvas. Every random number comes from
``np.random.default_rng(seed)``: the same arguments give byte-identical clips.

They are generated on first use into the cache (``$AGE_CACHE_DIR`` or ``~/.cache/age-toolkit``,
:func:`core.data.cache_root`) as a clip folder::

    <cache>/moving-digits-<size>-<frames>-<clips>-s<seed>/<clip>/<frame>.png

(``-d<k>`` is appended for a ``digits_per_clip`` other than 2), one sub-folder of greyscale PNG
frames per clip, so the same :class:`VideoFolder` code reads it. A grey PNG reads as RGB with
R = G = B, so one cache serves both channel counts. The tree is built in a temp folder and
renamed into place with a ``.complete`` marker that records the recipe, exactly like
:func:`core.data.prepare_digits`.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Iterator

import numpy as np
from PIL import Image

from . import images as _images
from . import progress
from .data import DIGITS, _is_dir, _scan, cache_root, require_directory
from .errors import ConfigError, DataError, OutputError
from .images import (
    IMAGE_EXTENSIONS,
    MP4_PACKAGE,
    _check_header,
    _open_file,
    _to_rgb,
    load_image,
    model_input,
)

log = logging.getLogger(__name__)

MOVING_DIGITS = "moving_digits"
#: the names ``--data`` accepts for the embedded moving digits (the trainers' default is "digits")
MOVING_DIGITS_NAMES = (MOVING_DIGITS, DIGITS)
#: frames of one clip considered at most (longer clips are cut to their first this many frames)
MAX_CLIP_FRAMES = 10_000
#: multi-frame files read with Pillow
PILLOW_VIDEO_EXTENSIONS = (".gif",)
#: video files read with ffmpeg, and the demuxer each is opened with (never guessed from the content)
FFMPEG_DEMUXERS = {
    ".mp4": "mov", ".m4v": "mov", ".mov": "mov", ".avi": "avi", ".mkv": "matroska", ".webm": "matroska",
    ".mpg": "mpeg", ".mpeg": "mpeg", ".flv": "flv", ".ogv": "ogg", ".wmv": "asf",
}
#: written into the moving digits' ``.complete`` marker: a cache of another recipe is rebuilt
MOVING_DIGITS_RECIPE = 1


class _Skip(Exception):
    """Why a clip is not used (the message is the reason the skip warning shows)."""


def _natural_key(name: str) -> tuple:
    """Sort key that orders the digit runs of a name by value: ``frame2`` < ``frame10``."""
    parts = re.split(r"([0-9]+)", name)
    return tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts)), name


def _imageio_ffmpeg() -> ModuleType | None:
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    return imageio_ffmpeg


def _positive(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Clip:
    """One clip of a :class:`VideoFolder`."""

    path: Path
    #: "frames" (a folder of frame images), "pillow" (a GIF) or "ffmpeg" (a video file)
    kind: str
    #: frames available (at most :data:`MAX_CLIP_FRAMES`)
    length: int
    #: the frame files of a "frames" clip, in natural order
    frames: tuple[Path, ...] = ()


# --------------------------------------------------------------------------- checking clips


def _within(path: Path, root_real: Path) -> bool:
    """Whether ``path``, symlinks resolved, lies inside the (resolved) data directory."""
    try:
        return path.resolve().is_relative_to(root_real)
    except (OSError, RuntimeError):  # a symlink loop
        return False


def _frame_size(path: Path) -> tuple[int, int]:
    """A frame image's size from its header, against core.images' limits; DataError otherwise."""
    label = str(path)
    with _open_file(path, label) as fh:
        try:
            with Image.open(fh) as im:
                _check_header(im, label, _images.MAX_IMAGE_PIXELS)
                return im.size
        except (DataError, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - Pillow raises anything on a malformed header
            raise DataError(f"image {label}: not a readable image ({type(exc).__name__}: {exc})") from None


def _reason(exc: DataError, path: Path) -> str:
    return str(exc).removeprefix(f"image {path}: ")


def _check_frames(folder: Path, root: Path, root_real: Path, num_frames: int) -> Clip:
    try:
        entries = _scan(folder, root)
    except DataError as exc:
        raise _Skip(str(exc).rsplit(": ", 1)[-1]) from None
    frames = []
    for entry in entries:
        path = Path(entry.path)
        if entry.name.startswith(".") or _is_dir(entry, follow_symlinks=True):
            continue
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            log.debug("data directory %s: clip %s: ignoring %s (not an image file name)", root, folder.name, entry.name)
            continue
        if entry.is_symlink() and not _within(path, root_real):
            raise _Skip(f"frame {entry.name} is a symlink out of the data directory, not followed")
        frames.append(path)
    if len(frames) < num_frames:
        raise _Skip(f"{len(frames)} frame image(s), fewer than the {num_frames} a clip needs")
    frames = sorted(frames, key=lambda p: _natural_key(p.name))[:MAX_CLIP_FRAMES]
    first = None
    for path in frames:
        try:
            size = _frame_size(path)
        except DataError as exc:
            raise _Skip(f"frame {path.name}: {_reason(exc, path)}") from None
        if first is None:
            first = (path, size)
        elif size != first[1]:
            raise _Skip(f"frames of different sizes: {first[0].name} is {first[1][0]}x{first[1][1]}, "
                        f"{path.name} is {size[0]}x{size[1]}")
    return Clip(folder, "frames", len(frames), tuple(frames))


def _check_pillow(path: Path, num_frames: int) -> Clip:
    label = str(path)
    try:
        with _open_file(path, label) as fh:
            try:
                with Image.open(fh) as im:
                    _check_header(im, label, _images.MAX_IMAGE_PIXELS)
                    count = int(getattr(im, "n_frames", 1))
            except (DataError, MemoryError):
                raise
            except Exception as exc:  # noqa: BLE001 - as in _frame_size
                raise DataError(f"image {label}: not a readable video ({type(exc).__name__}: {exc})") from None
    except DataError as exc:
        raise _Skip(_reason(exc, path)) from None
    if count < num_frames:
        raise _Skip(f"{count} frame(s), fewer than the {num_frames} a clip needs")
    return Clip(path, "pillow", min(count, MAX_CLIP_FRAMES))


def _regular_file(path: Path) -> None:
    try:
        info = os.stat(path)
    except OSError as exc:
        raise DataError(f"video {path}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"video {path}: not a regular file")
    if info.st_size == 0:
        raise DataError(f"video {path}: empty file")


def _ffmpeg_frames(ffmpeg: ModuleType, path: Path, output_params: list[str]) -> Iterator:
    """imageio-ffmpeg's frame generator for ``path``: its container format forced from the file
    name (no probing the content as a playlist or a concat list) and local files only."""
    demuxer = FFMPEG_DEMUXERS[path.suffix.lower()]
    return ffmpeg.read_frames(os.path.abspath(path), input_params=["-f", demuxer, "-protocol_whitelist", "file"],
                              output_params=["-an", "-sn", "-dn", *output_params])


def _ffmpeg_error(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip() and not line.startswith("===")]
    return f"ffmpeg cannot read it ({lines[-1] if lines else type(exc).__name__})"


def _check_size(path: Path, size: tuple[int, int]) -> None:
    """core.images' header limits (pixels, aspect ratio) for a video's frame size."""
    _check_header(SimpleNamespace(size=tuple(size), mode="RGB"), str(path), _images.MAX_IMAGE_PIXELS)


def _check_ffmpeg(path: Path, num_frames: int) -> Clip:
    ffmpeg = _imageio_ffmpeg()
    if ffmpeg is None:
        raise _Skip(f"needs {MP4_PACKAGE} (pip install {MP4_PACKAGE})")
    try:
        _regular_file(path)
        frames = _ffmpeg_frames(ffmpeg, path, ["-vf", "scale=8:8", "-frames:v", str(MAX_CLIP_FRAMES)])
        try:
            meta = next(frames)
            _check_size(path, meta["source_size"])
            count = sum(1 for _ in frames)
        finally:
            frames.close()
    except DataError as exc:
        raise _Skip(str(exc).removeprefix(f"image {path}: ").removeprefix(f"video {path}: ")) from None
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - imageio-ffmpeg raises OSError/RuntimeError with ffmpeg's log
        raise _Skip(_ffmpeg_error(exc)) from None
    if count < num_frames:
        raise _Skip(f"{count} frame(s), fewer than the {num_frames} a clip needs")
    return Clip(path, "ffmpeg", count)


def _check_entry(entry: os.DirEntry, root: Path, root_real: Path, num_frames: int) -> Clip:
    path = Path(entry.path)
    if entry.is_symlink() and not _within(path, root_real):
        raise _Skip("a symlink out of the data directory, not followed")
    if _is_dir(entry, follow_symlinks=True):
        return _check_frames(path, root, root_real, num_frames)
    suffix = path.suffix.lower()
    if suffix in PILLOW_VIDEO_EXTENSIONS:
        return _check_pillow(path, num_frames)
    if suffix in FFMPEG_DEMUXERS:
        return _check_ffmpeg(path, num_frames)
    if suffix in IMAGE_EXTENSIONS:
        raise _Skip("a still image, not a clip (put a clip's frames in a sub-folder)")
    raise _Skip("not a video file name (a clip is a GIF, a video file or a folder of frame images)")


# --------------------------------------------------------------------------- the dataset


@dataclass
class VideoFolder:
    """The clips under ``root`` (see the module docstring), loaded as (T, C, S, S) float32 in [0, 1].

    Mirrors :class:`core.data.ImageFolder`: checked once at :meth:`open`, bad clips skipped with one
    warning, batches shuffled by (seed, epoch) only.
    """

    root: Path
    num_frames: int
    image_size: int
    #: 3 (RGB) or 1 (greyscale): the channel count of every loaded frame
    channels: int
    clips: list[Clip]
    skipped: int

    @classmethod
    def open(cls, root: str | os.PathLike, num_frames: int, image_size: int, channels: int = 3) -> "VideoFolder":
        num_frames = _positive(num_frames, "num_frames")
        image_size = _positive(image_size, "image_size")
        if channels not in (1, 3):
            raise DataError(f"data: frames are loaded with 1 (greyscale) or 3 (RGB) channels, got {channels}")
        root = require_directory(root)
        root_real = root.resolve()
        entries = sorted((e for e in _scan(root, root) if not e.name.startswith(".")),
                         key=lambda e: _natural_key(e.name))
        clips, skipped, first_skip = [], 0, ""
        for entry in entries:
            try:
                clips.append(_check_entry(entry, root, root_real, num_frames))
            except _Skip as why:
                log.debug("data directory %s: skipping %s: %s", root, entry.name, why)
                skipped += 1
                first_skip = first_skip or f"{entry.name}: {why}"
        if skipped:
            log.warning("data directory %s: skipped %d clip(s) that are unreadable, shorter than %d frames or "
                        "not videos; the first, %s", root, skipped, num_frames, first_skip)
        if not clips:
            detail = f"; the first of {skipped} skipped entries, {first_skip}" if skipped else ""
            raise DataError(f"data directory {root}: no usable clips found (a clip is a GIF, a video file or a "
                            f"folder of at least {num_frames} frame images){detail}")
        return cls(root, num_frames, image_size, channels, clips, skipped)

    def __len__(self) -> int:
        return len(self.clips)

    def window_start(self, index: int, seed: int = 0, epoch: int = 0) -> int:
        """First frame of the T-frame window clip ``index`` gives in (seed, epoch)."""
        spare = self.clips[index].length - self.num_frames
        return int(np.random.default_rng([int(seed), int(epoch), int(index)]).integers(0, spare + 1))

    def load(self, indices: np.ndarray, seed: int = 0, epoch: int = 0) -> np.ndarray:
        """float32 (len(indices), T, channels, S, S) batch in [0, 1]."""
        return np.stack([self.load_clip(int(i), seed, epoch) for i in indices])

    def load_clip(self, index: int, seed: int = 0, epoch: int = 0) -> np.ndarray:
        """float32 (T, channels, S, S): the window of clip ``index`` for (seed, epoch)."""
        clip = self.clips[index]
        start = self.window_start(index, seed, epoch)
        if clip.kind == "frames":
            return np.stack([load_image(f, self.image_size, channels=self.channels)
                             for f in clip.frames[start : start + self.num_frames]])
        if clip.kind == "pillow":
            return self._load_pillow(clip.path, start)
        return self._load_ffmpeg(clip.path, start)

    def _frame(self, im: Image.Image) -> np.ndarray:
        """One decoded RGB frame as a model input (:func:`core.images.model_input`, as training images)."""
        return model_input(im, self.image_size, self.channels)

    def _load_pillow(self, path: Path, start: int) -> np.ndarray:
        label = str(path)
        frames = []
        with _open_file(path, label) as fh:
            try:
                with Image.open(fh) as im:
                    _check_header(im, label, _images.MAX_IMAGE_PIXELS)
                    for k in range(start, start + self.num_frames):
                        im.seek(k)
                        frames.append(self._frame(_to_rgb(im, f"{label} frame {k}")))
            except (DataError, MemoryError):
                raise
            except Exception as exc:  # noqa: BLE001 - a clip that broke after it was checked
                raise DataError(f"clip {label}: frame {start + len(frames)}: not readable "
                                f"({type(exc).__name__}: {exc})") from None
        return np.stack(frames)

    def _load_ffmpeg(self, path: Path, start: int) -> np.ndarray:
        ffmpeg = _imageio_ffmpeg()
        if ffmpeg is None:
            raise DataError(f"clip {path}: needs {MP4_PACKAGE} (pip install {MP4_PACKAGE})")
        _regular_file(path)
        out = []
        try:
            frames = _ffmpeg_frames(ffmpeg, path, ["-frames:v", str(start + self.num_frames)])
            try:
                width, height = next(frames)["size"]
                _check_size(path, (width, height))
                for k, raw in enumerate(frames):
                    if k >= start:
                        rgb = np.frombuffer(raw, np.uint8).reshape(height, width, 3)
                        out.append(self._frame(Image.fromarray(rgb)))
                    if len(out) == self.num_frames:
                        break
            finally:
                frames.close()
        except (DataError, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - as in _check_ffmpeg
            raise DataError(f"clip {path}: {_ffmpeg_error(exc)}") from None
        if len(out) < self.num_frames:
            raise DataError(f"clip {path}: ended after {start + len(out)} frames; frames {start} to "
                            f"{start + self.num_frames - 1} were wanted (did the file change?)")
        return np.stack(out)

    def batches(self, batch_size: int, seed: int, epoch: int, skip: int = 0) -> Iterator[np.ndarray]:
        """Shuffled full batches of one epoch; the order and the windows depend only on (seed, epoch).

        ``skip`` drops the first batches (used when resuming mid-epoch). The last partial batch is
        dropped, as :meth:`core.data.ImageFolder.batches` does.
        """
        order = np.random.default_rng([seed, epoch]).permutation(len(self))
        for b in range(skip, self.batches_per_epoch(batch_size)):
            yield self.load(order[b * batch_size : (b + 1) * batch_size], seed, epoch)

    def batches_per_epoch(self, batch_size: int) -> int:
        return max(1, len(self) // batch_size) if len(self) >= batch_size else 1


# --------------------------------------------------------------------------- moving digits


def digit_size(size: int) -> int:
    """Side of a digit on a ``size`` canvas: size * 7/16 rounded (28 on 64, as in Moving MNIST)."""
    return max(1, int(math.floor(size * 7 / 16 + 0.5)))


def speed_range(size: int) -> tuple[float, float]:
    """(lowest, highest) digit speed in pixels per frame: size/32 to size/16 (2 to 4 at 64), and at
    least 1.5 to 3 so that every step moves a digit by a whole pixel along its faster axis."""
    return max(1.5, size / 32), max(3.0, size / 16)


def _digit_sprites(size: int) -> np.ndarray:
    """uint8 (1797, d, d): scikit-learn's digits, grey as in prepare_digits, upsampled bicubic."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("--data digits needs scikit-learn, which ships the digits: pip install scikit-learn") from None
    d = digit_size(size)
    scans = np.clip(load_digits().images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    return np.stack([np.asarray(Image.fromarray(s).resize((d, d), Image.BICUBIC)) for s in scans])


def moving_digit_clips(num_frames: int, size: int, clips: int, digits_per_clip: int = 2,
                       seed: int = 0) -> Iterator[np.ndarray]:
    """The moving-digits clips, one uint8 (T, size, size) array at a time (the recipe is in the
    module docstring); the same arguments give the same arrays."""
    sprites = _digit_sprites(size)
    d = sprites.shape[1]
    limit = float(size - d)
    low, high = speed_range(size)
    rng = np.random.default_rng(seed)
    for _ in range(clips):
        picks = rng.integers(0, len(sprites), digits_per_clip)
        position = rng.uniform(0.0, limit, (digits_per_clip, 2))  # (y, x) of the top-left corner
        angle = rng.uniform(0.0, 2 * math.pi, digits_per_clip)
        speed = rng.uniform(low, high, digits_per_clip)
        velocity = speed[:, None] * np.stack([np.sin(angle), np.cos(angle)], axis=1)
        video = np.zeros((num_frames, size, size), np.uint8)
        for t in range(num_frames):
            for sprite, (y, x) in zip(sprites[picks], np.rint(position).astype(int)):
                window = video[t, y : y + d, x : x + d]
                np.maximum(window, sprite, out=window)
            step = position + velocity
            bounce = (step < 0.0) | (step > limit)
            velocity[bounce] = -velocity[bounce]
            position = position + velocity
            np.clip(position, 0.0, limit, out=position)  # only a canvas hardly larger than a digit needs it
        yield video


def _marker(num_frames: int, size: int, clips: int, digits_per_clip: int, seed: int) -> str:
    return (f"moving digits recipe {MOVING_DIGITS_RECIPE}: {clips} clips of {num_frames} frames, "
            f"{size}x{size}, {digits_per_clip} digits per clip, seed {seed}\n")


def _complete(target: Path, marker: str) -> bool:
    try:
        return (target / ".complete").read_text() == marker
    except (OSError, UnicodeDecodeError):
        return False


def prepare_moving_digits(num_frames: int, size: int, root: str | os.PathLike | None = None, *,
                          clips: int = 2000, digits_per_clip: int = 2, seed: int = 0) -> Path:
    """Write the moving digits as a clip folder of ``size`` x ``size`` frames (once) and return it.

    ``clips`` clips of ``num_frames`` frames, ``digits_per_clip`` digits each, all drawn from
    ``seed``. The folder is built in a temp folder and renamed into place (an interrupted first run
    never leaves a half-written dataset), and its ``.complete`` marker records the recipe, so a
    cache written by another recipe is rebuilt. A cache folder that cannot be written is an
    :class:`~core.errors.OutputError` naming it.
    """
    num_frames, size = _positive(num_frames, "num_frames"), _positive(size, "size")
    clips, digits_per_clip = _positive(clips, "clips"), _positive(digits_per_clip, "digits_per_clip")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    name = f"moving-digits-{size}-{num_frames}-{clips}-s{seed}"
    if digits_per_clip != 2:
        name += f"-d{digits_per_clip}"
    target = Path(root or cache_root()) / name
    marker = _marker(num_frames, size, clips, digits_per_clip, seed)
    if _complete(target, marker):
        return target

    def unwritable(exc: OSError) -> OutputError:
        return OutputError(f"cannot prepare the moving digits in {target.parent}: {exc.strerror or exc} "
                           f"(set AGE_CACHE_DIR to a writable folder)")

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    except OSError as exc:
        raise unwritable(exc) from None
    began = time.monotonic()
    log.info("preparing %d moving-digit clips of %d frames, %dx%d, at %s", clips, num_frames, size, size, target)
    try:
        bar = progress.bar(clips, "clip", "moving digits")
        clip_width, frame_width = max(5, len(str(clips - 1))), max(3, len(str(num_frames - 1)))
        try:
            for index, video in enumerate(moving_digit_clips(num_frames, size, clips, digits_per_clip, seed)):
                folder = tmp / f"{index:0{clip_width}d}"
                folder.mkdir()
                for t, frame in enumerate(video):
                    Image.fromarray(frame).save(folder / f"{t:0{frame_width}d}.png")
                bar.update()
        finally:
            bar.close()
        (tmp / ".complete").write_text(marker)
        if _complete(target, marker):  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
            return target
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if _complete(target, marker):  # another process renamed its copy into place first
            return target
        raise unwritable(exc) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("prepared %d moving-digit clips at %s in %.1f s", clips, target, time.monotonic() - began)
    return target


def open_video_dataset(data: str, num_frames: int, image_size: int, channels: int = 3) -> VideoFolder:
    """``data`` is a clip folder or ``"digits"`` / ``"moving_digits"`` (the embedded moving digits,
    prepared for ``image_size`` and ``num_frames`` on first use); frames are loaded with
    ``channels`` 3 (RGB) or 1 (greyscale), the model config's ``in_channels``."""
    if data in MOVING_DIGITS_NAMES:
        return VideoFolder.open(prepare_moving_digits(num_frames, image_size), num_frames, image_size, channels)
    return VideoFolder.open(data, num_frames, image_size, channels)
