"""PyTorch twin of the A.G.E. models. Public API: NCHW tensors, canonical checkpoints."""

from .checkpoint import load_model, save_model
from .models import build

__all__ = ["build", "load_model", "save_model"]
