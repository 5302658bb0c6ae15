"""``cancel_transposes``: Transposes moved past element-wise ops, merged, and cancelled.

Layout rewrites (:mod:`.depth_fold`) wrap each layer in a Transpose to their layout and one back.
Between two such layers the pair ``Transpose(P) -> Relu -> Transpose(P^-1)`` is a copy of the whole
activation twice for nothing. This pass moves a Transpose below a single-input element-wise op
(which commutes with any permutation), merges two consecutive Transposes into one
(``perm[i] = P[Q[i]]``), and drops a Transpose whose permutation is the identity. Only
Transposes read by exactly one node move, so no tensor is computed twice.
"""

from __future__ import annotations

from onnx import helper

from .graph import ELEMENTWISE, Graph, attribute, subgraph_inputs


def _perm(node) -> list[int] | None:
    perm = attribute(node, "perm")
    return list(perm) if perm is not None else None


def _rename_input(graph: Graph, old: str, new: str) -> bool:
    """Point every reader of ``old`` at ``new``; False (nothing changed) where that is not safe."""
    if old in graph.outputs or any(old in subgraph_inputs(n) for n in graph.nodes):
        return False
    for node in graph.nodes:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
    return True


def _step(graph: Graph) -> bool:
    """One rewrite, if any applies."""
    consumers = graph.consumers()
    for node in graph.nodes:
        if node.op_type != "Transpose":
            continue
        perm = _perm(node)
        if perm is None:
            continue
        if perm == sorted(perm) and _rename_input(graph, node.output[0], node.input[0]):
            graph.replace([node], [])
            return True
        if not graph.is_private(node.output[0], consumers):
            continue
        (after,) = consumers[node.output[0]]
        if after.op_type in ELEMENTWISE and after.input[0] == node.output[0] and len(after.output) == 1:
            moved = graph.fresh(f"{after.output[0]}_before_transpose")
            op = helper.make_node(after.op_type, [node.input[0], *after.input[1:]], [moved], name=after.name,
                                  domain=after.domain)
            op.attribute.extend(after.attribute)
            graph.replace([node, after], [op, helper.make_node("Transpose", [moved], list(after.output), perm=perm,
                                                              name=node.name)])
            return True
        if after.op_type == "Transpose" and _perm(after) is not None:
            merged = [perm[i] for i in _perm(after)]
            graph.replace([node, after], [helper.make_node("Transpose", [node.input[0]], list(after.output), perm=merged,
                                                           name=after.name)])
            return True
    return False


def cancel_transposes(graph: Graph) -> int:
    """Move, merge and drop Transposes until none of the three applies; returns how many steps."""
    steps = 0
    while _step(graph):
        steps += 1
    return steps
