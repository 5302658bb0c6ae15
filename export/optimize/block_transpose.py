"""``block_transpose``: a 2-D transposed convolution as a blocked Conv and one Col2Im.

onnxruntime runs ``ConvTranspose`` as a GEMM and a col2im scatter in NCHW (180-350 GFLOP/s on a
2-core AVX-512 EPYC), while a ``Conv`` runs in its blocked NCHWc layout (400-520 GFLOP/s on the
same machine and shapes). A stride-``s`` transposed convolution writes, per axis, uncropped output
``o = s*i + t`` from input ``i`` and tap ``t < k``. Cut the uncropped output into blocks of ``s``
pixels starting at offset ``c`` (block ``j`` holds ``o = s*j + c + r``, ``r < s``); output ``r`` of
block ``j`` reads input ``j - a`` through tap ``t = s*a + c + r``:

    y[s*j + c + r] = sum_a W[s*a + c + r] * x[j - a]        (taps outside [0, k) are zero)

so one Conv with ``s*s*C_out`` output channels computes every block, its kernel spanning the
offsets ``a`` that occur, and ``Col2Im`` with block and stride ``s`` puts the blocks in place (they
do not overlap); its pads crop what the ConvTranspose's pads crop. Per axis the alignment ``c``
is chosen for the least work, (blocks covering the output) x (kernel taps): with ``k`` a multiple
of ``s`` (4, stride 2) the kernel has no zero taps and ``K - 1`` border blocks; with a 5-tap kernel
at stride 2 some phases read 2 inputs and some 3, so a 3-tap kernel with zero taps covers them.

The rewrite is made when that work is at most :data:`MAX_WASTE` times the ConvTranspose's GEMM
(``n * k`` per axis) -- below the 1.5-1.7x kernel speed ratio above. Measured, 2 threads: the
folded video generator's 8 x 8 and 16 x 16 layers (1.27x and 1.13x the work) and the two image
generators with 4 x 4, stride-2 kernels on 8-64 pixel maps (1.13-1.27x) gained 1.07-1.25x; a
5 x 5, stride-2 layer on a 7 x 7 map (1.44x) 1.06-1.16x; a 4 x 4 map with a 4-tap kernel (1.56x)
lost, and so did the 3 x 3 stride-2 layers of the 150 x 150 decoder (1.78x: 0.96-1.02x). A Conv
with fewer than :data:`MIN_CHANNELS` output channels fills a fraction of each NCHWc vector: a
1-channel final layer (4 phases) measured no faster, so narrow ones stay.

Col2Im, not DepthToSpace, interleaves the blocks (5-10x faster in onnxruntime, see
:mod:`.interleave`). Col2Im is opset 18 and CPU-only in onnxruntime: graphs of an older opset are
left alone, and the export leaves this pass out of the graphs it makes for GPUs. Group 1,
dilation 1, static height and width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import helper

from .graph import Graph, constant_transposes, conv_attributes, static_shapes
from .interleave import COL2IM_OPSET, default_opset

#: the most work (blocks x kernel taps, both axes) the rewrite accepts, over the ConvTranspose's.
MAX_WASTE = 1.5
#: the fewest output channels (C_out * s * s) of the blocked Conv.
MIN_CHANNELS = 8


@dataclass(frozen=True)
class Axis:
    """One spatial axis of the blocked form: block alignment ``offset``, the input offsets its kernel
    spans (``a_low..a_high``), the first block and the number of blocks, and Col2Im's crop."""

    stride: int
    offset: int
    a_low: int
    a_high: int
    first: int
    blocks: int
    crop_begin: int
    crop_end: int

    @property
    def taps(self) -> int:
        return self.a_high - self.a_low + 1

    def conv_pads(self, size: int) -> tuple[int, int] | None:
        """Conv pads so that its outputs are blocks ``first .. first + blocks - 1`` (block ``j``
        reads inputs ``j - a_high .. j - a_low``), or None where a pad would be negative."""
        begin = self.a_high - self.first
        end = (self.first + self.blocks - 1 - self.a_low) - (size - 1)
        return (begin, end) if begin >= 0 and end >= 0 else None


