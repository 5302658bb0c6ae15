"""Training data: any ImageFolder-style directory, and the embedded default dataset.

Preprocessing is :func:`core.images.load_image` (resize shorter side + centre crop, RGB or
greyscale (``channels`` 3 or 1: the :data:`~core.images.LUMA` of the RGB picture), values in
[0, 1]) for both frameworks, and batches come from one NumPy iterator, so torch and
Keras see the same pixels in the same order for the same seed.

The embedded default (``--data digits``) is scikit-learn's bundled copy of the UCI optical
recognition of handwritten digits test set: 1,797 real 8x8 scans (16 grey levels), shipped
inside the scikit-learn wheel, so nothing is downloaded. On first use they are upsampled
(bicubic) to the config's image size and written as an ImageFolder tree
``<cache>/digits-<size>/<digit>/<index>.png``; the cache root is ``$AGE_CACHE_DIR`` or
``~/.cache/age-toolkit``. The cached PNGs are grey pixels stored as RGB (R = G = B), so one cache
serves both channel counts: a 1-channel model reads their luma, which is that same grey (the
:data:`~core.images.LUMA` weights sum to 1).
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from .errors import DataError, OutputError
from .images import IMAGE_EXTENSIONS, load_image, open_image

log = logging.getLogger(__name__)

DIGITS = "digits"


def cache_root() -> Path:
    return Path(os.environ.get("AGE_CACHE_DIR") or Path.home() / ".cache" / "age-toolkit")


def prepare_digits(size: int, root: str | os.PathLike | None = None) -> Path:
    """Write the digits as an ImageFolder tree of ``size`` x ``size`` RGB PNGs (once) and return it.

    The tree is built in a temp folder and renamed into place, so an interrupted first run
    never leaves a half-written dataset behind. A cache folder that cannot be written is an
    :class:`~core.errors.OutputError` naming it.
    """
    target = Path(root or cache_root()) / f"digits-{size}"
    if (target / ".complete").exists():
        return target
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("--data digits needs scikit-learn, which ships the digits: pip install scikit-learn") from None

    digits = load_digits()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".digits-{size}.", dir=target.parent))
    except OSError as exc:
        raise OutputError(f"cannot prepare the digits in {target.parent}: {exc.strerror or exc} "
                          f"(set AGE_CACHE_DIR to a writable folder)") from None
    try:
        for index, (image, label) in enumerate(zip(digits.images, digits.target)):
            grey = np.clip(image * (255.0 / 16.0), 0, 255).astype(np.uint8)
            im = Image.fromarray(grey, mode="L").resize((size, size), Image.BICUBIC).convert("RGB")
            folder = tmp / str(int(label))
            folder.mkdir(exist_ok=True)
            im.save(folder / f"{index:04d}.png")
        (tmp / ".complete").write_text(f"{len(digits.images)} images\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"cannot prepare the digits in {target.parent}: {exc.strerror or exc} "
                          f"(set AGE_CACHE_DIR to a writable folder)") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("prepared %d digit images at %s", len(digits.images), target)
    return target


def _unreadable(path: Path) -> str | None:
    """Why ``path`` is no training image, or None when it decodes completely with
    :func:`~core.images.open_image`'s checks (``Image.verify`` misses truncated JPEGs, for one)."""
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return "not an image file name"
    try:
        open_image(path)
    except DataError as exc:  # open_image turns every decoding and OS failure into one
        return str(exc)
    return None


