"""``fold_constants``: compute at export time what depends only on weights.

Exporters leave nodes whose every input is a constant: tf2onnx's BatchNorm arithmetic on the
moving statistics (``gamma / sqrt(var + eps)`` is a Sqrt, a Div and a Mul of initializers), shape
arithmetic, ``Constant`` nodes. onnxruntime folds some of these when a session starts, each time;
folding them once here makes the graph smaller and lets the affine pass
(:mod:`export.optimize.affine`) see plain initializers.

Every ``Constant`` node becomes an initializer; then every deterministic node whose inputs are all
initializers is evaluated with ONNX's reference implementation (``onnx.reference``), in graph
order, so chains fold completely. A node whose result would hold more than
:data:`MAX_FOLDED_ELEMENTS` values is left alone (folding must not blow up the file).
"""

from __future__ import annotations

import logging

import numpy as np
import onnx
from onnx import helper

from .graph import Graph

log = logging.getLogger("export.optimize")

#: Larger constant results stay computed at run time (a broadcast can turn two small constants
#: into a big one: storing it would grow the file for no gain).
MAX_FOLDED_ELEMENTS = 1 << 20
#: Ops whose output is not a function of their inputs alone, or that carry subgraphs.
NOT_FOLDABLE = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial",
                "Bernoulli", "If", "Loop", "Scan", "SequenceMap", "Dropout"}


def _constant_value(node: onnx.NodeProto) -> np.ndarray | None:
    if len(node.attribute) != 1:
        return None
    attr = node.attribute[0]
    if attr.name == "value":
        return onnx.numpy_helper.to_array(attr.t)
    scalar = {"value_float": np.float32, "value_int": np.int64}
    if attr.name in scalar:
        return np.array(helper.get_attribute_value(attr), scalar[attr.name])
    listed = {"value_floats": np.float32, "value_ints": np.int64}
    if attr.name in listed:
        return np.array(list(helper.get_attribute_value(attr)), listed[attr.name])
    return None


def _evaluate(node: onnx.NodeProto, inputs: list[np.ndarray | None], opset: list[onnx.OperatorSetIdProto]) -> list[np.ndarray]:
    """Run one node on constant inputs with ONNX's reference evaluator; ``inputs`` by position, None
    where the node leaves an optional input empty."""
    from onnx.reference import ReferenceEvaluator

    names = [f"in{i}" if x is not None else "" for i, x in enumerate(inputs)]
    wired = helper.make_node(node.op_type, names, [f"out{i}" for i in range(len(node.output))], domain=node.domain)
    wired.attribute.extend(node.attribute)
    given = [(n, x) for n, x in zip(names, inputs) if x is not None]
    graph = helper.make_graph(
        [wired], "fold",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(x.dtype), x.shape) for n, x in given],
        [helper.make_tensor_value_info(f"out{i}", onnx.TensorProto.UNDEFINED, None) for i in range(len(node.output))],
    )
    model = helper.make_model(graph, opset_imports=opset)
    return [np.asarray(v) for v in ReferenceEvaluator(model).run(None, dict(given))]


def fold_constants(graph: Graph) -> int:
    """Turn Constant nodes into initializers and precompute nodes of constant inputs; returns the
    number of nodes removed."""
    folded = 0
    for node in list(graph.nodes):
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and len(node.output) == 1:
            value = _constant_value(node)
            if value is not None and node.output[0] not in graph.outputs:
                graph.set_constant(node.output[0], value)
                graph.replace([node], [])
                folded += 1
    opset = list(graph.model.opset_import)
    for node in list(graph.nodes):
        if (node.op_type in NOT_FOLDABLE or node.domain not in ("", "ai.onnx") or not node.input
                or any(o in graph.outputs for o in node.output)):
            continue
        values = [graph.constant(name) if name else None for name in node.input]
        if any(v is None for name, v in zip(node.input, values) if name):
            continue
        try:
            results = _evaluate(node, values, opset)
        except Exception as exc:  # noqa: BLE001 - an op the reference cannot run stays as it is
            log.debug("fold_constants: %s %s not folded (%s)", node.op_type, node.name, exc)
            continue
        if len(results) != len(node.output) or any(r.size > MAX_FOLDED_ELEMENTS for r in results):
            continue
        for name, value in zip(node.output, results):
            if name:
                graph.set_constant(name, value)
        graph.replace([node], [])
        folded += 1
    return folded
