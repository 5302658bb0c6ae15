"""``unit_stride_transpose``: a stride-1 transposed convolution is an ordinary convolution.

With stride 1, ``ConvTranspose`` computes ``y[o] = sum_k x[o + p - k] w[k]`` (per axis, begin pad
``p``): a correlation with the kernel flipped, its input and output channel axes swapped, and begin
pad ``K - 1 - p`` (end pad ``K - 1 - p_end + output_padding``). As a ``Conv`` onnxruntime runs it in
its blocked NCHWc layout with the following activation fused, instead of a GEMM and a col2im
scatter (the seed generator with one: 1.11x at batch 64). Two spatial axes only: a 3-D Conv has no blocked
kernel there and measured no faster (0.98x on the video generator). Group 1, dilation 1, pads within
the kernel.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from .graph import Graph, attribute, conv_attributes


def unit_stride_transpose(graph: Graph) -> int:
    """Rewrite stride-1 ConvTranspose nodes as Conv; returns how many."""
    rewritten = 0
    for node in list(graph.nodes):
        if node.op_type != "ConvTranspose":
            continue
        weight = graph.constant(node.input[1])
        if (weight is None or weight.dtype != np.float32 or weight.ndim != 4 or attribute(node, "group", 1) != 1
                or attribute(node, "auto_pad", "NOTSET") != "NOTSET" or attribute(node, "output_shape") is not None):
            continue
        spatial = weight.ndim - 2
        a = conv_attributes(node, spatial)
        kernel = weight.shape[2:]
        if a["strides"] != [1] * spatial or a["dilations"] != [1] * spatial:
            continue
        begin = [k - 1 - p for k, p in zip(kernel, a["pads"][:spatial])]
        end = [k - 1 - p + op for k, p, op in zip(kernel, a["pads"][spatial:], a["output_padding"])]
        if min(begin + end) < 0:
            continue
        flipped = np.flip(weight, axis=tuple(range(2, weight.ndim))).swapaxes(0, 1)
        inputs = [node.input[0], graph.add_constant("conv_weight", flipped)]
        if len(node.input) > 2 and node.input[2]:
            inputs.append(node.input[2])
        graph.replace([node], [helper.make_node("Conv", inputs, list(node.output), name=node.name or graph.fresh("Conv"),
                                                pads=begin + end, strides=[1] * spatial,
                                                kernel_shape=list(kernel))])
        rewritten += 1
    return rewritten
