"""The tensor updates of each objective in :mod:`core.objectives` (twin: ``torch_impl.objectives``).

``<objective name>.py`` defines one function per update, ``fn(model, batch, inputs, objective)
-> {loss name: scalar tensor}``; :mod:`keras_impl.train` differentiates and steps inside a tf.function.
"""

from __future__ import annotations

from typing import Callable

from core.objectives.base import masks, penalized, update_function as _find, with_penalty

__all__ = ["masks", "penalized", "update_function", "with_penalty"]


def update_function(objective: str, update: str) -> Callable:
    """The function implementing ``update`` of ``objective`` in this framework."""
    return _find(__name__, objective, update)
