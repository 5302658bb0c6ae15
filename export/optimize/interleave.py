"""``col2im_interleave``: DepthToSpace after a Conv becomes Col2Im (and takes the crop after it).

A Conv that computes ``s x s`` output phases as channels, then DepthToSpace, is how the phase
forms (:mod:`.polyphase`) put pixels in place. onnxruntime's DepthToSpace is a generic 6-D
transpose: it moved 0.5-0.6 G floats/s on a 2-core AVX-512 EPYC, where its Col2Im, which with
block = stride = ``s`` does the same non-overlapping placement, moved 3-4 G (tensors 64 x 12 x 76 x 76
and 64 x 128 x 38 x 38; 0.22 against 0.02 ms at batch 1). Col2Im reads its ``C * s * s`` columns
channel-major (``c s^2 + phase``), DepthToSpace's DCR mode phase-major, so the Conv's rows are
reordered at export; a constant spatial Slice after the DepthToSpace becomes Col2Im's pads.

Col2Im is opset 18, and onnxruntime has it on the CPU only: the export leaves this pass out of the
graphs it makes for GPUs (:data:`export.optimize.CPU_ONLY`).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from .graph import Graph, attribute, static_shapes

#: the first default-domain opset with Col2Im.
COL2IM_OPSET = 18


def default_opset(graph: Graph) -> int:
    return max((o.version for o in graph.model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def col2im_order(phase_major: np.ndarray, channels: int, phases: int) -> np.ndarray:
    """Rows ordered (phase, channel) -- DepthToSpace's DCR -- reordered to (channel, phase), the
    order Col2Im reads its ``C * block`` columns in."""
    index = np.arange(phases * channels).reshape(phases, channels).T.reshape(-1)
    return phase_major[index]


def _crop(graph: Graph, node: onnx.NodeProto, full: list[int]) -> tuple[list[int], list[int]] | None:
    """(begin, end) pads equal to a constant, unit-step Slice of the last two axes, else None."""
    if node.op_type != "Slice" or len(node.input) < 3:
        return None
    values = [graph.constant(name) if name else None for name in node.input[1:]]
    starts, ends = values[0], values[1]
    axes = values[2] if len(values) > 2 and node.input[3] else np.arange(len(starts) if starts is not None else 0)
    steps = values[3] if len(values) > 3 and node.input[4] else None
    if starts is None or ends is None or axes is None or (len(node.input) > 4 and node.input[4] and steps is None):
        return None
    if steps is not None and np.any(steps != 1):
        return None
    begin, end = [0, 0], [0, 0]
    for axis, start, stop in zip(axes.tolist(), starts.tolist(), ends.tolist()):
        axis = axis + 4 if axis < 0 else axis
        if axis not in (2, 3):
            return None
        size = full[axis - 2]
        start, stop = (v + size if v < 0 else v for v in (start, stop))
        stop = min(stop, size)
        if not 0 <= start < stop:
            return None
        begin[axis - 2], end[axis - 2] = start, size - stop
    return begin, end


def col2im_interleave(graph: Graph) -> int:
    """Rewrite Conv -> DepthToSpace [-> Slice] as Conv -> Reshape -> Col2Im; returns how many."""
    if default_opset(graph) < COL2IM_OPSET:
        return 0
    shapes = static_shapes(graph.commit())
    rewritten = 0
    for node in list(graph.nodes):
        if node.op_type != "DepthToSpace":
            continue
        producers, consumers = graph.producers(), graph.consumers()
        conv = producers.get(node.input[0])
        shape = shapes.get(node.input[0])
        if (conv is None or conv.op_type != "Conv" or not graph.is_private(node.input[0], consumers)
                or shape is None or len(shape) != 4 or any(d is None for d in shape[1:])):
            continue
        weight = graph.constant(conv.input[1])
        has_bias = len(conv.input) > 2 and bool(conv.input[2])
        bias = graph.constant(conv.input[2]) if has_bias else None
        if weight is None or (has_bias and bias is None):
            continue
        s = attribute(node, "blocksize")
        channels, height, width = shape[1:]
        full = [s * height, s * width]
        begin, end, last, old = [0, 0], [0, 0], node, [node]
        after = consumers.get(node.output[0], [])
        if len(after) == 1 and node.output[0] not in graph.outputs:
            crop = _crop(graph, after[0], full)
            if crop is not None:
                (begin, end), last = crop, after[0]
                old.append(last)
        if attribute(node, "mode", "DCR") == "DCR":
            weight, bias = (None if t is None else col2im_order(t, channels // (s * s), s * s) for t in (weight, bias))
        conv_inputs = [conv.input[0], graph.add_constant("col2im_weight", weight)]
        if bias is not None:
            conv_inputs.append(graph.add_constant("col2im_bias", bias))
        reordered = helper.make_node("Conv", conv_inputs, list(conv.output), name=conv.name or graph.fresh("Conv"))
        reordered.attribute.extend(conv.attribute)
        columns = graph.fresh(f"{node.output[0]}_columns")
        image = [f - b - e for f, b, e in zip(full, begin, end)]
        graph.replace([conv, *old], [
            reordered,
            helper.make_node("Reshape", [conv.output[0], graph.add_constant(
                "columns_shape", np.array([0, channels, height * width], np.int64))], [columns], name=graph.fresh("Reshape")),
            helper.make_node("Col2Im", [columns, graph.add_constant("image_shape", np.array(image, np.int64)),
                                        graph.add_constant("block_shape", np.array([s, s], np.int64))],
                             list(last.output), name=graph.fresh("Col2Im"), strides=[s, s], pads=begin + end),
        ])
        rewritten += 1
    return rewritten
