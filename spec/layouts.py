"""torch <-> Keras tensor layout rules, written once.

Checkpoints hold torch layouts. Every Keras variable that mirrors a torch parameter is tagged
with one of these named rules; ``to_keras`` maps a checkpoint array onto the Keras variable,
``to_torch`` maps it back. Each pair is an exact inverse (pure transposes/reshapes, no
arithmetic), so a round trip is bit-identical.

=====================  ==================  =====================  =====================
rule                   torch               Keras                  to_keras
=====================  ==================  =====================  =====================
``identity``           bias, BN stats      same                   x
``linear``             (out, in)           (in, out)              x.T
``conv2d``             (O, I, kh, kw)      (kh, kw, I, O)         transpose(2, 3, 1, 0)
``conv_transpose2d``   (I, O, kh, kw)      (kh, kw, O, I)         transpose(2, 3, 1, 0)
``conv3d``             (O, I, kd, kh, kw)  (kd, kh, kw, I, O)     transpose(2, 3, 4, 1, 0)
=====================  ==================  =====================  =====================

BatchNorm: torch ``weight``/``bias``/``running_mean``/``running_var`` map to Keras
``gamma``/``beta``/``moving_mean``/``moving_variance`` with ``identity``; the numerics are
matched by the layer (eps as given, Keras momentum = 1 - torch momentum).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class LayoutRule:
    name: str
    to_keras: Callable[[np.ndarray], np.ndarray]
    to_torch: Callable[[np.ndarray], np.ndarray]
    ndim: int | None = None  # torch-side rank the rule accepts (None: any)

    def keras_shape(self, torch_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(self.to_keras(np.empty(torch_shape, dtype=np.uint8)).shape)


def _perm(axes: tuple[int, ...]) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: np.ascontiguousarray(np.transpose(x, axes))


def _inverse(axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(axes))


_CONV2D = (2, 3, 1, 0)
_CONV3D = (2, 3, 4, 1, 0)

RULES: dict[str, LayoutRule] = {
    r.name: r
    for r in (
        LayoutRule("identity", lambda x: np.ascontiguousarray(x), lambda x: np.ascontiguousarray(x)),
        LayoutRule("linear", _perm((1, 0)), _perm((1, 0)), ndim=2),
        LayoutRule("conv2d", _perm(_CONV2D), _perm(_inverse(_CONV2D)), ndim=4),
        LayoutRule("conv_transpose2d", _perm(_CONV2D), _perm(_inverse(_CONV2D)), ndim=4),
        LayoutRule("conv3d", _perm(_CONV3D), _perm(_inverse(_CONV3D)), ndim=5),
    )
}


def rule(name: str) -> LayoutRule:
    return RULES[name]


def nchw_to_nhwc(x: np.ndarray) -> np.ndarray:
    """Canonical image batch (B, C, H, W) -> Keras' public layout (B, H, W, C)."""
    return np.ascontiguousarray(np.moveaxis(x, 1, -1))


def nhwc_to_nchw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(x, -1, 1))
