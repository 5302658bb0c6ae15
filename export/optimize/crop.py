"""``fold_crop``: a transposed convolution followed by a crop becomes one padded transposed convolution.

TensorFlow computes ``padding="same"`` transposed convolutions at full size and crops the result:
tf2onnx writes ``ConvTranspose`` with zero pads and then a ``Slice`` of the spatial axes. ONNX's
``ConvTranspose`` crops by itself through ``pads`` (and grows through ``output_padding``), so the
Slice, and the memory the full-size output took, can go.

For one spatial axis of input length ``n``, stride ``s``, kernel ``k``, dilation ``d``, pads
``(b, e)`` and output padding ``p``, the uncropped length is ``L = s(n - 1) + p + d(k - 1) + 1`` and
the output is ``full[b : L - e]``. A Slice ``[start : end]`` (step 1) of that is
``full[b + start : b + min(end, L - b - e)]``, i.e. pads ``(b + start, L - (b + end'))``; a negative
end pad becomes output padding (which ONNX requires to be smaller than the stride or dilation).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from .graph import Graph, attribute, conv_attributes, static_shapes


def _slice_window(graph: Graph, node: onnx.NodeProto, rank: int) -> dict[int, tuple[int, int]] | None:
    """{axis: (start, end)} of a constant, step-1 Slice with non-negative starts, or None (any of its
    starts, ends, axes or steps computed at run time)."""
    def optional(index: int) -> tuple[bool, np.ndarray | None]:
        """(given, its constant value): an input named but not constant is (True, None)."""
        given = len(node.input) > index and bool(node.input[index])
        return given, graph.constant(node.input[index]) if given else None

    starts, ends = graph.constant(node.input[1]), graph.constant(node.input[2])
    (has_axes, axes), (has_steps, steps) = optional(3), optional(4)
    if starts is None or ends is None or (has_axes and axes is None) or (has_steps and steps is None):
        return None
    if axes is None:
        axes = np.arange(len(starts))
    if len(starts) != len(ends) or len(axes) != len(starts):
        return None
    if steps is not None and (len(steps) != len(starts) or np.any(steps != 1)):
        return None
    window = {}
    for axis, start, end in zip(axes.tolist(), starts.tolist(), ends.tolist()):
        axis = axis + rank if axis < 0 else axis
        if start < 0 or end < 0 or not 0 <= axis < rank:
            return None
        window[axis] = (start, end)
    return window


def _whole(window: tuple[int, int], size: int | None) -> bool:
    """Whether a Slice window keeps a whole axis (of ``size``, None when symbolic)."""
    start, end = window
    return start == 0 and (end >= np.iinfo(np.int32).max or (size is not None and end >= size))


def fold_crop(graph: Graph) -> int:
    """Fold spatial Slices after ConvTranspose nodes into the ConvTranspose's pads; returns how many."""
    shapes = static_shapes(graph.commit())
    producers, consumers = graph.producers(), graph.consumers()
    folded = 0
    for crop in list(graph.nodes):
        if crop.op_type != "Slice" or len(crop.input) < 3:
            continue
        conv = producers.get(crop.input[0])
        if (conv is None or conv.op_type != "ConvTranspose" or not graph.is_private(crop.input[0], consumers)
                or attribute(conv, "auto_pad", "NOTSET") != "NOTSET" or attribute(conv, "output_shape") is not None):
            continue
        x_shape, w_shape = shapes.get(conv.input[0]), shapes.get(conv.input[1])
        if not x_shape or not w_shape or any(d is None for d in x_shape[2:]):
            continue
        rank, spatial = len(x_shape), len(x_shape) - 2
        window = _slice_window(graph, crop, rank)
        out_channels = w_shape[1] * attribute(conv, "group", 1)
        if window is None or not all(_whole(window[axis], out_channels if axis else None)
                                     for axis in (0, 1) if axis in window):
            continue  # it crops batch or channels: not ours
        a = conv_attributes(conv, spatial)
        pads, out_pad = list(a["pads"]), list(a["output_padding"])
        ok = True
        for i in range(spatial):
            if 2 + i not in window:
                continue
            start, end = window[2 + i]
            s, d, k = a["strides"][i], a["dilations"][i], w_shape[2 + i]
            full = s * (x_shape[2 + i] - 1) + out_pad[i] + d * (k - 1) + 1
            begin, length = pads[i], full - pads[i] - pads[spatial + i]
            end = min(end, length)
            if end <= start:
                ok = False
                break
            new_begin, new_end = begin + start, full - (begin + end)
            grow = max(0, -new_end)
            if out_pad[i] + grow >= max(s, d):
                ok = False
                break
            pads[i], pads[spatial + i], out_pad[i] = new_begin, max(0, new_end), out_pad[i] + grow
        if not ok:
            continue
        attrs = {attr.name: helper.get_attribute_value(attr) for attr in conv.attribute}
        attrs.update(pads=pads, output_padding=out_pad)
        fused = helper.make_node("ConvTranspose", list(conv.input), list(crop.output), name=conv.name or graph.fresh("ConvTranspose"), **attrs)
        graph.replace([conv, crop], [fused])
        folded += 1
    return folded
