"""Models by registry key, found by convention (twin: ``torch_impl.models``): the class
``class_name`` of ``keras_impl/models/<twin module>.py``. Nothing here names a model."""

from __future__ import annotations

import importlib
from typing import Any

import keras
import numpy as np

from core.configs import BaseConfig
from core.registry import get_model_spec, resolve_config

from ..parts import to_keras_array



def model_class(name: str) -> type[keras.Model]:
    """The Keras class of registered model ``name``."""
    spec = get_model_spec(name)
    return getattr(importlib.import_module(f"{__name__}.{spec.twin_module}"), spec.class_name)


def build(name: str, config: BaseConfig | None = None, preset: str = "seed", **overrides: Any) -> keras.Model:
    """A fresh model ``name`` with all variables created (each part is run once on zeros)."""
    config = resolve_config(name, config, preset, **overrides)
    spec = get_model_spec(name)
    model = model_class(name)(config)
    for part in spec.parts(config).values():
        inputs = [np.zeros(t.concrete_shape(1), np.float32) for t in part.inputs]
        inputs = [to_keras_array(x, t.kind) for x, t in zip(inputs, part.inputs)]
        getattr(model, part.method)(*inputs)
    model.built = True
    return model
