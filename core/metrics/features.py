"""Feature networks of the evaluation metrics, run through onnxruntime (no torch, no TensorFlow).

One network ships with the toolkit: ``digits`` (``core/metrics/networks/digits.onnx``, made by
``scripts/digits_features.py``), a small CNN classifier of the bundled digit scans whose 128-d
penultimate activations are the features of FID, KID, precision/recall and density/coverage and
whose 10 logits feed the Inception Score. Its numbers are comparable with each other, not with
Inception-v3 ones: every result names the network that made its features.

**Resizing is part of the metric.** Every picture, generated or real, reaches a network through
:func:`prepare`: uint8 (n, H, W, C) -> Pillow ``resize`` to the network's side with
``Image.BICUBIC`` (Pillow's bicubic filter widens its support when it shrinks an image, so a
downscale is antialiased; ``reducing_gap`` is left off, so the result does not depend on an
intermediate box reduction), then the network's colour convention (``digits``: the BT.601 luma of
RGB, :data:`core.images.LUMA`), then [0, 1] float32. Generation, data, the CLI and training all
call it, so the same images give the same features on every path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..images import LUMA, to_uint8

FEATURES_DIR = Path(__file__).resolve().parent / "networks"
#: the filter of every resize on the way into a feature network
RESIZE_FILTER = "bicubic (Pillow Image.BICUBIC, antialiased when shrinking)"
DEFAULT_BATCH = 64


@dataclass(frozen=True)
class FeatureNetwork:
    """One ONNX feature network: its name, input side and channels, the outputs holding its
    features and its classifier logits, and the session running it."""

    name: str
    size: int
    channels: int
    path: Path
    info: dict
    #: (features output, logits output) of the graph
    outputs: tuple[str, str] = ("features", "logits")

    def session(self):
        import onnxruntime as ort

        return ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])


def digits() -> FeatureNetwork:
    """The built-in digits network (28 x 28 luma)."""
    path = FEATURES_DIR / "digits.onnx"
    info = json.loads((FEATURES_DIR / "digits.json").read_text())
    return FeatureNetwork("digits", 28, 1, path, info)


def inception(path: str | Path) -> FeatureNetwork:
    """Inception-v3 as FID defines it, exported by ``python -m export.inception --weights
    pt_inception-2015-12-05-6726825d.pth --out DIR`` (``DIR/inception_fid.onnx``): 299 x 299 RGB,
    2048-d ``pool`` features, and ``logits_unbiased`` (the fc layer without its bias, what
    torch-fidelity's Inception Score reads) for IS."""
    path = Path(path)
    if path.suffix != ".onnx" or not path.is_file():
        raise ValueError(f"--inception-weights {path}: give the inception_fid.onnx that `python -m export.inception "
                         f"--weights pt_inception-2015-12-05-6726825d.pth --out DIR` writes (the .pth itself needs "
                         f"torch to read; that export is the one step that does)")
    record = path.with_suffix(".json")
    info = json.loads(record.read_text()) if record.is_file() else {}
    return FeatureNetwork("inception", 299, 3, path, info, ("pool", "logits_unbiased"))


def prepare(images: np.ndarray, network: FeatureNetwork) -> np.ndarray:
    """uint8 (n, H, W, C) pictures (C 1 or 3) -> the network's float32 input (n, channels, S, S) in [0, 1]."""
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8 or images.shape[-1] not in (1, 3):
        raise ValueError(f"feature network {network.name}: want uint8 (n, H, W, 1|3) images, got "
                         f"{images.dtype} {images.shape}")
    out = np.empty((len(images), network.channels, network.size, network.size), np.float32)
    side = (network.size, network.size)
    for i, picture in enumerate(images):
        im = Image.fromarray(picture[..., 0] if picture.shape[-1] == 1 else picture)
        x = np.asarray(im.convert("RGB").resize(side, Image.BICUBIC), dtype=np.float32) / np.float32(255.0)
        x = x.transpose(2, 0, 1)
        out[i] = np.tensordot(LUMA, x, axes=1)[None] if network.channels == 1 else x
    return out


def extract(images: np.ndarray, network: FeatureNetwork, batch_size: int = DEFAULT_BATCH,
            session=None) -> tuple[np.ndarray, np.ndarray]:
    """(features (n, d), logits (n, classes)), float64, of uint8 pictures (n, H, W, C)."""
    session = session or network.session()
    features, logits = [], []
    for start in range(0, len(images), batch_size):
        x = prepare(images[start : start + batch_size], network)
        f, l = session.run(list(network.outputs), {"image": x})
        features.append(f)
        logits.append(l)
    return np.concatenate(features).astype(np.float64), np.concatenate(logits).astype(np.float64)


def draw_pictures(dataset, n: int, key: list[int], chunk: int = 256) -> np.ndarray:
    """``n`` uint8 (n, S, S, C) pictures of ``dataset`` (an ImageFolder), in the order of
    ``np.random.default_rng(key)``'s permutation: each once, or all of them repeated in that order
    when the data hold fewer than ``n``. Loaded ``chunk`` at a time."""
    order = np.resize(np.random.default_rng(key).permutation(len(dataset)), n)
    return np.concatenate([to_uint8(dataset.load(order[i : i + chunk])) for i in range(0, n, chunk)])
