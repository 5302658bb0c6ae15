"""``polyphase_tail``: the last upsampling of a decoder computed at the low resolution.

A stride-``s`` transposed convolution whose output is exactly ``s`` times its input (every
"same"-padded upsampling) is ``s * s`` ordinary convolutions of its input, one per output *phase*
(the output pixels ``(s m + a, s n + b)`` for a fixed ``(a, b)``), interleaved. onnxruntime runs
ConvTranspose as a GEMM followed by a col2im scatter, in NCHW; a Conv runs in its blocked NCHWc
layout with the activation fused, which is faster. Interleaving the phases (DepthToSpace) of a
wide tensor is memory-bound, though, and measured slower than the transposed convolution; so
this pass rewrites the pattern where the interleave can be put off until the tensor is narrow:

    ConvTranspose(s) -> [elementwise activations] -> Conv(stride 1, "same")    (the decoder's tail)

becomes

    Conv (all s*s phases of the ConvTranspose, C_out * s*s channels, at the input resolution)
    -> [the same activations, elementwise on the phase maps]
    -> Conv (the following 3x3 convolution computed on the phase maps: C2 * s*s channels)
    -> DepthToSpace(s, DCR)                               (one interleave, of C2 channels only)

The arithmetic, for one spatial axis (the two axes are independent). The transposed convolution
with kernel ``w``, begin pad ``p`` gives ``y[s m + a] = sum_k x[m + (a + p - k) / s] w[k]`` over the
taps ``k`` with ``a + p - k`` divisible by ``s``: phase ``a`` is a correlation of ``x`` with offsets
``(a + p - k) / s``. The following convolution with kernel ``v`` and begin pad ``P`` reads
``y[s m + a + d - P]`` = phase ``r`` at ``m + q`` with ``r = (a + d - P) mod s``,
``q = floor((a + d - P) / s)``: output phase ``a`` is a correlation of the phase maps. Zero padding
outside ``[0, s H)`` is zero padding outside ``[0, H)`` of every phase map, so borders are exact.
Channel ``(a s + b) C + c`` holds phase ``(a, b)`` of channel ``c``, the order DepthToSpace's DCR
mode reads. Outputs equal the original's up to float rounding (measured ~1e-7).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from .graph import ELEMENTWISE, Graph, attribute, conv_attributes, static_shapes


def _offsets(stride: int, kernel: int, pad_begin: int) -> dict[tuple[int, int], int]:
    """{(phase a, tap k): input offset} of a transposed convolution along one axis."""
    return {(a, k): (a + pad_begin - k) // stride for a in range(stride) for k in range(kernel)
            if (a + pad_begin - k) % stride == 0}


def _window(offsets) -> tuple[int, int]:
    """(begin pad, kernel size) of a correlation reading the given input offsets."""
    low, high = min(min(offsets), 0), max(max(offsets), 0)
    return -low, high - low + 1


def phase_weights(weight: np.ndarray, stride: int, pads_begin: tuple[int, int]) -> tuple[np.ndarray, list[int]]:
    """A 2-D ConvTranspose's weights ``(C_in, C_out, kh, kw)`` as one Conv's ``(s*s*C_out, C_in, KH, KW)``
    over its input, and that Conv's pads ``[top, left, bottom, right]``."""
    c_in, c_out, kh, kw = weight.shape
    rows, cols = _offsets(stride, kh, pads_begin[0]), _offsets(stride, kw, pads_begin[1])
    (top, height), (left, width) = _window(rows.values()), _window(cols.values())
    out = np.zeros((stride * stride * c_out, c_in, height, width), np.float64)
    for (a, i), dr in rows.items():
        for (b, j), dc in cols.items():
            phase = a * stride + b
            out[phase * c_out:(phase + 1) * c_out, :, dr + top, dc + left] = weight[:, :, i, j].T
    return out, [top, left, height - 1 - top, width - 1 - left]


