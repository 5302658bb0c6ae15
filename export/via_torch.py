"""Export one part through ``torch.onnx.export`` (the dynamo exporter)."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import onnx

from core.checkpoint import Checkpoint
from core.registry import PartSpec


def load(ckpt: Checkpoint):
    from torch_impl.checkpoint import load_tensors
    from torch_impl.models import build

    return load_tensors(build(ckpt.model, ckpt.config), ckpt.tensors, str(ckpt.path)).eval()


def export_part(model, part: PartSpec, opset: int) -> onnx.ModelProto:
    import torch

    from torch_impl.parts import PartModule

    module = PartModule(model, part.name).eval()
    example = tuple(torch.from_numpy(np.zeros(t.concrete_shape(2), np.float32)) for t in part.inputs)
    batch = torch.export.Dim("batch", min=1)
    for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "onnx_ir"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            example,
            dynamo=True,
            verbose=False,
            opset_version=opset,
            input_names=[t.name for t in part.inputs],
            output_names=[t.name for t in part.outputs],
            dynamic_shapes={"inputs": tuple({0: batch} for _ in part.inputs)},
        )
    return program.model_proto


def run(model, part: PartSpec, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from torch_impl.parts import run_part

    return run_part(model, part.name, *inputs)
