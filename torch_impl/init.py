"""Framework-neutral initial weights for a torch model (twin: ``keras_impl/init.py``).

:func:`init_entries` lists (canonical name, torch shape, :class:`core.init.Init`) for every
checkpoint tensor of the model; :func:`initialize` draws them with :func:`core.init.initial_tensors`
and loads them with :func:`torch_impl.checkpoint.load_tensors`. The Keras twin lists the same
entries, so one seed gives the bit-identical model in both frameworks.

Where the rules come from, per module (outermost declaration of a tensor wins):

* a module with an ``init_rules()`` method declares its own: {name relative to the module: Init}
  (its own parameters, and optionally overrides of its children's, e.g. ``"head.bias"``). This is
  how a new layer brings its rule — no table to edit;
* torch's own layer classes, which cannot carry such a method, get torch's documented default
  from :data:`TORCH_DEFAULTS` (built from :mod:`core.init`'s helpers).
"""

from __future__ import annotations

from typing import Callable, Iterator

from torch import nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.conv import _ConvNd

from core.init import Init, InitEntry, batch_norm, initial_tensors, layer_norm, multihead_attention, resolve_entries
from core.init import weight_and_bias

from .checkpoint import expected_shapes, load_tensors


def _mha(m: nn.MultiheadAttention) -> dict[str, Init]:
    if not m._qkv_same_embed_dim or m.bias_k is not None:  # pragma: no cover - no model uses them
        raise NotImplementedError("initial weights: only packed, bias_k-free MultiheadAttention is described")
    return multihead_attention(m.embed_dim, bias=m.in_proj_bias is not None)


#: torch.nn classes -> their ``reset_parameters`` rules (checked in this order, by isinstance)
TORCH_DEFAULTS: list[tuple[type[nn.Module], Callable[[nn.Module], dict[str, Init]]]] = [
    (nn.Linear, lambda m: weight_and_bias(tuple(m.weight.shape), m.bias is not None)),
    (_ConvNd, lambda m: weight_and_bias(tuple(m.weight.shape), m.bias is not None)),
    (_NormBase, lambda m: batch_norm(m.affine, m.track_running_stats)),
    (nn.LayerNorm, lambda m: layer_norm(m.weight is not None, m.bias is not None)),
    (nn.MultiheadAttention, _mha),
]


def module_init_rules(module: nn.Module) -> dict[str, Init]:
    """The rules ``module`` declares for tensors under it (relative names)."""
    own = getattr(module, "init_rules", None)
    if callable(own):
        return own()
    for cls, rules in TORCH_DEFAULTS:
        if isinstance(module, cls):
            return rules(module)
    return {}


def _declared(model: nn.Module) -> Iterator[tuple[str, Init]]:
    for prefix, module in model.named_modules():  # pre-order: outer modules first
        for name, init in module_init_rules(module).items():
            yield (f"{prefix}.{name}" if prefix else name), init


def init_entries(model: nn.Module) -> list[InitEntry]:
    """(canonical name, torch shape, Init) for every checkpoint tensor of ``model``, in state-dict order."""
    return resolve_entries(expected_shapes(model), _declared(model))


def initialize(model: nn.Module, seed: int) -> nn.Module:
    """Overwrite every parameter and buffer of ``model`` with the framework-neutral initial
    weights of ``seed`` (:func:`core.init.initial_tensors`); returns ``model``."""
    tensors = initial_tensors(init_entries(model), seed)
    return load_tensors(model, tensors, f"initial weights (seed {seed})")
