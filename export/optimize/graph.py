"""A small editable view of an ONNX graph for the optimisation passes.

The passes rewrite patterns of a few nodes (a convolution and the per-channel affine op after it,
a transposed convolution and its crop, ...). They need the same few things: who produces and who
consumes a tensor, an initializer's value as a NumPy array, fresh unique names, and a way to swap
nodes while keeping the node list topologically ordered. :class:`Graph` gives exactly that over a
``onnx.GraphProto`` and writes back with :meth:`Graph.commit`.

Only the top-level graph is rewritten: a tensor that a subgraph (``If``/``Loop`` body) reads counts
as used by its parent node, so the passes never remove or change it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Iterator

import numpy as np
import onnx
from onnx import numpy_helper


#: Ops that act on each element alone, so they commute with any rearrangement of the elements
#: (a transpose, a phase split): a rewrite may move them across one. Single data input; Clip's
#: min / max are scalars.
ELEMENTWISE = frozenset({
    "Abs", "Ceil", "Celu", "Clip", "Elu", "Erf", "Exp", "Floor", "Gelu", "HardSigmoid", "HardSwish", "Identity",
    "LeakyRelu", "Log", "Mish", "Neg", "Reciprocal", "Relu", "Round", "Selu", "Sigmoid", "Sign",
    "Softplus", "Softsign", "Sqrt", "Tanh", "ThresholdedRelu",
})


def subgraph_inputs(node: onnx.NodeProto) -> set[str]:
    """Names a node's subgraphs read from the outer scope (approximately: every name they use)."""
    names: set[str] = set()
    for attr in node.attribute:
        graphs = list(attr.graphs) + ([attr.g] if attr.HasField("g") else [])
        for g in graphs:
            for inner in g.node:
                names.update(i for i in inner.input if i)
                names |= subgraph_inputs(inner)
    return names


class Graph:
    """Nodes, initializers and graph outputs of one ``onnx.ModelProto``'s main graph, editable.

    Changes are made to Python lists and dicts and written into the model by :meth:`commit`.
    """

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        graph = model.graph
        self.nodes: list[onnx.NodeProto] = list(graph.node)
        self.initializers: dict[str, onnx.TensorProto] = {t.name: t for t in graph.initializer}
        #: initializers also listed as graph inputs: defaults a caller may override, so not constants
        self.overridable = {v.name for v in graph.input} & set(self.initializers)
        self.outputs = {o.name for o in graph.output}
        self._names = {n for node in self.nodes for n in (*node.input, *node.output, node.name)} | set(self.initializers)
        self._names |= {v.name for v in (*graph.input, *graph.output, *graph.value_info)}
        self._counter = 0
        self.changed: set[str] = set()  # tensors whose shape may differ from their value_info now

    # -- lookups ---------------------------------------------------------------------------

    def producers(self) -> dict[str, onnx.NodeProto]:
        return {out: node for node in self.nodes for out in node.output if out}

    def consumers(self) -> dict[str, list[onnx.NodeProto]]:
        table: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in self.nodes:
            for name in set(node.input) | subgraph_inputs(node):
                if name:
                    table[name].append(node)
        return table

    def constant(self, name: str) -> np.ndarray | None:
        """The value of an initializer, or None when ``name`` is not one (or is one a graph input of
        the same name may override at run time)."""
        tensor = self.initializers.get(name)
        return None if tensor is None or name in self.overridable else numpy_helper.to_array(tensor)

    def is_private(self, name: str, consumers: dict[str, list[onnx.NodeProto]]) -> bool:
        """Whether exactly one node reads ``name`` and it is not a graph output (so it may be fused away)."""
        return name not in self.outputs and len(consumers.get(name, [])) == 1

    # -- edits -----------------------------------------------------------------------------

    def fresh(self, hint: str) -> str:
        """A tensor or node name used nowhere in the graph yet."""
        while True:
            self._counter += 1
            name = f"{hint}__opt{self._counter}"
            if name not in self._names:
                self._names.add(name)
                return name

    def add_constant(self, hint: str, value: np.ndarray) -> str:
        name = self.fresh(hint)
        self.initializers[name] = numpy_helper.from_array(np.ascontiguousarray(value), name)
        return name

    def set_constant(self, name: str, value: np.ndarray) -> None:
        self.initializers[name] = numpy_helper.from_array(np.ascontiguousarray(value), name)

    def replace(self, old: Iterable[onnx.NodeProto], new: list[onnx.NodeProto]) -> None:
        """Remove the ``old`` nodes and put ``new`` where the first of them stood.

        The new nodes read only tensors the old group read (or constants), and write what the old
        group wrote, so that position keeps the list topologically sorted.
        """
        old_ids = {id(n) for n in old}
        at = min(i for i, n in enumerate(self.nodes) if id(n) in old_ids)
        kept = [n for n in self.nodes if id(n) not in old_ids]
        before = sum(1 for n in self.nodes[:at] if id(n) not in old_ids)
        self.nodes = kept[:before] + list(new) + kept[before:]
        for node in new:
            self.changed.update(node.output)

    def commit(self) -> onnx.ModelProto:
        """Write nodes and initializers back; drop initializers nobody reads any more and the
        value_info of tensors that were rewritten or are gone (shape inference redoes them)."""
        graph = self.model.graph
        used = {name for node in self.nodes for name in (*node.input, *subgraph_inputs(node))}
        used |= self.outputs
        del graph.node[:]
        graph.node.extend(self.nodes)
        del graph.initializer[:]
        graph.initializer.extend(t for name, t in self.initializers.items() if name in used)
        produced = {o for node in self.nodes for o in node.output}
        keep = [v for v in graph.value_info if v.name in produced and v.name not in self.changed]
        del graph.value_info[:]
        graph.value_info.extend(keep)
        return self.model


