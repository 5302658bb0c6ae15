"""Framework-neutral initial weights for a Keras model (twin: ``torch_impl/init.py``).

:func:`init_entries` lists (canonical name, torch shape, :class:`core.init.Init`) for every
checkpoint tensor of the model; :func:`initialize` draws them with :func:`core.init.initial_tensors`
and loads them with :func:`keras_impl.checkpoint.load_tensors` (which applies the layout rules).
The torch twin lists the same entries, so one seed gives the bit-identical model in both
frameworks; Keras' own initialisers (Glorot, ...) are overwritten.

Where the rules come from: every :class:`keras_impl.layers.core.TorchLayer` declares them with
``init_rules()`` — {torch name relative to the layer: Init}, for its ``torch_params()`` and
optionally overrides of its children's (e.g. ``"head.bias"``). Layers are visited outer first
(:func:`keras_impl.layers.core.torch_named_layers`) and the outermost declaration of a tensor wins.
A new layer declares its rules by defining ``init_rules()``; nothing else is edited.
"""

from __future__ import annotations

from typing import Iterator

import keras

from core.init import Init, InitEntry, initial_tensors, resolve_entries

from .checkpoint import expected_shapes, load_tensors
from .layers.core import TorchLayer, torch_named_layers


def module_init_rules(layer: keras.layers.Layer) -> dict[str, Init]:
    """The rules ``layer`` declares for tensors under it (relative names)."""
    return layer.init_rules() if isinstance(layer, TorchLayer) else {}


def _declared(model: keras.layers.Layer) -> Iterator[tuple[str, Init]]:
    for prefix, layer in torch_named_layers(model):  # outer layers first
        for name, init in module_init_rules(layer).items():
            yield prefix + name, init


def init_entries(model: keras.layers.Layer) -> list[InitEntry]:
    """(canonical name, torch shape, Init) for every checkpoint tensor of ``model``, in checkpoint order."""
    return resolve_entries(expected_shapes(model), _declared(model))


def initialize(model: keras.layers.Layer, seed: int) -> keras.layers.Layer:
    """Overwrite every mirrored variable of ``model`` with the framework-neutral initial weights
    of ``seed`` (:func:`core.init.initial_tensors`); returns ``model``."""
    tensors = initial_tensors(init_entries(model), seed)
    return load_tensors(model, tensors, f"initial weights (seed {seed})")
