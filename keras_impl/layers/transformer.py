"""torch's Transformer encoder layer rebuilt in Keras 3 (twin: ``torch_impl/layers/transformer.py``).

Keras has no TransformerEncoder layer; :class:`TransformerEncoderLayer` is torch's post-norm
layer made of ``keras.layers.MultiHeadAttention``, ``LayerNormalization`` and ``Dense``:

    x = norm1(x + self_attn(x));  x = norm2(x + linear2(relu(linear1(x))))

torch packs the q/k/v projections into one ``in_proj_weight`` (3E, E); Keras keeps three
kernels (E, N, D). :class:`PackedVariable` presents the three as one stacked array so the
``mha_*@N`` rules of :mod:`core.layouts` map them one array to one array.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from core.init import multihead_attention

from .core import LayerNorm, Linear, TorchLayer


class PackedVariable:
    """Several Keras variables seen as one array stacked on a new axis 0 (numpy/assign/shape)."""

    def __init__(self, variables: list[keras.Variable]):
        self.variables = variables

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.variables), *tuple(self.variables[0].shape))

    @property
    def path(self) -> str:
        return "+".join(v.path for v in self.variables)

    def numpy(self) -> np.ndarray:
        return np.stack([np.asarray(v.numpy()) for v in self.variables])

    def assign(self, value: np.ndarray) -> None:
        for var, part in zip(self.variables, np.asarray(value)):
            var.assign(part)


class MultiheadAttention(TorchLayer):
    """Self-attention with torch's ``nn.MultiheadAttention(E, N, batch_first=True)`` parameters."""

    def __init__(self, embed_dim: int, num_heads: int, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.mha = keras.layers.MultiHeadAttention(num_heads, key_dim=embed_dim // num_heads, dropout=0.0)

    def build(self, input_shape):
        self.mha.build(input_shape, input_shape)

    def call(self, x, training=None):
        return self.mha(x, x, training=training)

    def torch_params(self):
        m, n = self.mha, self.num_heads
        return {
            "in_proj_weight": (PackedVariable([m.query_dense.kernel, m.key_dense.kernel, m.value_dense.kernel]),
                               f"mha_in_weight@{n}"),
            "in_proj_bias": (PackedVariable([m.query_dense.bias, m.key_dense.bias, m.value_dense.bias]),
                             f"mha_in_bias@{n}"),
            "out_proj.weight": (m.output_dense.kernel, f"mha_out_weight@{n}"),
            "out_proj.bias": (m.output_dense.bias, "identity"),
        }

    def init_rules(self):
        return multihead_attention(self.embed_dim)


class TransformerEncoderLayer(TorchLayer):
    """torch.nn.TransformerEncoderLayer(batch_first=True, norm_first=False, dropout=0) in Keras."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.0,
                 activation: str = "relu", layer_norm_eps: float = 1e-5, batch_first: bool = True,
                 norm_first: bool = False, **kwargs):
        super().__init__(**kwargs)
        if dropout != 0.0 or activation != "relu" or not batch_first or norm_first:
            raise ValueError("TransformerEncoderLayer: only dropout=0, relu, batch_first, post-norm are mirrored")
        self.self_attn = MultiheadAttention(d_model, nhead)
        self.linear1 = Linear(d_model, dim_feedforward)
        self.linear2 = Linear(dim_feedforward, d_model)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps)

    def call(self, x, training=None):
        x = self.norm1(x + self.self_attn(x, training=training))
        return self.norm2(x + self.linear2(ops.relu(self.linear1(x))))
