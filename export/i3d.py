"""I3D as the Fréchet Video Distance uses it, rebuilt in torch and exported to ONNX for the runtime.

``python -m export.i3d --weights i3d_pretrained_400.pt --out DIR``
``python -m export.i3d convert IN.pt OUT.safetensors``

The Fréchet Video Distance (Unterthiner et al., 2018, "Towards Accurate Generative Models of Video:
A New Metric & Challenges", arXiv:1812.01717) is the Fréchet distance between Gaussians fitted to
the **400 Kinetics logits** of the Inflated 3D ConvNet (Carreira & Zisserman, 2017, "Quo Vadis,
Action Recognition? A New Model and the Kinetics Dataset": Inception-v1 with every 2D kernel
inflated to 3D) on 16-frame clips at 224 x 224, pixels scaled to [-1, 1], in batches of 16.

The reference code runs DeepMind's TF-Hub module; the PyTorch port the video-generation papers
load is ``i3d_pretrained_400.pt``, published with TATS (Ge et al., 2022, github.com/songweige/TATS,
``tats/fvd/``) and loaded by cd-fvd (Ge et al., 2024, content-debiased FVD, the ``cd-fvd`` wheel:
``cdfvd/third_party/i3d/pytorch_i3d.py``, ``InceptionI3d(400, in_channels=3)``). :class:`I3D` is
that network, written here (not imported) with the port's module and parameter names, so its state
dict loads with ``strict=True``:

* ``Unit3D``-style blocks (``conv3d`` without bias + ``bn``, BatchNorm eps 1e-5 as the port has
  it, ReLU) with TensorFlow ``SAME`` padding, split front/back as TensorFlow does (the extra pixel
  at the back): the port computes it from the input size at every call, which at FVD's input shape
  is a constant of each layer (:func:`same_padding`);
* the max pools pad the same way with zeros (they only ever see ReLU outputs, so zeros are as good
  as -inf);
* ``Logits``: average pool 2 x 7 x 7 (stride 1), a 1 x 1 x 1 convolution with bias, then the mean
  over the remaining time steps.

**Input.** float32 ``(batch, 3, 16, 224, 224)`` RGB in [0, 1] (``video``), scaled to [-1, 1]
inside; not resized inside: frames reach 224 x 224 outside, through the toolkit's one resize path
(:func:`core.metrics.features.prepare`, Pillow bicubic) — cd-fvd resizes with
``F.interpolate(bilinear)``, so scores of clips that are not already 224 x 224 compare with its
numbers only up to that resize. The time axis is fixed at :data:`FRAMES` (the padding depends on
it, and FVD is defined on 16-frame clips); the batch axis is dynamic.

**Output.** ``logits`` (batch, 400): the features of FVD.

The weights are in no wheel: whoever has the file passes its path. No SHA-256 is published for it,
so the record says ``source_is_published_file: null``.
"""

from __future__ import annotations

import os
import sys
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import feature_network
from .feature_network import DEFAULT_OPSET, TOLERANCE, FeatureNetworkSpec

WEIGHTS_FILE = "i3d_pretrained_400.pt"
FRAMES = 16
SIZE = 224
NUM_CLASSES = 400
#: clips per ONNX call in the reference FVD code
BATCH = 16
INPUT_NAME = "video"
OUTPUT_NAMES = ("logits",)
#: TF-style BatchNorm of the port (eps 1e-5; momentum is irrelevant in eval mode)
BN_EPS = 1e-5


