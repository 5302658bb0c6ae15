"""A model's registry parts on canonical (NCHW) arrays (twin: ``torch_impl/parts.py``).

This is the one place where Keras' NHWC public layout meets the canonical NCHW one: tensors of
kind ``"image"`` are transposed on the way in and out; vectors pass through.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from core.registry import PartSpec, get_model_spec


def part_specs(model: keras.Model) -> dict[str, PartSpec]:
    return get_model_spec(model.config.model).parts(model.config)


#: canonical -> Keras axis order per tensor kind (vectors pass through)
_TO_KERAS = {"image": (0, 2, 3, 1), "video": (0, 1, 3, 4, 2)}
_TO_CANONICAL = {"image": (0, 3, 1, 2), "video": (0, 1, 4, 2, 3)}


def _to_keras(x, kind: str):
    return ops.transpose(x, _TO_KERAS[kind]) if kind in _TO_KERAS else x


def _to_canonical(x, kind: str):
    return ops.transpose(x, _TO_CANONICAL[kind]) if kind in _TO_CANONICAL else x


def to_keras_array(x: np.ndarray, kind: str) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(x, _TO_KERAS[kind])) if kind in _TO_KERAS else np.asarray(x)


def to_canonical_array(x: np.ndarray, kind: str) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(x, _TO_CANONICAL[kind])) if kind in _TO_CANONICAL else np.asarray(x)


def part_model(model: keras.Model, part: str) -> keras.Model:
    """A functional Keras model of ``part`` with canonical NCHW inputs/outputs (for ONNX export)."""
    spec = part_specs(model)[part]
    inputs = [keras.Input(shape=t.shape[1:], name=t.name, dtype="float32") for t in spec.inputs]
    outs = getattr(model, spec.method)(*[_to_keras(x, t.kind) for x, t in zip(inputs, spec.inputs)])
    outs = outs if isinstance(outs, (tuple, list)) else (outs,)
    outputs = [_to_canonical(o, t.kind) for o, t in zip(outs, spec.outputs)]
    return keras.Model(inputs, outputs, name=part)


def run_part(model: keras.Model, part: str, *inputs: np.ndarray) -> list[np.ndarray]:
    """Run ``part`` in inference mode on NumPy inputs (canonical layout); returns NumPy outputs."""
    spec = part_specs(model)[part]
    args = [to_keras_array(x, t.kind) for x, t in zip(inputs, spec.inputs)]
    outs = getattr(model, spec.method)(*[np.asarray(a, dtype=np.float32) for a in args], training=False)
    outs = outs if isinstance(outs, (tuple, list)) else (outs,)
    return [to_canonical_array(np.asarray(o), t.kind) for o, t in zip(outs, spec.outputs)]
