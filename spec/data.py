"""Training data: any ImageFolder-style directory, and the embedded default dataset.

Preprocessing is :func:`spec.images.load_image` (resize shorter side + centre crop, RGB,
values in [0, 1]) for both frameworks, and batches come from one NumPy iterator, so torch and
Keras see the same pixels in the same order for the same seed.

The embedded default (``--data digits``) is scikit-learn's bundled copy of the UCI optical
recognition of handwritten digits test set: 1,797 real 8x8 scans (16 grey levels), shipped
inside the scikit-learn wheel, so nothing is downloaded. On first use they are upsampled
(bicubic) to the config's image size and written as an ImageFolder tree
``<cache>/digits-<size>/<digit>/<index>.png``; the cache root is ``$AGE_CACHE_DIR`` or
``~/.cache/age-toolkit``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from .errors import DataError
from .images import IMAGE_EXTENSIONS, load_image, open_image

log = logging.getLogger(__name__)

DIGITS = "digits"


def cache_root() -> Path:
    return Path(os.environ.get("AGE_CACHE_DIR") or Path.home() / ".cache" / "age-toolkit")


def prepare_digits(size: int, root: str | os.PathLike | None = None) -> Path:
    """Write the digits as an ImageFolder tree of ``size`` x ``size`` RGB PNGs (once) and return it.

    The tree is built in a temp folder and renamed into place, so an interrupted first run
    never leaves a half-written dataset behind.
    """
    target = Path(root or cache_root()) / f"digits-{size}"
    if (target / ".complete").exists():
        return target
    from sklearn.datasets import load_digits

    digits = load_digits()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".digits-{size}.", dir=target.parent))
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
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("prepared %d digit images at %s", len(digits.images), target)
    return target


def _readable(path: Path) -> bool:
    """Whether ``path`` decodes completely (``Image.verify`` misses truncated JPEGs, for one)."""
    try:
        open_image(path)
        return True
    except Exception:  # noqa: BLE001 - any failure means "skip this file"
        return False


@dataclass
class ImageFolder:
    """The images under ``root``: one sub-folder per class (or images directly in ``root``).

    Every file is checked once when the dataset is opened; unreadable and non-image files are
    skipped with one warning that counts them.
    """

    root: Path
    image_size: int
    files: list[Path]
    labels: list[int]
    classes: list[str]
    skipped: int

    @classmethod
    def open(cls, root: str | os.PathLike, image_size: int) -> "ImageFolder":
        root = Path(root)
        if not root.exists():
            raise DataError(f"data directory {root}: does not exist")
        if not root.is_dir():
            raise DataError(f"data directory {root}: not a directory")
        subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        groups = [(d.name, d) for d in subdirs] or [(root.name, root)]
        files, labels, skipped = [], [], 0
        for label, (_, folder) in enumerate(groups):
            for path in sorted(folder.rglob("*")):
                if not path.is_file() or any(part.startswith(".") for part in path.relative_to(root).parts):
                    continue
                if path.suffix.lower() in IMAGE_EXTENSIONS and _readable(path):
                    files.append(path)
                    labels.append(label)
                else:
                    skipped += 1
        if skipped:
            log.warning("data directory %s: skipped %d unreadable or non-image file(s)", root, skipped)
        if not files:
            raise DataError(f"data directory {root}: no readable images found")
        return cls(root, image_size, files, labels, [name for name, _ in groups], skipped)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, indices: np.ndarray) -> np.ndarray:
        """float32 (len(indices), 3, S, S) batch in [0, 1]."""
        return np.stack([load_image(self.files[i], self.image_size) for i in indices])

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


def open_dataset(data: str, image_size: int) -> ImageFolder:
    """``data`` is a directory or ``"digits"`` (the embedded default)."""
    if data == DIGITS:
        return ImageFolder.open(prepare_digits(image_size), image_size)
    return ImageFolder.open(data, image_size)
