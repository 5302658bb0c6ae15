"""The layer vocabulary the models are written in.

In torch these are simply ``torch.nn``'s classes; the Keras twin (``keras_impl/layers/core.py``)
re-implements each with torch's constructor arguments and numerics, so a model file reads the
same in both trees.
"""

from torch.nn import (  # noqa: F401 - re-exported vocabulary
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    LayerNorm,
    LeakyReLU,
    Linear,
    MaxPool2d,
    ModuleList,
    ReLU,
    Sequential,
    Sigmoid,
)

__all__ = ["BatchNorm2d", "Conv2d", "ConvTranspose2d", "LayerNorm", "LeakyReLU", "Linear", "MaxPool2d",
           "ModuleList", "ReLU", "Sequential", "Sigmoid"]
