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

Two more networks are exported by the user from weights files no wheel ships: FID's Inception-v3
(:func:`inception`, ``python -m export.inception``) and FVD's I3D (:func:`i3d`, ``python -m
export.i3d``), whose input is a clip: every frame goes through the same :func:`prepare`
(:func:`prepare_clips`). Video models are also measured per frame with the image networks, on
one frame a clip (:func:`frame_sample`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from .. import progress
from ..images import LUMA, to_uint8

FEATURES_DIR = Path(__file__).resolve().parent / "networks"
#: the filter of every resize on the way into a feature network
RESIZE_FILTER = "bicubic (Pillow Image.BICUBIC, antialiased when shrinking)"
DEFAULT_BATCH = 64
#: an exported network's JSON record is a few KB; anything far larger is not one
MAX_RECORD_BYTES = 1 << 20


@dataclass(frozen=True)
class FeatureNetwork:
    """One ONNX feature network: its name, input side and channels, the outputs holding its
    features and its classifier logits, and the session running it."""

    name: str
    size: int
    channels: int
    path: Path
    info: dict
    #: (features output, logits output) of the graph (the same name twice when the logits are the features)
    outputs: tuple[str, str] = ("features", "logits")
    #: frames per clip of a video network (its input is (batch, channels, frames, S, S)); 0 for images
    frames: int = 0
    input_name: str = "image"

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Per-sample input shape: (channels, S, S), or (channels, frames, S, S) for video."""
        return (self.channels, *((self.frames,) if self.frames else ()), self.size, self.size)

    def session(self):
        import onnxruntime as ort

        return ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])

    def check(self, session, flag: str) -> None:
        """Refuse (ValueError naming ``flag`` and the file) a session that is not this network: one
        input ``input_name`` of shape (batch, *input_shape), and the feature and logit outputs."""
        inputs = session.get_inputs()
        outputs = {o.name for o in session.get_outputs()}
        got = [(i.name, list(i.shape)) for i in inputs]
        if len(inputs) != 1 or inputs[0].name != self.input_name or list(inputs[0].shape[1:]) != list(self.input_shape):
            raise ValueError(f"{flag} {self.path}: not the {self.name} network: it takes {got}, the {self.name} "
                             f"network one {self.input_name!r} of shape (batch, {', '.join(map(str, self.input_shape))})")
        missing = [o for o in self.outputs if o not in outputs]
        if missing:
            raise ValueError(f"{flag} {self.path}: not the {self.name} network: no output {missing[0]!r} "
                             f"(it has {sorted(outputs)})")


def digits() -> FeatureNetwork:
    """The built-in digits network (28 x 28 luma)."""
    path = FEATURES_DIR / "digits.onnx"
    info = json.loads((FEATURES_DIR / "digits.json").read_text())
    return FeatureNetwork("digits", 28, 1, path, info)


def _exported(path: str | Path, flag: str, onnx_name: str, module: str, weights: str) -> tuple[Path, dict]:
    """An ONNX feature network written by ``python -m <module>`` and its JSON record."""
    path = Path(path)
    if path.suffix != ".onnx" or not path.is_file():
        raise ValueError(f"{flag} {path}: give the {onnx_name} that "
                         f"`python -m {module} --weights {weights} --out DIR` writes (the weights file itself "
                         f"needs torch to read; that export is the one step that does)")
    record = path.with_suffix(".json")
    if not record.is_file():
        return path, {}
    try:
        if record.stat().st_size > MAX_RECORD_BYTES:
            raise ValueError(f"larger than {MAX_RECORD_BYTES} bytes")
        info = json.loads(record.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{flag} {path}: its record {record.name} is not readable JSON ({exc})") from None
    if not isinstance(info, dict):
        raise ValueError(f"{flag} {path}: its record {record.name} holds a {type(info).__name__}, not an object")
    return path, info


def inception(path: str | Path) -> FeatureNetwork:
    """Inception-v3 as FID defines it, exported by ``python -m export.inception --weights
    pt_inception-2015-12-05-6726825d.pth --out DIR`` (``DIR/inception_fid.onnx``): 299 x 299 RGB,
    2048-d ``pool`` features, and ``logits_unbiased`` (the fc layer without its bias, what
    torch-fidelity's Inception Score reads) for IS."""
    path, info = _exported(path, "--inception-weights", "inception_fid.onnx", "export.inception",
                           "pt_inception-2015-12-05-6726825d.pth")
    return FeatureNetwork("inception", 299, 3, path, info, ("pool", "logits_unbiased"))


def i3d(path: str | Path) -> FeatureNetwork:
    """FVD's I3D, exported by ``python -m export.i3d --weights i3d_pretrained_400.pt --out DIR``
    (``DIR/i3d.onnx``): 16 frames of 224 x 224 RGB, 400 Kinetics logits, which are FVD's features."""
    path, info = _exported(path, "--i3d-weights", "i3d.onnx", "export.i3d", "i3d_pretrained_400.pt")
    return FeatureNetwork("i3d", 224, 3, path, info, ("logits", "logits"), frames=16, input_name="video")


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
        f, l = session.run(list(network.outputs), {network.input_name: x})
        features.append(f)
        logits.append(l)
    return np.concatenate(features).astype(np.float64), np.concatenate(logits).astype(np.float64)


def prepare_clips(clips: np.ndarray, network: FeatureNetwork) -> np.ndarray:
    """uint8 (n, T, H, W, C) clips, T >= the network's frames -> its float32 input
    (n, channels, frames, S, S) in [0, 1]: the first ``frames`` frames, each through :func:`prepare`."""
    clips = np.asarray(clips)
    if clips.ndim != 5 or clips.shape[1] < network.frames:
        raise ValueError(f"feature network {network.name}: want uint8 (n, T >= {network.frames}, H, W, C) clips, "
                         f"got {clips.dtype} {clips.shape}")
    n, frames = len(clips), network.frames
    x = prepare(clips[:, :frames].reshape(n * frames, *clips.shape[2:]), network)
    return x.reshape(n, frames, *x.shape[1:]).transpose(0, 2, 1, 3, 4)


def extract_clips(clips: np.ndarray, network: FeatureNetwork, batch_size: int = 16,
                  session=None) -> np.ndarray:
    """(n, d) float64 features of uint8 clips (n, T, H, W, C) through a video network, ``batch_size``
    clips a call (16, as the FVD reference feeds I3D)."""
    session = session or network.session()
    out, bar = [], progress.bar(len(clips), "clip", f"{network.name} features")
    try:
        for i in range(0, len(clips), batch_size):
            x = prepare_clips(clips[i : i + batch_size], network)
            out.append(session.run([network.outputs[0]], {network.input_name: x})[0])
            bar.update(len(x))
    finally:
        bar.close()
    return np.concatenate(out).astype(np.float64)


def frame_sample(clips: np.ndarray, start: int = 0) -> np.ndarray:
    """One frame a clip, (n, H, W, C) from (n, T, H, W, C): frame ``i mod T`` of clip ``i``, so every
    time step is equally represented and the per-frame metrics compare as many frames as there are
    clips (the same n, hence the same bias, as an image model's numbers). ``start``: the index of
    the first clip when ``clips`` is a chunk of a longer set."""
    clips = np.asarray(clips)
    index = np.arange(len(clips))
    return clips[index, (index + start) % clips.shape[1]]


def draw_pictures(dataset, n: int, key: list[int], chunk: int = 256,
                  each: Callable[[np.ndarray, int], np.ndarray] | None = None) -> np.ndarray:
    """``n`` uint8 (n, S, S, C) pictures of ``dataset`` (an ImageFolder; a VideoFolder gives
    (n, T, S, S, C) clips), in the order of
    ``np.random.default_rng(key)``'s permutation: each once, or all of them repeated in that order
    when the data hold fewer than ``n``. Loaded ``chunk`` at a time; ``each(chunk_pictures, start)``,
    when given, maps every chunk as it is loaded (e.g. :func:`frame_sample`, so whole clips are never
    all in memory at once)."""
    order = np.resize(np.random.default_rng(key).permutation(len(dataset)), n)
    each = each or (lambda pictures, start: pictures)
    return np.concatenate([each(to_uint8(dataset.load(order[i : i + chunk])), i) for i in range(0, n, chunk)])
