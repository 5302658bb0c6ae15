"""The tensor updates of each objective in :mod:`core.objectives` (twin: ``torch_impl.objectives``).

``<objective name>.py`` defines one function per update, ``fn(model, batch, inputs, objective)
-> {loss name: scalar tensor}``; :mod:`keras_impl.train` differentiates and steps inside a tf.function.
"""

from __future__ import annotations

import importlib
from typing import Callable


def update_function(objective: str, update: str) -> Callable:
    """The function implementing ``update`` of ``objective``."""
    return getattr(importlib.import_module(f"{__name__}.{objective}"), update)


def masks(inputs: dict, stream: str) -> list:
    """The dropout keep-masks of one pass, ``<stream>_0``, ``<stream>_1``, ... in order."""
    out, i = [], 0
    while f"{stream}_{i}" in inputs:
        out.append(inputs[f"{stream}_{i}"])
        i += 1
    return out
