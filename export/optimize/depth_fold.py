"""``depth_fold_transpose``: a 3-D transposed convolution that upsamples depth, as a 2-D one.

onnxruntime runs a 3-D ``ConvTranspose`` as a GEMM and a 3-D col2im scatter, at about half the
GFLOP/s of its 2-D one (177 against 351 GFLOP/s for 128 -> 64 channels, kernel 4, stride 2, on a
2-core AVX-512 EPYC). When the depth kernel ``k`` is a multiple of the depth stride ``s`` the depth
axis can be taken out of the convolution (per axis, uncropped output ``o = s*i + t``):

    y[s*j + r] = sum_{a < K} W[r + s*a] * x[j - a],     K = k / s,  r < s,  j < D + K - 1

so output depth block ``j`` reads the ``K`` input slices ``j - K + 1 .. j``. Laid out depth-major
(``N, D, C, H, W``), those slices side by side are ``K * C`` channels of one 2-D image, and one 2-D
``ConvTranspose`` with ``s * C_out`` output channels (weights ``V[b*C + c, r*C_out + o] =
W[c, o, r + s*(K-1-b)]``) computes the ``s`` depth phases of the block at once; the output's
channel blocks are then consecutive depths, so a Reshape interleaves them for free and one Slice
applies the depth pads. The graph becomes:

    Transpose(N,D,C,H,W) -> Pad depth by K-1 -> K Slices -> Concat on channels -> Reshape(N*J, K*C, H, W)
    -> ConvTranspose 2-D -> Reshape(N, J*s, C_out, H', W') -> Slice depth pads -> Transpose back

Same multiplications except the ``K - 1`` padded blocks, no zero taps. The Transposes between two
rewritten layers cancel (:mod:`.transposes`), and the 2-D ConvTranspose may become a blocked Conv
(:mod:`.block_transpose`). Measured on the seed video generator (2 threads, batch 1 and 8): its
three depth-upsampling layers folded, 1.25x end to end; with the first of them (depth 2: 3 blocks
computed for 2, over :data:`MAX_DEPTH_WASTE`) left as it was, 1.04-1.08x more; leaving the second
(depth 4, 5 for 4) too lost 0.94-0.96x. A depth-stride-1 layer is left alone: the ``K``-fold copy
of its input made it slower (0.92x on the same generator's last layer). Group 1, dilation 1,
static depth, height and width, depth pads inside the computed range.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from .graph import Graph, constant_transposes, conv_attributes, static_shapes

DEPTH_MAJOR = [0, 2, 1, 3, 4]  # N, C, D, H, W <-> N, D, C, H, W (its own inverse)
#: the largest (computed depth blocks) / (input depth) the rewrite accepts.
MAX_DEPTH_WASTE = 1.4


def folded_weight(weight: np.ndarray, depth_stride: int) -> np.ndarray:
    """``(C_in, C_out, k, kh, kw)`` -> ``(K * C_in, s * C_out, kh, kw)``: input slot ``b`` (slice
    ``j - K + 1 + b``) and depth phase ``r`` take depth tap ``r + s*(K - 1 - b)``."""
    c_in, c_out, k = weight.shape[:3]
    slots = k // depth_stride
    folded = np.empty((slots * c_in, depth_stride * c_out, *weight.shape[3:]), np.float32)
    for b in range(slots):
        for r in range(depth_stride):
            folded[b * c_in:(b + 1) * c_in, r * c_out:(r + 1) * c_out] = weight[:, :, r + depth_stride * (slots - 1 - b)]
    return folded


def depth_fold_transpose(graph: Graph) -> int:
    """Rewrite depth-upsampling 3-D ConvTranspose nodes as depth-folded 2-D ones; returns how many."""
    shapes = static_shapes(graph.commit())
    rewritten = 0
    for node, weight, bias in constant_transposes(graph, rank=5):
        x_shape = shapes.get(node.input[0])
        if x_shape is None or len(x_shape) != 5 or any(d is None for d in x_shape[2:]):
            continue
        a = conv_attributes(node, 3)
        c_in, c_out, k = weight.shape[:3]
        s, (pad_begin, pad_end), extra = a["strides"][0], a["pads"][0::3], a["output_padding"][0]
        depth, height, width = x_shape[2:]
        if s < 2 or k % s or a["dilations"] != [1, 1, 1]:
            continue
        slots = k // s
        blocks = depth + slots - 1
        if blocks > MAX_DEPTH_WASTE * depth:
            continue
        out_depth = s * (depth - 1) + k - pad_begin - pad_end + extra
        if pad_begin + out_depth > s * blocks or out_depth <= 0:
            continue  # output padding beyond the computed depths
        spatial_pads = a["pads"][1:3] + a["pads"][4:6]
        out_hw = [st * (n - 1) + kk - pb - pe + op for st, n, kk, pb, pe, op in
                  zip(a["strides"][1:], (height, width), weight.shape[3:], spatial_pads[:2], spatial_pads[2:],
                      a["output_padding"][1:])]

        def const(hint: str, *values: int) -> str:
            return graph.add_constant(hint, np.array(values, np.int64))

        def tensor(hint: str) -> str:
            return graph.fresh(f"{node.output[0]}_{hint}")

        depth_major, padded, window, flat, phases, stacked, cropped = (tensor(h) for h in (
            "depth_major", "depth_padded", "window", "flat", "phases", "stacked", "cropped"))
        new = [helper.make_node("Transpose", [node.input[0]], [depth_major], perm=DEPTH_MAJOR, name=graph.fresh("Transpose"))]
        if slots > 1:
            new.append(helper.make_node("Pad", [depth_major, const("depth_pads", 0, slots - 1, 0, 0, 0, 0, slots - 1, 0, 0, 0)],
                                        [padded], name=graph.fresh("Pad")))
            slot_names = [tensor(f"slot{b}") for b in range(slots)]
            axis = const("depth_axis", 1)
            for b, name in enumerate(slot_names):
                new.append(helper.make_node("Slice", [padded, const("slot_start", b), const("slot_end", b + blocks), axis],
                                            [name], name=graph.fresh("Slice")))
            new.append(helper.make_node("Concat", slot_names, [window], axis=2, name=graph.fresh("Concat")))
        else:
            window = depth_major
        conv_inputs = [flat, graph.add_constant("folded_weight", folded_weight(weight, s))]
        if bias is not None:
            conv_inputs.append(graph.add_constant("folded_bias", np.tile(bias.astype(np.float32), s)))
        new += [
            helper.make_node("Reshape", [window, const("flat_shape", -1, slots * c_in, height, width)], [flat],
                             name=graph.fresh("Reshape")),
            helper.make_node("ConvTranspose", conv_inputs, [phases], name=node.name or graph.fresh("ConvTranspose"),
                             kernel_shape=list(weight.shape[3:]), strides=a["strides"][1:], pads=spatial_pads,
                             output_padding=a["output_padding"][1:]),
            helper.make_node("Reshape", [phases, const("depth_shape", -1, s * blocks, c_out, *out_hw)], [stacked],
                             name=graph.fresh("Reshape")),
            helper.make_node("Slice", [stacked, const("crop_start", pad_begin), const("crop_end", pad_begin + out_depth),
                                       const("depth_axis", 1)], [cropped], name=graph.fresh("Slice")),
            helper.make_node("Transpose", [cropped], list(node.output), perm=DEPTH_MAJOR, name=graph.fresh("Transpose")),
        ]
        graph.replace([node], new)
        rewritten += 1
    return rewritten