def _scan(folder: Path, root: Path) -> list[os.DirEntry]:
    """The entries of ``folder``; a DataError naming it when it cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError as exc:
        where = "" if folder == root else f" folder {folder}:"
        raise DataError(f"data directory {root}:{where} cannot read it ({exc.strerror or type(exc).__name__})") from None


def _is_dir(entry: os.DirEntry, follow_symlinks: bool) -> bool:
    try:
        return entry.is_dir(follow_symlinks=follow_symlinks)
    except OSError:
        return False


def _files_under(folder: Path, root: Path) -> list[Path]:
    """Every non-hidden entry below ``folder`` that is not a directory, sorted.

    Sub-folders are searched except hidden ones and symlinked ones (no loops; the top-level class
    folders themselves may be symlinks). A sub-folder that cannot be listed is a DataError naming
    it: its images would otherwise silently drop out of training.
    """
    found: list[Path] = []
    pending = [folder]
    while pending:
        current = pending.pop()
        for entry in _scan(current, root):
            if entry.name.startswith("."):
                continue
            if _is_dir(entry, follow_symlinks=False):
                pending.append(Path(entry.path))
            elif _is_dir(entry, follow_symlinks=True):
                log.debug("data directory %s: not following the symlinked folder %s", root, entry.path)
            else:
                found.append(Path(entry.path))
    return sorted(found)


def require_directory(root: str | os.PathLike) -> Path:
    """``root`` as a Path, or a DataError naming it: missing, unreadable or not a directory."""
    root = Path(root)
    try:
        mode = root.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise DataError(f"data directory {root}: does not exist") from None
    except OSError as exc:
        raise DataError(f"data directory {root}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    if not stat.S_ISDIR(mode):
        raise DataError(f"data directory {root}: not a directory")
    return root


@dataclass
class ImageFolder:
    """The images under ``root``: one sub-folder per class (or images directly in ``root``).

    Every file is checked once when the dataset is opened (with :func:`~core.images.open_image`,
    so also against its pixel, aspect-ratio and mode limits); unreadable and non-image files are
    skipped with one warning that counts them and names the first. A data directory or sub-folder
    that cannot be read is a :class:`~core.errors.DataError` naming it.
    """

    root: Path
    image_size: int
    files: list[Path]
    labels: list[int]
    classes: list[str]
    skipped: int
    #: 3 (RGB) or 1 (greyscale): the channel count of every loaded image
    channels: int = 3

    @classmethod
    def open(cls, root: str | os.PathLike, image_size: int, channels: int = 3) -> "ImageFolder":
        if channels not in (1, 3):
            raise DataError(f"data: images are loaded with 1 (greyscale) or 3 (RGB) channels, got {channels}")
        root = require_directory(root)
        subdirs = sorted(Path(e.path) for e in _scan(root, root) if _is_dir(e, True) and not e.name.startswith("."))
        groups = [(d.name, d) for d in subdirs] or [(root.name, root)]
        files, labels, skipped, first_skip = [], [], 0, ""
        for label, (_, folder) in enumerate(groups):
            for path in _files_under(folder, root):
                reason = _unreadable(path)
                if reason is None:
                    files.append(path)
                    labels.append(label)
                    continue
                log.debug("data directory %s: skipping %s: %s", root, path, reason)
                skipped += 1
                first_skip = first_skip or f"{path.relative_to(root)}: {reason.removeprefix(f'image {path}: ')}"
        if skipped:
            log.warning("data directory %s: skipped %d unreadable or non-image file(s); the first, %s",
                        root, skipped, first_skip)
        if not files:
            raise DataError(f"data directory {root}: no readable images found")
        return cls(root, image_size, files, labels, [name for name, _ in groups], skipped, channels)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, indices: np.ndarray) -> np.ndarray:
        """float32 (len(indices), channels, S, S) batch in [0, 1]."""
        return np.stack([load_image(self.files[i], self.image_size, channels=self.channels) for i in indices])

    def batches(self, batch_size: int, seed: int, epoch: int, skip: int = 0) -> Iterator[np.ndarray]:
        """Shuffled full batches of one epoch; the order depends only on (seed, epoch).

        ``skip`` drops the first batches (used when resuming mid-epoch). The last partial
        batch is dropped so BatchNorm never sees a batch of one.
        """
        order = np.random.default_rng([seed, epoch]).permutation(len(self))
        for b in range(skip, self.batches_per_epoch(batch_size)):
            yield self.load(order[b * batch_size : (b + 1) * batch_size])

    def batches_per_epoch(self, batch_size: int) -> int:
        return max(1, len(self) // batch_size) if len(self) >= batch_size else 1


def open_dataset(data: str, image_size: int, channels: int = 3) -> ImageFolder:
    """``data`` is a directory or ``"digits"`` (the embedded default); images are loaded with
    ``channels`` 3 (RGB) or 1 (greyscale), the model config's ``in_channels``."""
    if data == DIGITS:
        return ImageFolder.open(prepare_digits(image_size), image_size, channels)
    return ImageFolder.open(data, image_size, channels)
