"""``fold_affine``: BatchNorm (and any per-channel scale and shift) folded into the layer before it.

In eval mode a BatchNorm is ``y = x * a + b`` per channel, with ``a = gamma / sqrt(var + eps)`` and
``b = beta - mean * a``. The torch exporter folds it into the preceding convolution; tf2onnx
writes it out as ``Mul`` / ``Add`` / ``Sub`` by per-channel constants (after ConvTranspose, a
``BatchNormalization`` node is not even fused by onnxruntime), which made the Keras-exported
graphs about 1.2x slower. Any linear layer ``y = W x + c`` followed by ``* a + b`` is the layer
with weights ``a W`` and bias ``a c + b``, so this pass rewrites:

* ``Conv``  (weights ``(C_out, C_in / g, *k)``): scale along axis 0;
* ``ConvTranspose`` (weights ``(C_in, C_out / g, *k)``): scale along axis 1 (``g`` = 1 only);
* ``Gemm``  (``alpha * A B' + beta * C`` with constant B; the output's last axis is the channel);
* followed by ``BatchNormalization`` (inference form), ``Mul`` / ``Div`` by a constant, ``Add`` /
  ``Sub`` of a constant (``x - c``; ``c - x`` is left alone), each broadcasting over channels only.

A ``MatMul`` by a constant matrix followed by an ``Add`` of a bias vector becomes a ``Gemm`` first
when its input is 2-D. The layer's output must feed only the affine node (otherwise the unscaled
value is still needed). Repeated until nothing changes, so ``Sub``, ``Mul``, ``Add`` chains fold
completely.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from .graph import Graph, attribute, static_shapes

LAYERS = ("Conv", "ConvTranspose", "Gemm")
AFFINE = ("BatchNormalization", "Mul", "Div", "Add", "Sub")


def _channel_vector(value: np.ndarray, out_rank: int, channel_axis: int, channels: int) -> np.ndarray | None:
    """A constant that broadcasts over a layer's output along the channel axis only, as a
    ``(channels,)`` vector; None if it varies along another axis or would change the output shape."""
    if value.ndim > out_rank:
        return None
    shaped = value.reshape((1,) * (out_rank - value.ndim) + value.shape)
    for axis, size in enumerate(shaped.shape):
        if axis != channel_axis and size != 1:
            return None
    if shaped.shape[channel_axis] not in (1, channels):
        return None
    return np.broadcast_to(shaped.reshape(-1), (channels,)).astype(np.float64)


def _scale_shift(graph: Graph, node: onnx.NodeProto, source: str, out_rank: int, channel_axis: int,
                 channels: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(a, b) such that ``node(x) = x * a + b`` per channel, for the affine ``node`` reading ``source``."""
    op = node.op_type
    if op == "BatchNormalization":
        if len(node.output) != 1 or attribute(node, "training_mode", 0) or node.input[0] != source:
            return None
        params = [graph.constant(n) for n in node.input[1:5]]
        if any(p is None or p.shape != (channels,) for p in params):
            return None
        gamma, beta, mean, var = (p.astype(np.float64) for p in params)
        scale = gamma / np.sqrt(var + attribute(node, "epsilon", 1e-5))
        return scale, beta - mean * scale
    if len(node.input) != 2:
        return None
    other = node.input[1] if node.input[0] == source else node.input[0]
    if source not in node.input[:2] or other == source:
        return None
    value = graph.constant(other)
    if value is None or value.dtype != np.float32:
        return None
    vector = _channel_vector(value, out_rank, channel_axis, channels)
    if vector is None:
        return None
    ones, zeros = np.ones(channels), np.zeros(channels)
    if op == "Mul":
        return vector, zeros
    if op == "Div" and node.input[0] == source and np.all(vector != 0):
        return 1.0 / vector, zeros
    if op == "Add":
        return ones, vector
    if op == "Sub" and node.input[0] == source:
        return ones, -vector
    return None


