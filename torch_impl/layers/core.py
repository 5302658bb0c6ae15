"""The layer vocabulary the models are written in.

In torch these are simply ``torch.nn``'s classes; the Keras twin (``keras_impl/layers/core.py``)
re-implements each with torch's constructor arguments and numerics, so a model file reads the
same in both trees.
"""

import torch
from torch import nn
from torch.nn import (  # noqa: F401 - re-exported vocabulary
    Conv2d,
    Conv3d,
    ConvTranspose2d,
    ConvTranspose3d,
    LayerNorm,
    LeakyReLU,
    Linear,
    MaxPool2d,
    ModuleList,
    ReLU,
    Sequential,
    Sigmoid,
)

from core.errors import require_batch_statistics  # noqa: E402

__all__ = ["BatchNorm2d", "BatchNorm3d", "Conv2d", "Conv3d", "ConvTranspose2d", "ConvTranspose3d", "LayerNorm", "LeakyReLU", "Linear", "MaxPool2d",
           "ModuleList", "ReLU", "Sequential", "Sigmoid"]


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` that refuses one value per channel in training mode with the same
    :class:`core.errors.BatchTooSmall` as the Keras twin (torch's own error is a different text)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            require_batch_statistics(x.shape[0], x.shape[2], x.shape[3])
        return super().forward(x)


class BatchNorm3d(nn.BatchNorm3d):
    """``nn.BatchNorm3d`` with the same one-value-per-channel refusal as :class:`BatchNorm2d`
    (the frames and the pixels of a volume count together)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            require_batch_statistics(x.shape[0], x.shape[2] * x.shape[3], x.shape[4])
        return super().forward(x)
