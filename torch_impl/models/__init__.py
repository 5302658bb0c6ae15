"""Models by registry key, found by convention (twin: ``keras_impl.models``).

``core/models/<name>.py`` registers a model; its class ``class_name`` lives in
``torch_impl/models/<twin module>.py``. Nothing here names a model.
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from core.configs import BaseConfig
from core.registry import get_model_spec, resolve_config


def model_class(name: str) -> type[nn.Module]:
    """The torch class of registered model ``name``."""
    spec = get_model_spec(name)
    return getattr(importlib.import_module(f"{__name__}.{spec.twin_module}"), spec.class_name)


def build(name: str, config: BaseConfig | None = None, preset: str = "seed", **overrides: Any) -> nn.Module:
    """A fresh model ``name`` from ``config`` (default: the ``preset`` config with ``overrides``)."""
    config = resolve_config(name, config, preset, **overrides)
    return model_class(name)(config)