def same_padding(kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> tuple[int, ...]:
    """TensorFlow ``SAME`` padding as ``F.pad`` lists it (last axis first, front then back, the odd
    pixel at the back) for inputs whose sizes the stride divides: ``max(k - s, 0)`` an axis.

    SAME padding depends on the size only when the stride does not divide it; at I3D's one input
    shape (16 x 224 x 224) every strided layer sees even sizes (16/224 -> 8/112 -> 56 -> 8/28 ->
    4/14), so the padding is a constant of each layer and the ONNX graph holds no shape arithmetic.
    """
    pads: list[int] = []
    for k, s in zip(kernel, stride):
        total = max(k - s, 0)
        pads = [total // 2, total - total // 2] + pads
    return tuple(pads)


class Unit3d(nn.Module):
    """SAME-padded Conv3d -> BatchNorm -> ReLU, or (``logits``) a plain Conv3d with bias."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int, int] = (1, 1, 1),
                 stride: tuple[int, int, int] = (1, 1, 1), batch_norm: bool = True) -> None:
        super().__init__()
        self.pad, self.batch_norm = same_padding(kernel, stride), batch_norm
        self.conv3d = nn.Conv3d(cin, cout, kernel, stride=stride, bias=not batch_norm)
        if batch_norm:
            self.bn = nn.BatchNorm3d(cout, eps=BN_EPS)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv3d(F.pad(x, self.pad))
        return F.relu(self.bn(x)) if self.batch_norm else x


class MaxPool3dSame(nn.Module):
    """SAME-padded (zeros) 3D max pool."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel, self.stride, self.pad = tuple(kernel), tuple(stride), same_padding(kernel, stride)

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool3d(F.pad(x, self.pad), self.kernel, self.stride)


class Mixed(nn.Module):
    """Inception block: 1x1 | 1x1-3x3 | 1x1-3x3 | maxpool-1x1, all 3D, concatenated.

    ``widths`` = (b0, b1a, b1b, b2a, b2b, b3b) output channels, in the port's order.
    """

    def __init__(self, cin: int, widths: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3b = widths
        self.b0 = Unit3d(cin, w0)
        self.b1a = Unit3d(cin, w1a)
        self.b1b = Unit3d(w1a, w1b, (3, 3, 3))
        self.b2a = Unit3d(cin, w2a)
        self.b2b = Unit3d(w2a, w2b, (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3d(cin, w3b)
        self.width = w0 + w1b + w2b + w3b

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


#: (name, widths) of the Inception blocks, and the pools between them, in order
_MIXED_3 = (("Mixed_3b", (64, 96, 128, 16, 32, 32)), ("Mixed_3c", (128, 128, 192, 32, 96, 64)))
_MIXED_4 = (("Mixed_4b", (192, 96, 208, 16, 48, 64)), ("Mixed_4c", (160, 112, 224, 24, 64, 64)),
            ("Mixed_4d", (128, 128, 256, 24, 64, 64)), ("Mixed_4e", (112, 144, 288, 32, 64, 64)),
            ("Mixed_4f", (256, 160, 320, 32, 128, 128)))
_MIXED_5 = (("Mixed_5b", (256, 160, 320, 32, 128, 128)), ("Mixed_5c", (384, 192, 384, 48, 128, 128)))


class I3D(nn.Module):
    """Kinetics-400 I3D for FVD: [0, 1] RGB (B, 3, 16, 224, 224) -> (B, 400) logits.

    Attribute names are the port's end points (``Conv3d_1a_7x7`` ... ``Mixed_5c``, ``logits``), so
    ``i3d_pretrained_400.pt`` loads with ``strict=True``. Always used in eval mode.
    """

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3d(3, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3d(64, 64)
        self.Conv3d_2c_3x3 = Unit3d(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        width = 192
        for stage, pool in ((_MIXED_3, ("MaxPool3d_4a_3x3", (3, 3, 3), (2, 2, 2))),
                            (_MIXED_4, ("MaxPool3d_5a_2x2", (2, 2, 2), (2, 2, 2))), (_MIXED_5, None)):
            for name, widths in stage:
                block = Mixed(width, widths)
                setattr(self, name, block)
                width = block.width
            if pool:
                setattr(self, pool[0], MaxPool3dSame(pool[1], pool[2]))
        self.logits = Unit3d(width, num_classes, batch_norm=False)
        self.stages = [name for name, _ in self.named_children() if name != "logits"]

    def forward(self, x: Tensor) -> Tensor:
        if not torch.jit.is_tracing() and tuple(x.shape[1:]) != (3, FRAMES, SIZE, SIZE):
            raise ValueError(f"I3D takes (batch, 3, {FRAMES}, {SIZE}, {SIZE}) clips, got {tuple(x.shape)}")
        x = 2.0 * x - 1.0  # [0, 1] -> [-1, 1], the port's input range
        for name in self.stages:
            x = getattr(self, name)(x)
        x = self.logits(F.avg_pool3d(x, (2, 7, 7), stride=1))  # dropout: identity in eval mode
        return x.mean(dim=(3, 4)).mean(dim=2)


# --------------------------------------------------------------------------- weights, export, CLI
SPEC = FeatureNetworkSpec(
    name="i3d",
    build_module=I3D,
    weights_file=WEIGHTS_FILE,
    sha256_prefix=None,
    weights_source="the PyTorch port of the Kinetics-400 I3D published with TATS, github.com/songweige/TATS, "
                   "tats/fvd/, and loaded by cd-fvd",
    title="FVD I3D",
    alternative="without it FVD is unavailable; the per-frame metrics with the built-in digits network work without it",
    input_shape=(3, FRAMES, SIZE, SIZE),
    input_name=INPUT_NAME,
    output_names=OUTPUT_NAMES,
    record={
        "architecture": "I3D (Inception-v1 inflated to 3D), Kinetics-400, the TATS/cd-fvd PyTorch port",
        "input": f"{INPUT_NAME}: float32 (batch, 3, {FRAMES}, {SIZE}, {SIZE}) RGB in [0, 1]; scaled to [-1, 1] "
                 f"inside; not resized inside (resize to {SIZE} outside, core.metrics.features.prepare)",
        "frames": FRAMES,
        "outputs": {"logits": NUM_CLASSES},
        "output_notes": {"logits": "Kinetics-400 logits, averaged over the remaining time steps: FVD's features"},
    },
    unexpected_hint="the FVD I3D has 400 classes and no other heads",
)
NEED_WEIGHTS = SPEC.need_weights
ONNX_NAME, JSON_NAME = SPEC.onnx_name, SPEC.json_name


def load_weights(path: str | os.PathLike) -> OrderedDict[str, Tensor]:
    """Read and check the I3D weights (:func:`export.feature_network.load_weights`)."""
    return feature_network.load_weights(SPEC, path)


def export_i3d(weights_path: str | os.PathLike, out_dir: str | os.PathLike, *,
               opset: int = DEFAULT_OPSET, tolerance: float = TOLERANCE, seed: int = 0) -> Path:
    """Export ``out_dir/i3d.onnx`` (dynamic batch, 16 frames), checked against torch."""
    return feature_network.export_network(SPEC, weights_path, out_dir, opset=opset, tolerance=tolerance, seed=seed)


def main(argv: list[str] | None = None) -> int:
    return feature_network.main(SPEC, "python -m export.i3d", __doc__.split("\n\n")[0], argv)


if __name__ == "__main__":
    sys.exit(main())
