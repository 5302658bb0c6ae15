"""BatchNorm over features (twin: ``keras_impl/layers/batchnorm.py``).

``BatchNorm1d`` is ``torch.nn.BatchNorm1d`` on (B, F) inputs (a Linear layer's output, e.g. the
DCGAN generator's projection before its reshape). Like the repo's ``BatchNorm2d``
(``torch_impl/layers/core.py``) it refuses one value per feature in training mode with
:class:`core.errors.BatchTooSmall`, the same error as the Keras twin.
"""

from __future__ import annotations

import torch
from torch import nn

from core.errors import require_batch_statistics


class BatchNorm1d(nn.BatchNorm1d):
    """``nn.BatchNorm1d(num_features, eps, momentum)`` (torch's momentum convention:
    new = (1 - m) * old + m * batch) with the shared batch-size check."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            require_batch_statistics(x.shape[0], x.shape[2] if x.dim() == 3 else 1, 1)
        return super().forward(x)
