"""Random weights for the metric feature networks' tests, sized so that activations stay O(1)
through dozens of conv layers (the real weights are in no wheel and nothing is downloaded)."""

from __future__ import annotations

from collections import OrderedDict

import torch


def random_state(reference: dict[str, torch.Tensor], seed: int = 0) -> OrderedDict[str, torch.Tensor]:
    """Tensors of the reference state dict's names and shapes: He-scaled convolutions, BatchNorm
    statistics and affine parameters near identity, small classifier weights and biases."""
    gen = torch.Generator().manual_seed(seed)
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, ref in reference.items():
        shape = ref.shape
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(0, dtype=torch.long)
        elif key.endswith("running_mean"):
            out[key] = (torch.rand(shape, generator=gen) - 0.5) * 0.2
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=gen) * 1.5 + 0.5  # U(0.5, 2)
        elif key.endswith("bn.weight"):
            out[key] = torch.rand(shape, generator=gen) * 0.5 + 0.75
        elif key.endswith("bn.bias"):
            out[key] = torch.rand(shape, generator=gen) * 0.2 - 0.1
        elif key.endswith("weight") and len(shape) > 2:  # convolutions
            out[key] = torch.randn(shape, generator=gen) * (2.0 / shape[1:].numel()) ** 0.5
        elif key.endswith("weight") and len(shape) == 2:  # a fully connected classifier
            out[key] = torch.randn(shape, generator=gen) * 0.02
        elif key.endswith("bias"):
            out[key] = torch.randn(shape, generator=gen) * 0.1
        else:  # pragma: no cover - a key kind these tests do not know
            raise AssertionError(key)
    return out


FAULTS = ("missing", "shape", "extra")


def faulty_weights(state: dict[str, torch.Tensor], fault: str, key: str, extra: tuple[str, torch.Tensor],
                   folder, suffix: str) -> tuple[object, str]:
    """A weights file with one fault (``key`` missing or misshapen, or the ``extra`` (name, tensor)
    added), saved in ``folder``; returns its path and the key the error must name."""
    bad = OrderedDict(state)
    if fault == "missing":
        del bad[key]
    elif fault == "shape":
        bad[key] = torch.zeros(3, 3)
    else:
        key, bad[extra[0]] = extra
    path = folder / f"{fault}{suffix}"
    torch.save(bad, path)
    return path, key
