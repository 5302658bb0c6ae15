"""Export-time graph optimisation: small named rewrites that make onnxruntime faster.

``python -m export.onnx CKPT --out DIR`` runs :func:`optimize` on every exported part (``--no-optimize``
turns it off); the export's validation against the framework then runs on the optimised graph, so a
rewrite that changed an output beyond the tolerance fails the export like any other mismatch.

The passes, in the order they run (each its own module, each with its own test):

``fold_constants``  (:mod:`.constants`) ``Constant`` nodes and nodes of constant inputs computed once.
``fold_crop``       (:mod:`.crop`) ConvTranspose + spatial Slice (TensorFlow's "same" padding) -> pads.
``fold_affine``     (:mod:`.affine`) BatchNorm / per-channel Mul, Add, Sub folded into the Conv,
                    ConvTranspose or Gemm before it; MatMul + bias -> Gemm.
``polyphase_tail``  (:mod:`.polyphase`) ConvTranspose -> activations -> same Conv computed on the
                    phase maps at the low resolution, one DepthToSpace of the narrow output.
``single_pixel_transpose`` (:mod:`.pixel_transpose`) a ConvTranspose of a 1 x 1 input -> Gemm.
``unit_stride_transpose`` (:mod:`.unit_stride`) a stride-1 2-D ConvTranspose -> Conv (flipped kernel).
``depth_fold_transpose`` (:mod:`.depth_fold`) a depth-upsampling 3-D ConvTranspose -> a 2-D one over
                    depth-major windows of the input.
``block_transpose`` (:mod:`.block_transpose`) a 2-D ConvTranspose whose kernel is a multiple of its
                    stride -> Conv computing s x s output blocks + Col2Im, where few blocks are wasted.
``cancel_transposes`` (:mod:`.transposes`) Transposes moved past element-wise ops, merged, dropped.
``col2im_interleave`` (:mod:`.interleave`) Conv -> DepthToSpace [-> crop] -> Conv -> Col2Im.

The passes in :data:`CPU_ONLY` emit ``Col2Im``, which onnxruntime runs on the CPU only:
``optimize(..., portable=True)`` leaves them out, for graphs meant for GPUs (the export's fp16
variant and Triton repository).

Measured and left out: an upsampling whose kernel is no multiple of its stride (3 x 3, stride 2) as
phase convolutions (its 2 x 2 phase kernels are 7/16 zero taps; 0.68x with DepthToSpace, 0.96-1.02x
with Col2Im on the 150x150 seed decoder), the same split into zero-free per-phase convolutions (1.00x:
the 1 x 1 and 1 x 2 phases run at 80 GFLOP/s), and DepthToSpace as the interleave anywhere (5-10x
slower than Col2Im in onnxruntime; it made every phase form before Col2Im measure slower).

Each is a function ``(Graph) -> int`` returning how many rewrites it made. :func:`optimize` returns the
new model and one :class:`PassReport` per pass, which the export logs.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

import onnx

from .affine import fold_affine
from .block_transpose import block_transpose
from .constants import fold_constants
from .crop import fold_crop
from .depth_fold import depth_fold_transpose
from .graph import Graph
from .interleave import col2im_interleave
from .pixel_transpose import single_pixel_transpose
from .polyphase import polyphase_tail
from .transposes import cancel_transposes
from .unit_stride import unit_stride_transpose

log = logging.getLogger("export.optimize")

#: name -> pass, in the order :func:`optimize` runs them.
PASSES: dict[str, Callable[[Graph], int]] = {
    "fold_constants": fold_constants,
    "fold_crop": fold_crop,
    "fold_affine": fold_affine,
    "polyphase_tail": polyphase_tail,
    "single_pixel_transpose": single_pixel_transpose,
    "unit_stride_transpose": unit_stride_transpose,
    "depth_fold_transpose": depth_fold_transpose,
    "block_transpose": block_transpose,
    "cancel_transposes": cancel_transposes,
    "col2im_interleave": col2im_interleave,
}

#: passes whose graphs need an op onnxruntime has on the CPU only (Col2Im).
CPU_ONLY = frozenset({"block_transpose", "col2im_interleave"})
#: passes that only fold arithmetic into weights: any backend runs their graphs as fast.
FOLDING = frozenset({"fold_constants", "fold_crop", "fold_affine"})


@dataclass(frozen=True)
class PassReport:
    """One pass over one graph: how many rewrites it made and the node count before and after."""

    name: str
    rewrites: int
    nodes_before: int
    nodes_after: int
    seconds: float


def op_counts(model: onnx.ModelProto) -> Counter:
    """How many nodes of each op type the main graph has."""
    return Counter(node.op_type for node in model.graph.node)


def optimize(model: onnx.ModelProto, passes: Sequence[str] | None = None,
             portable: bool = False) -> tuple[onnx.ModelProto, list[PassReport]]:
    """A rewritten copy of ``model`` and what each pass did. ``passes``: names from :data:`PASSES`
    (default: all of them, in their order); ``portable`` drops those in :data:`CPU_ONLY`."""
    names = list(PASSES) if passes is None else list(passes)
    if portable:
        names = [n for n in names if n not in CPU_ONLY]
    unknown = [n for n in names if n not in PASSES]
    if unknown:
        raise ValueError(f"unknown optimisation pass(es) {unknown}; choose from {list(PASSES)}")
    work = onnx.ModelProto()
    work.CopyFrom(model)
    reports = []
    for name in names:
        graph = Graph(work)
        before, start = len(graph.nodes), time.perf_counter()
        rewrites = PASSES[name](graph)
        work = graph.commit()
        reports.append(PassReport(name, rewrites, before, len(work.graph.node), time.perf_counter() - start))
        log.debug("%s: %d rewrite(s), %d -> %d nodes", name, rewrites, before, len(work.graph.node))
    return work, reports


def optimized_for(reports: Sequence[PassReport]) -> str | None:
    """What a graph these passes rewrote is tuned for, recorded as ``age.optimized_for``:
    ``"onnxruntime-cpu"`` when a :data:`CPU_ONLY` pass rewrote something (its Col2Im runs on the CPU
    under CUDA), ``"onnxruntime"`` when another pass beyond :data:`FOLDING` did (layouts chosen for
    onnxruntime's kernels, which OpenVINO may run slower), None when only folding (or nothing) did."""
    done = {r.name for r in reports if r.rewrites}
    if done & CPU_ONLY:
        return "onnxruntime-cpu"
    return "onnxruntime" if done - FOLDING else None


def describe(reports: Sequence[PassReport]) -> str:
    """One line: the passes that changed something and the node counts."""
    done = [f"{r.name} x{r.rewrites}" for r in reports if r.rewrites]
    if not reports:
        return "no passes"
    return f"{', '.join(done) or 'nothing to rewrite'}; {reports[0].nodes_before} -> {reports[-1].nodes_after} nodes"
