"""Optimizers (twin: ``keras_impl/optimizers.py``, which re-implements torch's exact update rules)."""

from torch.optim import Adam  # noqa: F401 - re-exported vocabulary

__all__ = ["Adam"]
