"""BatchNorm over features (twin: ``torch_impl/layers/batchnorm.py``).

``BatchNorm1d`` is torch.nn.BatchNorm1d on (B, F) inputs, with torch's numerics exactly as the
repo's ``BatchNorm2d`` (``keras_impl/layers/core.py``), which it reuses: eps and momentum given in
torch's convention (Keras' ``BatchNormalization(momentum=0.99, epsilon=1e-3)`` is torch's
``momentum=0.01, eps=1e-3``), batch statistics over every axis but the last, the biased variance
for normalising and the unbiased one (n/(n-1)) for the running variance. Checkpoint names and
initial weights are BatchNorm2d's: ``weight``, ``bias``, ``running_mean``, ``running_var``.
"""

from __future__ import annotations

from core.errors import batch_too_small_message, require_batch_statistics

from .core import BatchNorm2d


class BatchNorm1d(BatchNorm2d):
    """torch.nn.BatchNorm1d over the last (feature) axis of a (B, F) input."""

    @staticmethod
    def _require_batch_statistics(x) -> None:
        """One value per feature (a batch of one): the same :class:`core.errors.BatchTooSmall`
        as torch; checked in the graph when the batch size is symbolic."""
        if len(x.shape) != 2:
            raise ValueError(f"BatchNorm1d: expected a (batch, features) input, got shape {tuple(x.shape)}")
        b = x.shape[0]
        require_batch_statistics(b, 1, 1)
        if b is None:
            import tensorflow as tf

            tf.debugging.assert_greater(tf.shape(x)[0], 1, message=batch_too_small_message("1", 1, 1))
