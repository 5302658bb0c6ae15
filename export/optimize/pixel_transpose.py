"""``single_pixel_transpose``: a transposed convolution of a 1 x 1 input is a matrix product.

Generators often open with a transposed convolution of the latent seen as a 1 x 1 (x 1) image: it
paints one kernel-sized patch per sample, ``y[b, o, k] = sum_i x[b, i] W[i, o, k] + bias[o]``, which is
a Gemm of ``x (B, C_in)`` with ``W`` reshaped to ``(C_in, C_out * prod(kernel))``. onnxruntime runs the
transposed convolution as a GEMM plus a col2im scatter of a (C_out * prod(kernel))-wide column
matrix, at 4-16 GFLOP/s on the two seed generators that open so, against the Gemm's full speed.
Any number of spatial axes; pads and output padding 0, group 1, dilation 1.
"""

from __future__ import annotations

import math

import numpy as np
from onnx import helper

from .graph import Graph, constant_transposes, conv_attributes, static_shapes


def single_pixel_transpose(graph: Graph) -> int:
    """Rewrite ConvTranspose nodes of 1 x ... x 1 inputs as Reshape + Gemm + Reshape; returns how many."""
    shapes = static_shapes(graph.commit())
    rewritten = 0
    for node, weight, bias in constant_transposes(graph):
        x_shape = shapes.get(node.input[0])
        if weight.ndim < 3 or x_shape is None or len(x_shape) != weight.ndim or any(d != 1 for d in x_shape[2:]):
            continue
        spatial = weight.ndim - 2
        a = conv_attributes(node, spatial)
        if any(a["pads"]) or any(a["output_padding"]) or a["dilations"] != [1] * spatial:
            continue
        c_in, c_out, kernel = weight.shape[0], weight.shape[1], list(weight.shape[2:])
        width = c_out * math.prod(kernel)
        flat, columns = graph.fresh(f"{node.input[0]}_flat"), graph.fresh(f"{node.output[0]}_columns")
        gemm_inputs = [flat, graph.add_constant("patch_weight", weight.reshape(c_in, width))]
        if bias is not None:
            gemm_inputs.append(graph.add_constant("patch_bias", np.repeat(bias, math.prod(kernel)).astype(np.float32)))
        graph.replace([node], [
            helper.make_node("Reshape", [node.input[0], graph.add_constant("flat_shape", np.array([0, c_in], np.int64))],
                             [flat], name=graph.fresh("Reshape")),
            helper.make_node("Gemm", gemm_inputs, [columns], name=node.name or graph.fresh("Gemm")),
            helper.make_node("Reshape", [columns, graph.add_constant("patch_shape", np.array([0, c_out, *kernel], np.int64))],
                             list(node.output), name=graph.fresh("Reshape")),
        ])
        rewritten += 1
    return rewritten