def plan_axis(size: int, kernel: int, stride: int, pad_begin: int, out: int) -> Axis | None:
    """The cheapest block alignment of one axis (input ``size``, output ``out`` after the pads)."""
    best = None
    for offset in range(stride):
        offsets = [(t - offset - r) // stride for r in range(stride) for t in range(kernel)
                   if (t - offset - r) % stride == 0]
        first = (pad_begin - offset) // stride
        last = (pad_begin + out - 1 - offset) // stride
        axis = Axis(stride, offset, min(offsets), max(offsets), first, last - first + 1,
                    pad_begin - (stride * first + offset), stride * (last + 1) + offset - (pad_begin + out))
        if axis.conv_pads(size) is None:
            continue
        if best is None or axis.blocks * axis.taps < best.blocks * best.taps:
            best = axis
    return best


def block_weight(weight: np.ndarray, rows: Axis, cols: Axis) -> np.ndarray:
    """``(C_in, C_out, kh, kw)`` -> ``(C_out * sh * sw, C_in, taps_h, taps_w)``: row ``(c, r, q)`` is
    output ``(r, q)`` of a block for channel ``c`` (Col2Im's order); kernel tap ``u`` reads input
    offset ``a = a_high - u``, i.e. ConvTranspose tap ``s*a + offset + r`` (zero outside the kernel)."""
    c_in, c_out, kh, kw = weight.shape
    out = np.zeros((c_out, rows.stride, cols.stride, c_in, rows.taps, cols.taps), np.float32)
    for r in range(rows.stride):
        for u in range(rows.taps):
            t = rows.stride * (rows.a_high - u) + rows.offset + r
            if not 0 <= t < kh:
                continue
            for q in range(cols.stride):
                for v in range(cols.taps):
                    tw = cols.stride * (cols.a_high - v) + cols.offset + q
                    if 0 <= tw < kw:
                        out[:, r, q, :, u, v] = weight[:, :, t, tw].T
    return out.reshape(c_out * rows.stride * cols.stride, c_in, rows.taps, cols.taps)


def block_transpose(graph: Graph) -> int:
    """Rewrite strided 2-D ConvTranspose nodes as a blocked Conv + Col2Im where that is less work
    than :data:`MAX_WASTE` times the original; returns how many."""
    if default_opset(graph) < COL2IM_OPSET:
        return 0
    shapes = static_shapes(graph.commit())
    rewritten = 0
    for node, weight, bias in constant_transposes(graph, rank=4):
        x_shape, y_shape = shapes.get(node.input[0]), shapes.get(node.output[0])
        if (x_shape is None or len(x_shape) != 4 or y_shape is None or len(y_shape) != 4
                or any(d is None for d in (*x_shape[2:], *y_shape[2:]))):
            continue
        a = conv_attributes(node, 2)
        strides, kernel, size, out = a["strides"], list(weight.shape[2:]), list(x_shape[2:]), list(y_shape[2:])
        c_out, phases = weight.shape[1], strides[0] * strides[1]
        if a["dilations"] != [1, 1] or max(strides) < 2 or c_out * phases < MIN_CHANNELS:
            continue
        plan = [plan_axis(n, k, s, p, o) for n, k, s, p, o in zip(size, kernel, strides, a["pads"][:2], out)]
        if None in plan:
            continue
        rows, cols = plan
        work = (rows.blocks * rows.taps * rows.stride) * (cols.blocks * cols.taps * cols.stride)
        if work > MAX_WASTE * size[0] * kernel[0] * size[1] * kernel[1]:
            continue
        conv_inputs = [node.input[0], graph.add_constant("block_weight", block_weight(weight, rows, cols))]
        if bias is not None:
            conv_inputs.append(graph.add_constant("block_bias", np.repeat(bias.astype(np.float32), phases)))
        (top, bottom), (left, right) = rows.conv_pads(size[0]), cols.conv_pads(size[1])
        computed, columns = graph.fresh(f"{node.output[0]}_blocks"), graph.fresh(f"{node.output[0]}_columns")
        graph.replace([node], [
            helper.make_node("Conv", conv_inputs, [computed], name=node.name or graph.fresh("BlockConv"),
                             kernel_shape=[rows.taps, cols.taps], pads=[top, left, bottom, right], strides=[1, 1]),
            helper.make_node("Reshape", [computed, graph.add_constant(
                "columns_shape", np.array([0, c_out * phases, rows.blocks * cols.blocks], np.int64))], [columns],
                name=graph.fresh("Reshape")),
            helper.make_node("Col2Im", [columns, graph.add_constant("image_shape", np.array(out, np.int64)),
                                        graph.add_constant("block_shape", np.array(strides, np.int64))],
                             list(node.output), name=graph.fresh("Col2Im"), strides=strides,
                             pads=[rows.crop_begin, cols.crop_begin, rows.crop_end, cols.crop_end]),
        ])
        rewritten += 1
    return rewritten
