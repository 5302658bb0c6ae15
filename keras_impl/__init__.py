"""Keras 3 (TensorFlow backend) twin of the A.G.E. models. Public API: NHWC images, canonical checkpoints."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .checkpoint import load_model, save_model  # noqa: E402
from .models import build  # noqa: E402

__all__ = ["build", "load_model", "save_model"]
