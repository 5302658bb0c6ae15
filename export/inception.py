"""Inception-v3 as FID defines it, rebuilt in torch and exported to ONNX for the runtime.

``python -m export.inception --weights pt_inception-2015-12-05-6726825d.pth --out DIR``
``python -m export.inception convert IN.pth OUT.safetensors``

The Fréchet Inception Distance (Heusel et al., 2017, "GANs Trained by a Two Time-Scale Update Rule
Converge to a Local Nash Equilibrium") is defined on the pool features of one particular network:
the Inception-v3 (Szegedy et al., 2016, "Rethinking the Inception Architecture for Computer
Vision") of TensorFlow's 2015-12-05 graph, ``inception-2015-12-05.tgz``. pytorch-fid
(``pytorch_fid/inception.py``: ``fid_inception_v3``, ``FIDInceptionA/C/E_1/E_2``) is the reference
PyTorch port of that graph, and its weights file ``pt_inception-2015-12-05-6726825d.pth`` is the
one pytorch-fid and torch-fidelity both load. It differs from torchvision's Inception-v3 in

* 1008 classes (the 2015 graph's softmax has 1008 outputs: the 1000 ImageNet classes plus 8
  unused ones), not torchvision's 1000; no auxiliary classifier;
* the 3 x 3 average pools inside the A, C and first E blocks ignore the zero padding
  (TensorFlow's ``AVG`` pooling, ``count_include_pad=False``);
* the last E block (``Mixed_7c``) pools its pool branch with a 3 x 3 *max* pool.

:class:`FIDInceptionV3` is that network, written here (not imported) with the module and
parameter names of torchvision's ``Inception3`` / pytorch-fid, so the standard state dict loads
with ``strict=True``. The weights are in no wheel: whoever has the file passes its path.

**Input and preprocessing.** The graph takes float32 ``(batch, 3, 299, 299)`` RGB in [0, 1] and
scales it to [-1, 1] (``2 x - 1``) inside, as pytorch-fid's ``InceptionV3(resize_input=False,
normalize_input=True)`` does. It does **not** resize: pictures reach 299 x 299 outside, through
the toolkit's one resize path (:func:`core.metrics.features.prepare`, Pillow bicubic), the same for
generated and real pictures. pytorch-fid resizes with ``F.interpolate(bilinear)`` and
torch-fidelity with a TF1-style bilinear instead, so scores of pictures that are not already
299 x 299 are comparable with theirs only up to that resize.

**Outputs.**

* ``pool`` (batch, 2048): the global average pool after ``Mixed_7c``, the features of FID, KID and
  precision/recall (pytorch-fid's block 3, torch-fidelity's ``"2048"``).
* ``logits`` (batch, 1008): the full ``fc`` output, ``pool @ W.T + b`` (what torchvision's /
  pytorch-fid's ``Inception3.fc`` computes; torch-fidelity's ``"logits"``).
* ``logits_unbiased`` (batch, 1008): ``pool @ W.T`` without the bias. The original Inception Score
  code (Salimans et al., 2016) multiplies ``pool_3`` by the softmax weights without the bias, and
  torch-fidelity's default IS feature is this ``"logits_unbiased"``; the Inception Score is the
  softmax over all 1008 of them. Use it to compare IS with published numbers.

:func:`export_inception` checks onnxruntime against torch (max |diff| <= 1e-4 on a random batch of
a size other than the traced one) and writes ``inception_fid.onnx`` plus ``inception_fid.json``
(source file name and SHA-256, input and output conventions).

**Weights files.** :func:`load_weights` reads the standard ``.pth`` with
``torch.load(weights_only=True)`` (torch's restricted unpickler: tensors and plain containers,
no arbitrary code) or a ``.safetensors`` copy (no pickle at all; the toolkit's rule is never to
unpickle, so ``convert`` writes such a copy once), and checks every expected key and shape.
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
from .feature_network import DEFAULT_OPSET, TOLERANCE, FeatureNetworkSpec, sha256  # noqa: F401 - re-exported

#: the standard file name (torch hub convention: the suffix is the first 8 hex digits of its SHA-256)
WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_SHA256_PREFIX = "6726825d"
WEIGHTS_SOURCE = "https://github.com/mseitzer/pytorch-fid/releases (tag fid_weights)"
SIZE = 299
NUM_CLASSES = 1008
POOL_DIM = 2048
INPUT_NAME = "image"
OUTPUT_NAMES = ("pool", "logits", "logits_unbiased")


# --------------------------------------------------------------------------- the network
class ConvBN(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3, TensorFlow's) -> ReLU: torchvision's ``BasicConv2d``."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool(x: Tensor) -> Tensor:
    """3 x 3 / 1 average pool over the real pixels only (TensorFlow ``AVG``, zero padding not counted)."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class MixedA(nn.Module):
    """35 x 35 block (Mixed_5b/c/d): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(cin, 64, 1)
        self.branch5x5_1 = ConvBN(cin, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(cin, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch1x1(x)
        b = self.branch5x5_2(self.branch5x5_1(x))
        c = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        d = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([a, b, c, d], 1)


class MixedB(nn.Module):
    """35 -> 17 reduction (Mixed_6a): 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = ConvBN(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch3x3(x)
        b = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([a, b, F.max_pool2d(x, 3, stride=2)], 1)


class MixedC(nn.Module):
    """17 x 17 block with factorised 7 x 7 convolutions (Mixed_6b..6e)."""

    def __init__(self, cin: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))  # (kernel, padding)
        self.branch1x1 = ConvBN(cin, 192, 1)
        self.branch7x7_1 = ConvBN(cin, c7, 1)
        self.branch7x7_2 = ConvBN(c7, c7, row[0], padding=row[1])
        self.branch7x7_3 = ConvBN(c7, 192, col[0], padding=col[1])
        self.branch7x7dbl_1 = ConvBN(cin, c7, 1)
        self.branch7x7dbl_2 = ConvBN(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_3 = ConvBN(c7, c7, row[0], padding=row[1])
        self.branch7x7dbl_4 = ConvBN(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_5 = ConvBN(c7, 192, row[0], padding=row[1])
        self.branch_pool = ConvBN(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch1x1(x)
        b = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        c = x
        for conv in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                     self.branch7x7dbl_4, self.branch7x7dbl_5):
            c = conv(c)
        d = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([a, b, c, d], 1)


class MixedD(nn.Module):
    """17 -> 8 reduction (Mixed_7a): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = ConvBN(cin, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(cin, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch3x3_2(self.branch3x3_1(x))
        b = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([a, b, F.max_pool2d(x, 3, stride=2)], 1)


class MixedE(nn.Module):
    """8 x 8 block with split 1x3 / 3x1 outputs (Mixed_7b, Mixed_7c).

    ``pool="avg"`` (Mixed_7b) pools the pool branch with the padding-excluding average pool;
    ``pool="max"`` (Mixed_7c) with a 3 x 3 / 1 max pool, as the 2015 graph does (pytorch-fid's
    ``FIDInceptionE_2``).
    """

    def __init__(self, cin: int, pool: str) -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"MixedE pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = ConvBN(cin, 320, 1)
        self.branch3x3_1 = ConvBN(cin, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(cin, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch1x1(x)
        b = self.branch3x3_1(x)
        b = torch.cat([self.branch3x3_2a(b), self.branch3x3_2b(b)], 1)
        c = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        c = torch.cat([self.branch3x3dbl_3a(c), self.branch3x3dbl_3b(c)], 1)
        pooled = _tf_avg_pool(x) if self.pool == "avg" else F.max_pool2d(x, 3, stride=1, padding=1)
        d = self.branch_pool(pooled)
        return torch.cat([a, b, c, d], 1)


class FIDInceptionV3(nn.Module):
    """The FID Inception-v3 (2015-12-05 graph): [0, 1] RGB (B, 3, 299, 299) -> (pool, logits, logits_unbiased).

    Module names follow torchvision's ``Inception3`` without ``AuxLogits`` (``Conv2d_1a_3x3`` ...
    ``Mixed_7c``, ``fc``), so pytorch-fid's weights file loads with ``strict=True``. Always used in
    eval mode (BatchNorm running statistics).
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = MixedA(192, pool_features=32)
        self.Mixed_5c = MixedA(256, pool_features=64)
        self.Mixed_5d = MixedA(288, pool_features=64)
        self.Mixed_6a = MixedB(288)
        self.Mixed_6b = MixedC(768, channels_7x7=128)
        self.Mixed_6c = MixedC(768, channels_7x7=160)
        self.Mixed_6d = MixedC(768, channels_7x7=160)
        self.Mixed_6e = MixedC(768, channels_7x7=192)
        self.Mixed_7a = MixedD(768)
        self.Mixed_7b = MixedE(1280, pool="avg")
        self.Mixed_7c = MixedE(2048, pool="max")
        self.fc = nn.Linear(POOL_DIM, NUM_CLASSES)

    def features(self, x: Tensor) -> Tensor:
        """[0, 1] images -> (B, 2048) pool features (the [-1, 1] scaling is done here)."""
        x = 2.0 * x - 1.0  # pytorch-fid normalize_input: [0, 1] -> [-1, 1]
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                      self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b,
                      self.Mixed_7c):
            x = block(x)
        return x.mean(dim=(2, 3))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        pool = self.features(x)
        unbiased = pool @ self.fc.weight.t()
        return pool, unbiased + self.fc.bias, unbiased