def _conv_axis(stride: int, kernel: int, pad: int) -> tuple[int, dict[tuple[int, int], tuple[int, int]]]:
    """(shift, {(output phase a, tap d): (input phase r, block offset q)}) of a stride-1 correlation
    along one axis, computed on phase maps in blocks that start ``shift`` pixels early.

    Output block ``m`` holds the outputs ``s m - shift + a``, which read ``y[s m - shift + a + d - pad]``
    = phase ``r`` at block ``m + q``. The shift (0..s-1) is the one whose blocks read the fewest
    neighbouring blocks: for a 3-tap kernel at stride 2, blocks starting one pixel early read 2 block
    offsets instead of 3, so the convolution on the phase maps has 2 x 2 taps instead of 3 x 3."""

    def table(shift):
        return {(a, d): ((a + d - shift - pad) % stride, (a + d - shift - pad) // stride)
                for a in range(stride) for d in range(kernel)}

    def span(shift):
        offsets = [q for _, q in table(shift).values()]
        return max(offsets) - min(offsets)

    shift = min(range(stride), key=lambda k: (span(k), k))
    return shift, table(shift)


def phase_conv_weights(weight: np.ndarray, stride: int, pads_begin: tuple[int, int],
                       size: tuple[int, int]) -> tuple[np.ndarray, list[int], tuple[int, int], tuple[int, int]]:
    """A stride-1 "same" Conv's weights ``(C2, C, KH, KW)`` as one Conv over the ``s*s*C`` phase maps
    (each ``size``) of its input: ``(s*s*C2, s*s*C, kh', kw')``, that Conv's pads
    ``[top, left, bottom, right]``, the shift of its blocks per axis (:func:`_conv_axis`) and the
    number of blocks per axis (``size``, or one more when shifted: the first and last blocks then
    hold ``shift`` outputs outside the image, which a crop drops)."""
    c2, c, kh, kw = weight.shape
    axes = [_conv_axis(stride, k, p) for k, p in ((kh, pads_begin[0]), (kw, pads_begin[1]))]
    geometry = []
    for (shift, table), n in zip(axes, size):
        offsets = [q for _, q in table.values()]
        low, high = min(offsets), max(offsets)
        blocks = n + (1 if shift else 0)
        if low > 0:  # every block reads only later ones: never the case for "same" convolutions
            raise ValueError("phase convolution would need a negative begin pad")
        geometry.append((-low, high - low + 1, blocks - n + high, blocks))
    (top, height, bottom, rows), (left, width, right, cols) = geometry
    out = np.zeros((stride * stride * c2, stride * stride * c, height, width), np.float64)
    for (a, i), (r, q) in axes[0][1].items():
        for (b, j), (t, u) in axes[1][1].items():
            o, src = a * stride + b, r * stride + t
            out[o * c2:(o + 1) * c2, src * c:(src + 1) * c, q + top, u + left] = weight[:, :, i, j]
    return out, [top, left, bottom, right], (axes[0][0], axes[1][0]), (rows, cols)


def _upsampling(graph: Graph, node: onnx.NodeProto, shapes) -> int | None:
    """The stride of a 2-D ConvTranspose this pass can rewrite (output exactly stride x input), else None."""
    weight = graph.constant(node.input[1])
    x_shape = shapes.get(node.input[0])
    if (weight is None or weight.ndim != 4 or weight.dtype != np.float32 or x_shape is None or len(x_shape) != 4
            or any(d is None for d in x_shape[2:]) or attribute(node, "group", 1) != 1
            or attribute(node, "auto_pad", "NOTSET") != "NOTSET" or attribute(node, "output_shape") is not None):
        return None
    if len(node.input) > 2 and node.input[2] and graph.constant(node.input[2]) is None:
        return None
    a = conv_attributes(node, 2)
    s = a["strides"][0]
    if s < 2 or a["strides"] != [s, s] or a["dilations"] != [1, 1]:
        return None
    for i in range(2):
        full = s * (x_shape[2 + i] - 1) + a["output_padding"][i] + weight.shape[2 + i]
        if full - a["pads"][i] - a["pads"][2 + i] != s * x_shape[2 + i]:
            return None
    return s


def _same_conv(graph: Graph, node: onnx.NodeProto) -> bool:
    weight = graph.constant(node.input[1])
    if weight is None or weight.ndim != 4 or attribute(node, "group", 1) != 1 or attribute(node, "auto_pad", "NOTSET") != "NOTSET":
        return False
    if len(node.input) > 2 and node.input[2] and graph.constant(node.input[2]) is None:
        return False
    a = conv_attributes(node, 2)
    pads = a["pads"]
    return (a["strides"] == [1, 1] and a["dilations"] == [1, 1]
            and all(pads[i] + pads[2 + i] == weight.shape[2 + i] - 1 for i in range(2)))


def _bias(graph: Graph, node: onnx.NodeProto, channels: int) -> np.ndarray:
    if len(node.input) > 2 and node.input[2]:
        return graph.constant(node.input[2]).astype(np.float64)
    return np.zeros(channels)


def polyphase_tail(graph: Graph) -> int:
    """Rewrite ConvTranspose -> activations -> same Conv tails into phase form; returns how many."""
    shapes = static_shapes(graph.commit())
    rewritten = 0
    consumers = graph.consumers()  # rebuilt only after a rewrite, not once per node
    for up in list(graph.nodes):
        if up.op_type != "ConvTranspose":
            continue
        stride = _upsampling(graph, up, shapes)
        if stride is None:
            continue
        chain, tensor = [], up.output[0]
        while graph.is_private(tensor, consumers):
            nxt = consumers[tensor][0]
            if (nxt.op_type in ELEMENTWISE and nxt.domain in ("", "ai.onnx") and len(nxt.input) == 1
                    and len(nxt.output) == 1):
                chain.append(nxt)
                tensor = nxt.output[0]
                continue
            break
        if not graph.is_private(tensor, consumers):
            continue
        conv = consumers[tensor][0]
        if conv.op_type != "Conv" or conv.input[0] != tensor or not _same_conv(graph, conv):
            continue
        weight = graph.constant(up.input[1]).astype(np.float64)
        a = conv_attributes(up, 2)
        w1, pads1 = phase_weights(weight, stride, (a["pads"][0], a["pads"][1]))
        b1 = np.tile(_bias(graph, up, weight.shape[1]), stride * stride)
        v = graph.constant(conv.input[1]).astype(np.float64)
        c = conv_attributes(conv, 2)
        size = shapes[up.input[0]][2:]
        w2, pads2, shifts, blocks = phase_conv_weights(v, stride, (c["pads"][0], c["pads"][1]), size)
        b2 = np.tile(_bias(graph, conv, v.shape[0]), stride * stride)
        phases = graph.fresh(f"{up.name or 'conv_transpose'}_phases")
        new = [helper.make_node("Conv", [up.input[0], graph.add_constant("phase_weight", w1.astype(np.float32)),
                                         graph.add_constant("phase_bias", b1.astype(np.float32))], [phases],
                                name=graph.fresh("PhaseConv"), pads=pads1, strides=[1, 1],
                                kernel_shape=list(w1.shape[2:]))]
        current = phases
        for act in chain:
            out = graph.fresh(f"{act.output[0]}_phases")
            node = helper.make_node(act.op_type, [current], [out], name=act.name or graph.fresh(act.op_type))
            node.attribute.extend(act.attribute)
            new.append(node)
            current = out
        narrow = graph.fresh(f"{conv.output[0]}_phases")
        new.append(helper.make_node("Conv", [current, graph.add_constant("phase_conv_weight", w2.astype(np.float32)),
                                             graph.add_constant("phase_conv_bias", b2.astype(np.float32))], [narrow],
                                    name=graph.fresh("PhaseConv"), pads=pads2, strides=[1, 1],
                                    kernel_shape=list(w2.shape[2:])))
        if any(shifts):
            wide = graph.fresh(f"{conv.output[0]}_uncropped")
            new.append(helper.make_node("DepthToSpace", [narrow], [wide], name=graph.fresh("DepthToSpace"),
                                        blocksize=stride, mode="DCR"))
            starts = np.array(shifts, np.int64)
            ends = starts + stride * np.array(size, np.int64)
            new.append(helper.make_node("Slice", [wide, graph.add_constant("crop_starts", starts),
                                                  graph.add_constant("crop_ends", ends),
                                                  graph.add_constant("crop_axes", np.array([2, 3], np.int64))],
                                        [conv.output[0]], name=graph.fresh("Crop")))
        else:
            new.append(helper.make_node("DepthToSpace", [narrow], [conv.output[0]], name=graph.fresh("DepthToSpace"),
                                        blocksize=stride, mode="DCR"))
        graph.replace([up, *chain, conv], new)
        rewritten += 1
        consumers = graph.consumers()
    return rewritten