def attribute(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    """A node attribute's Python value (ints, floats, strings decoded), or ``default``."""
    for attr in node.attribute:
        if attr.name == name:
            value = onnx.helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else value
    return default


def constant_transposes(graph: Graph, rank: int | None = None) -> Iterator[tuple[onnx.NodeProto, np.ndarray, np.ndarray | None]]:
    """``(node, weight, bias or None)`` of every ConvTranspose a rewrite may bake into new weights:
    float32 constant weight (of ``rank`` dimensions when given) and bias (when it has one), group 1,
    explicit pads (no ``auto_pad``, no ``output_shape``). Iterates over a snapshot of the node list,
    so the caller may replace nodes as it goes."""
    for node in list(graph.nodes):
        if node.op_type != "ConvTranspose":
            continue
        weight = graph.constant(node.input[1])
        has_bias = len(node.input) > 2 and bool(node.input[2])
        bias = graph.constant(node.input[2]) if has_bias else None
        if (weight is None or weight.dtype != np.float32 or (rank is not None and weight.ndim != rank)
                or (has_bias and bias is None) or attribute(node, "group", 1) != 1
                or attribute(node, "auto_pad", "NOTSET") != "NOTSET" or attribute(node, "output_shape") is not None):
            continue
        yield node, weight, bias


def conv_attributes(node: onnx.NodeProto, spatial: int) -> dict[str, list[int]]:
    """strides, pads, dilations, output_padding of a Conv / ConvTranspose with their ONNX defaults."""
    return {
        "strides": list(attribute(node, "strides", [1] * spatial)),
        "pads": list(attribute(node, "pads", [0] * (2 * spatial))),
        "dilations": list(attribute(node, "dilations", [1] * spatial)),
        "output_padding": list(attribute(node, "output_padding", [0] * spatial)),
    }


def static_shapes(model: onnx.ModelProto) -> dict[str, tuple[int | None, ...]]:
    """name -> shape from ONNX shape inference (None for a symbolic or unknown axis) for every
    tensor whose rank is known; initializers included."""
    inferred = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    graph = inferred.graph
    table: dict[str, tuple[int | None, ...]] = {t.name: tuple(int(d) for d in t.dims) for t in graph.initializer}
    for value in (*graph.input, *graph.value_info, *graph.output):
        tensor_type = value.type.tensor_type
        if tensor_type.HasField("shape"):
            table[value.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim)
    return table
