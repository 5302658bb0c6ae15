"""Transformer encoder layers: torch's own (twin: ``keras_impl/layers/transformer.py``).

``nn.TransformerEncoderLayer`` (post-norm) with its packed ``self_attn.in_proj_weight``; the
Keras twin rebuilds it from ``MultiHeadAttention``, ``LayerNormalization`` and ``Dense`` and maps
the packed projections with the ``mha_*`` rules of :mod:`core.layouts`.
"""

from torch.nn import MultiheadAttention, TransformerEncoderLayer  # noqa: F401 - re-exported

__all__ = ["MultiheadAttention", "TransformerEncoderLayer"]
