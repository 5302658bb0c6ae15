"""A model's registry parts as callables on canonical (NCHW) arrays (twin: ``keras_impl/parts.py``)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from core.registry import PartSpec, get_model_spec


def part_specs(model: nn.Module) -> dict[str, PartSpec]:
    return get_model_spec(model.config.model).parts(model.config)


class PartModule(nn.Module):
    """One part as an ``nn.Module`` (what ``torch.onnx.export`` sees): forward = the part's method."""

    def __init__(self, model: nn.Module, part: str):
        super().__init__()
        self.model, self.spec = model, part_specs(model)[part]

    def forward(self, *inputs: torch.Tensor):
        return getattr(self.model, self.spec.method)(*inputs)


def run_part(model: nn.Module, part: str, *inputs: np.ndarray) -> list[np.ndarray]:
    """Run ``part`` in eval mode on NumPy inputs (canonical layout); returns NumPy outputs."""
    module = PartModule(model, part).eval()
    with torch.no_grad():
        out = module(*[torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) for x in inputs])
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [np.ascontiguousarray(o.detach().cpu().numpy()) for o in outs]  # channels_last models: C order