def _matmul_to_gemm(graph: Graph, shapes: dict) -> int:
    """MatMul(x 2-D, constant 2-D W) + Add(bias) -> Gemm(x, W, bias)."""
    consumers = graph.consumers()
    rewritten = 0
    for node in list(graph.nodes):
        if node.op_type != "MatMul" or not graph.is_private(node.output[0], consumers):
            continue
        weight = graph.constant(node.input[1])
        x_shape = shapes.get(node.input[0])
        add = consumers[node.output[0]][0]
        if weight is None or weight.ndim != 2 or x_shape is None or len(x_shape) != 2 or add.op_type != "Add":
            continue
        other = add.input[1] if add.input[0] == node.output[0] else add.input[0]
        bias = graph.constant(other)
        if bias is None or _channel_vector(bias, 2, 1, weight.shape[1]) is None:
            continue
        bias_name = graph.add_constant("gemm_bias", _channel_vector(bias, 2, 1, weight.shape[1]).astype(np.float32))
        gemm = helper.make_node("Gemm", [node.input[0], node.input[1], bias_name], list(add.output),
                                name=node.name or graph.fresh("Gemm"))
        graph.replace([node, add], [gemm])
        rewritten += 1
    return rewritten


def _fold_once(graph: Graph, shapes: dict) -> int:
    producers, consumers = graph.producers(), graph.consumers()
    for node in graph.nodes:
        if node.op_type not in AFFINE or not node.input:
            continue
        for source in node.input[:2]:
            layer = producers.get(source)
            if layer is None or layer.op_type not in LAYERS or not graph.is_private(source, consumers):
                continue
            folded = _fold_into(graph, layer, node, source, shapes)
            if folded:
                return 1
    return 0


def _fold_into(graph: Graph, layer: onnx.NodeProto, affine: onnx.NodeProto, source: str, shapes: dict) -> bool:
    weight = graph.constant(layer.input[1])
    bias = graph.constant(layer.input[2]) if len(layer.input) > 2 and layer.input[2] else None
    if weight is None or weight.dtype != np.float32 or (len(layer.input) > 2 and layer.input[2] and bias is None):
        return False
    op = layer.op_type
    if op == "Gemm":
        if attribute(layer, "transA", 0) or weight.ndim != 2:
            return False
        trans_b, alpha, beta = attribute(layer, "transB", 0), attribute(layer, "alpha", 1.0), attribute(layer, "beta", 1.0)
        channels = weight.shape[0] if trans_b else weight.shape[1]
        out_rank, channel_axis = 2, 1
        if bias is not None and _channel_vector(bias, 2, 1, channels) is None:
            return False
    else:
        if op == "ConvTranspose" and attribute(layer, "group", 1) != 1:
            return False
        channels = weight.shape[0] if op == "Conv" else weight.shape[1]
        out_rank, channel_axis = weight.ndim, 1
    found = _scale_shift(graph, affine, source, out_rank, channel_axis, channels)
    if found is None:
        return False
    scale, shift = found
    w = weight.astype(np.float64)
    if op == "Gemm":
        w = w * (scale[:, None] if trans_b else scale[None, :])
        old_bias = np.zeros(channels) if bias is None else _channel_vector(bias, 2, 1, channels) * beta
        new_bias = old_bias * scale + shift
        w = w * alpha
        attrs = {"transB": trans_b}
    else:
        axis_shape = [1] * w.ndim
        axis_shape[0 if op == "Conv" else 1] = channels
        w = w * scale.reshape(axis_shape)
        old_bias = np.zeros(channels) if bias is None else bias.astype(np.float64)
        new_bias = old_bias * scale + shift
        attrs = {a.name: helper.get_attribute_value(a) for a in layer.attribute}
    w_name = graph.add_constant(f"{layer.name or op}_weight", w.astype(np.float32))
    b_name = graph.add_constant(f"{layer.name or op}_bias", new_bias.astype(np.float32))
    fused = helper.make_node(op, [layer.input[0], w_name, b_name], list(affine.output),
                             name=layer.name or graph.fresh(op), **attrs)
    graph.replace([layer, affine], [fused])
    return True


def fold_affine(graph: Graph) -> int:
    """Fold per-channel scale/shift nodes into the Conv/ConvTranspose/Gemm before them; returns how many."""
    shapes = static_shapes(graph.commit())
    total = _matmul_to_gemm(graph, shapes)
    while _fold_once(graph, shapes):
        total += 1
    return total