# --------------------------------------------------------------------------- weights, export, CLI
SPEC = FeatureNetworkSpec(
    name="inception_fid",
    build_module=FIDInceptionV3,
    weights_file=WEIGHTS_FILE,
    sha256_prefix=WEIGHTS_SHA256_PREFIX,
    weights_source="the file pytorch-fid and torch-fidelity use, from the pytorch-fid GitHub releases, tag fid_weights",
    title="FID Inception",
    alternative="the built-in digits feature network works without it",
    input_shape=(3, SIZE, SIZE),
    input_name=INPUT_NAME,
    output_names=OUTPUT_NAMES,
    record={
        "architecture": "Inception-v3, TensorFlow 2015-12-05 graph (FID; pytorch-fid's fid_inception_v3 port)",
        "input": f"{INPUT_NAME}: float32 (batch, 3, {SIZE}, {SIZE}) RGB in [0, 1]; scaled to [-1, 1] inside; "
                 f"not resized inside (resize to {SIZE} outside, core.metrics.features.prepare)",
        "outputs": {"pool": POOL_DIM, "logits": NUM_CLASSES, "logits_unbiased": NUM_CLASSES},
        "output_notes": {
            "pool": "global average pool after Mixed_7c: FID, KID, precision/recall features",
            "logits": "fc(pool) with bias, 1008 classes (2015 graph: 1000 ImageNet + 8 unused)",
            "logits_unbiased": "pool @ fc.weight.T, no bias: the Inception Score input of the original "
                               "code and torch-fidelity (softmax over all 1008)",
        },
    },
    unexpected_hint="the FID Inception has no auxiliary classifier and 1008 classes",
)
NEED_WEIGHTS = SPEC.need_weights
ONNX_NAME, JSON_NAME = SPEC.onnx_name, SPEC.json_name


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """{state dict key: shape} of the FID Inception (BatchNorm ``num_batches_tracked`` counters excluded)."""
    return feature_network.expected_shapes(SPEC)


