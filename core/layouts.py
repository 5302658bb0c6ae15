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
``conv_transpose3d``   (I, O, kd, kh, kw)  (kd, kh, kw, O, I)     transpose(2, 3, 4, 1, 0)
``chw``                (C, H, W)           (H, W, C)              transpose(1, 2, 0)
``mha_in_weight@N``    (3E, E)             (3, E, N, E/N)         see below
``mha_in_bias@N``      (3E,)               (3, N, E/N)            reshape
``mha_out_weight@N``   (E, E)              (N, E/N, E)            x.T reshaped
=====================  ==================  =====================  =====================

Attention (``@N``: the head count). torch's ``nn.MultiheadAttention`` packs the query, key and
value projections into one ``in_proj_weight`` (rows q, then k, then v; row ``h*D + j`` is head
``h``'s feature ``j``, D = E/N) and ``in_proj_bias``; Keras' ``MultiHeadAttention`` keeps three
EinsumDense layers with kernels (E, N, D) and biases (N, D), and an output kernel (N, D, E).
On the Keras side the three are presented as one stacked variable (axis 0: q, k, v) by
:class:`keras_impl.layers.transformer.PackedVariable`, so every rule stays one array to one array.

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
        LayoutRule("conv_transpose3d", _perm(_CONV3D), _perm(_inverse(_CONV3D)), ndim=5),
    )
}


def _mha_rules(heads: int) -> dict[str, LayoutRule]:
    def in_weight_to_keras(w: np.ndarray) -> np.ndarray:  # (3E, E) -> (3, E_in, N, D)
        e = w.shape[1]
        return np.ascontiguousarray(w.reshape(3, heads, e // heads, e).transpose(0, 3, 1, 2))

    def in_weight_to_torch(k: np.ndarray) -> np.ndarray:  # (3, E_in, N, D) -> (3E, E)
        e = k.shape[1]
        return np.ascontiguousarray(k.transpose(0, 2, 3, 1).reshape(3 * e, e))

    def out_weight_to_keras(w: np.ndarray) -> np.ndarray:  # (E_out, E_in) -> (N, D, E_out)
        return np.ascontiguousarray(w.T.reshape(heads, w.shape[1] // heads, w.shape[0]))

    def out_weight_to_torch(k: np.ndarray) -> np.ndarray:  # (N, D, E_out) -> (E_out, E_in)
        return np.ascontiguousarray(k.reshape(-1, k.shape[2]).T)

    return {
        f"mha_in_weight@{heads}": LayoutRule(f"mha_in_weight@{heads}", in_weight_to_keras, in_weight_to_torch, 2),
        f"mha_in_bias@{heads}": LayoutRule(
            f"mha_in_bias@{heads}", lambda b: np.ascontiguousarray(b.reshape(3, heads, -1)),
            lambda k: np.ascontiguousarray(k.reshape(-1)), 1),
        f"mha_out_weight@{heads}": LayoutRule(f"mha_out_weight@{heads}", out_weight_to_keras, out_weight_to_torch, 2),
    }


RULES["chw"] = LayoutRule("chw", _perm((1, 2, 0)), _perm((2, 0, 1)), ndim=3)


def rule(name: str) -> LayoutRule:
    """The rule called ``name``; ``mha_*@N`` rules are made for head count N on first use."""
    if name not in RULES and "@" in name:
        heads = name.partition("@")[2]
        if heads.isdigit() and int(heads) > 0:
            RULES.update(_mha_rules(int(heads)))
    if name not in RULES:
        raise KeyError(f"unknown layout rule {name!r}")
    return RULES[name]


def nchw_to_nhwc(x: np.ndarray) -> np.ndarray:
    """Canonical image batch (B, C, H, W) -> Keras' public layout (B, H, W, C)."""
    return np.ascontiguousarray(np.moveaxis(x, 1, -1))


def nhwc_to_nchw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(x, -1, 1))
