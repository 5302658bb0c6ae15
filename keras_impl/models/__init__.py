"""Model classes by registry key, and :func:`build` (twin: ``torch_impl.models``)."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from core.configs import BaseConfig
from core.layouts import nchw_to_nhwc
from core.registry import get_model_spec, resolve_config

from .conv_vae import ConvVAE
from .vaegan import VAEGAN

MODEL_CLASSES: dict[str, type[keras.Model]] = {"conv_vae": ConvVAE, "vaegan": VAEGAN}


def build(name: str, config: BaseConfig | None = None, preset: str = "seed", **overrides: Any) -> keras.Model:
    """A fresh model ``name`` with all variables created (each part is run once on zeros)."""
    config = resolve_config(name, config, preset, **overrides)
    spec = get_model_spec(name)
    model = MODEL_CLASSES[name](config)
    for part in spec.parts(config).values():
        inputs = [np.zeros(t.concrete_shape(1), np.float32) for t in part.inputs]
        inputs = [nchw_to_nhwc(x) if t.kind == "image" else x for x, t in zip(inputs, part.inputs)]
        getattr(model, part.method)(*inputs)
    model.built = True
    return model