def load_weights(path: str | os.PathLike) -> OrderedDict[str, Tensor]:
    """Read and check the FID Inception weights (``.pth`` as published, or a ``.safetensors`` copy);
    :func:`export.feature_network.load_weights`."""
    return feature_network.load_weights(SPEC, path)


def build(weights_path: str | os.PathLike) -> FIDInceptionV3:
    """The FID Inception in eval mode with the checked weights of ``weights_path`` loaded (strict)."""
    return feature_network.build(SPEC, weights_path)


def convert(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Write a checked ``.safetensors`` copy of the weights (read once with the restricted unpickler)."""
    return feature_network.convert(SPEC, src, dst)


def export_inception(weights_path: str | os.PathLike, out_dir: str | os.PathLike, *,
                     opset: int = DEFAULT_OPSET, tolerance: float = TOLERANCE, seed: int = 0) -> Path:
    """Export ``out_dir/inception_fid.onnx`` (dynamic batch), checked against torch
    (:func:`export.feature_network.export_network`)."""
    return feature_network.export_network(SPEC, weights_path, out_dir, opset=opset, tolerance=tolerance, seed=seed)


def main(argv: list[str] | None = None) -> int:
    return feature_network.main(SPEC, "python -m export.inception", __doc__.split("\n\n")[0], argv)


if __name__ == "__main__":
    sys.exit(main())
