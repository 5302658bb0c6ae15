"""``block_transpose``: a 2-D transposed convolution as a blocked Conv and one Col2Im.

onnxruntime runs ``ConvTranspose`` as a GEMM and a col2im scatter in NCHW (180-350 GFLOP/s on a
2-core AVX-512 EPYC), while a ``Conv`` runs in its blocked NCHWc layout (490-520 GFLOP/s on the
same machine and shapes). When the kernel ``k`` is a multiple of the stride ``s`` on both axes, each
output block of ``s x s`` pixels reads the same ``K x K`` input pixels (``K = k / s``; per axis,
uncropped output ``o = s*j + r``):

    y[s*j + r] = sum_{a < K} W[r + s*a] * x[j - a],    j < n + K - 1

so one Conv with kernel ``K``, pads ``K - 1`` and ``s*s*C_out`` output channels computes every
block, without zero taps; ``Col2Im`` with block and stride ``s`` puts the blocks in place (they do
not overlap) and its pads crop the ConvTranspose's pads. Its only extra work is the ``K - 1`` border
blocks: ``(n + K - 1) / n`` per axis. That waste is what decides: the rewrite is made when the two
axes together waste at most :data:`MAX_WASTE` (1.4, below the 1.5-1.7x kernel speed ratio measured
above; the folded video generator's 16 x 16 layers, 1.13, gain and its 4 x 8 one, 1.56, loses).

Col2Im, not DepthToSpace, interleaves the blocks (5-10x faster in onnxruntime, see
:mod:`.interleave`). Col2Im is opset 18 and CPU-only in onnxruntime: graphs of an older opset are
left alone, and the export leaves this pass out of the graphs it makes for GPUs. Group 1,
dilation 1, static height and width.
"""

from __future__ import annotations

import math

import numpy as np
from onnx import helper

from .graph import Graph, attribute, conv_attributes, static_shapes
from .interleave import COL2IM_OPSET, default_opset

#: the largest (computed blocks) / (needed blocks) the rewrite accepts, both axes together.
MAX_WASTE = 1.4
def block_weight(weight: np.ndarray, strides: list[int]) -> np.ndarray:
    """``(C_in, C_out, kh, kw)`` -> ``(C_out * sh * sw, C_in, Kh, Kw)``: row ``(c, r, q)`` is output
    phase ``(r, q)`` of channel ``c``; tap ``(u, v)`` reads input ``(j - Kh + 1 + u, ...)`` and so
    takes kernel tap ``(r + sh*(Kh - 1 - u), q + sw*(Kw - 1 - v))``."""
    c_in, c_out, kh, kw = weight.shape
    sh, sw = strides
    big_h, big_w = kh // sh, kw // sw
    # kernel tap r + s*(K-1-u) for phase r, block tap u: reverse the a-axis after splitting (a, r)
    taps = weight.reshape(c_in, c_out, big_h, sh, big_w, sw)[:, :, ::-1, :, ::-1, :]
    # -> (C_out, sh, sw, C_in, Kh, Kw)
    return np.ascontiguousarray(taps.transpose(1, 3, 5, 0, 2, 4).reshape(c_out * sh * sw, c_in, big_h, big_w))


def block_transpose(graph: Graph) -> int:
    """Rewrite 2-D ConvTranspose nodes whose kernels are multiples of their strides; returns how many."""
    if default_opset(graph) < COL2IM_OPSET:
        return 0
    shapes = static_shapes(graph.commit())
    rewritten = 0
    for node in list(graph.nodes):
        if node.op_type != "ConvTranspose":
            continue
        weight = graph.constant(node.input[1])
        x_shape = shapes.get(node.input[0])
        has_bias = len(node.input) > 2 and bool(node.input[2])
        bias = graph.constant(node.input[2]) if has_bias else None
        if (weight is None or weight.dtype != np.float32 or weight.ndim != 4 or x_shape is None or len(x_shape) != 4
                or any(d is None for d in x_shape[2:]) or (has_bias and bias is None)
                or attribute(node, "group", 1) != 1 or attribute(node, "auto_pad", "NOTSET") != "NOTSET"
                or attribute(node, "output_shape") is not None):
            continue
        a = conv_attributes(node, 2)
        strides, kernel, size = a["strides"], list(weight.shape[2:]), list(x_shape[2:])
        if a["dilations"] != [1, 1] or max(strides) < 2 or any(k % s for k, s in zip(kernel, strides)):
            continue
        big = [k // s for k, s in zip(kernel, strides)]
        blocks = [n + kk - 1 for n, kk in zip(size, big)]
        if math.prod(blocks) > MAX_WASTE * math.prod(size):
            continue
        full = [s * b for s, b in zip(strides, blocks)]
        out = [f - pb - pe + op for f, pb, pe, op in zip(full, a["pads"][:2], a["pads"][2:], a["output_padding"])]
        crop_end = [f - o - pb for f, o, pb in zip(full, out, a["pads"][:2])]
        if min(crop_end) < 0 or min(out) <= 0:
            continue  # output padding beyond the computed pixels
        c_out, phases = weight.shape[1], strides[0] * strides[1]
        conv_inputs = [node.input[0], graph.add_constant("block_weight", block_weight(weight, strides))]
        if bias is not None:
            conv_inputs.append(graph.add_constant("block_bias", np.repeat(bias.astype(np.float32), phases)))
        computed, columns = graph.fresh(f"{node.output[0]}_blocks"), graph.fresh(f"{node.output[0]}_columns")
        graph.replace([node], [
            helper.make_node("Conv", conv_inputs, [computed], name=node.name or graph.fresh("BlockConv"),
                             kernel_shape=big, pads=[k - 1 for k in big] * 2, strides=[1, 1]),
            helper.make_node("Reshape", [computed, graph.add_constant(
                "columns_shape", np.array([0, c_out * phases, blocks[0] * blocks[1]], np.int64))], [columns],
                name=graph.fresh("Reshape")),
            helper.make_node("Col2Im", [columns, graph.add_constant("image_shape", np.array(out, np.int64)),
                                        graph.add_constant("block_shape", np.array(strides, np.int64))],
                             list(node.output), name=graph.fresh("Col2Im"), strides=strides,
                             pads=a["pads"][:2] + crop_end),
        ])
        rewritten += 1
    return rewritten
