"""Model classes by registry key, and :func:`build` (twin: ``keras_impl.models``)."""

from __future__ import annotations

from typing import Any

from torch import nn

from core.configs import BaseConfig
from core.registry import resolve_config

from .conv_vae import ConvVAE
from .vaegan import VAEGAN

MODEL_CLASSES: dict[str, type[nn.Module]] = {"conv_vae": ConvVAE, "vaegan": VAEGAN}


def build(name: str, config: BaseConfig | None = None, preset: str = "seed", **overrides: Any) -> nn.Module:
    """A fresh model ``name`` from ``config`` (default: the ``preset`` config with ``overrides``)."""
    config = resolve_config(name, config, preset, **overrides)
    return MODEL_CLASSES[name](config)
