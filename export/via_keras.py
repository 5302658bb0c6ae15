"""Export one part through Keras' own ONNX exporter (``model.export(format="onnx")``, tf2onnx).

The exported graph is NCHW like the torch one: :func:`keras_impl.parts.part_model` wraps the
part with the layout transposes before export.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings

import numpy as np
import onnx

from core.checkpoint import Checkpoint
from core.registry import PartSpec


def load(ckpt: Checkpoint):
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from keras_impl.checkpoint import load_tensors
    from keras_impl.models import build

    return load_tensors(build(ckpt.model, ckpt.config), ckpt.tensors, str(ckpt.path))


def export_part(model, part: PartSpec, opset: int) -> onnx.ModelProto:
    import tensorflow as tf

    from keras_impl.parts import part_model

    wrapped = part_model(model, part.name)
    signature = [tf.TensorSpec((None, *t.shape[1:]), tf.float32, name=t.name) for t in part.inputs]
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = os.path.join(tmp, f"{part.name}.onnx")
        wrapped.export(path, format="onnx", input_signature=signature, opset_version=opset, verbose=False)
        return onnx.load(path)


def run(model, part: PartSpec, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from keras_impl.parts import run_part

    return run_part(model, part.name, *inputs)
