"""ONNX graph edits shared by both exporters: canonical tensor names, batch axis, metadata.

Metadata keys written into every exported file (``metadata_props``, all strings):

``age.model``, ``age.part``, ``age.config`` (config JSON), ``age.inputs`` / ``age.outputs``
(JSON lists of ``{"name", "shape", "kind"}``, canonical NCHW, batch axis ``"batch"``),
``age.value_range`` (JSON ``[low, high]`` or ``null``), ``age.source_framework`` (who wrote the
checkpoint), ``age.exported_via``, ``age.step``, ``age.format_version``, and what the runtime needs to
serve the model without knowing it (:func:`core.registry.runtime_facts`): ``age.prior``
(``normal`` | ``sphere`` | ``none``), ``age.encoder_kind`` (``gaussian`` | ``deterministic`` |
``none``) and ``age.reconstructs`` (JSON ``true`` / ``false``).
"""

from __future__ import annotations

import json
from dataclasses import asdict

import onnx

from core import FORMAT_VERSION
from core.checkpoint import Checkpoint
from core.registry import PartSpec, runtime_facts

META_PREFIX = "age."


def rename_io(model: onnx.ModelProto, part: PartSpec) -> onnx.ModelProto:
    """Give graph inputs/outputs the registry's names and name the batch axis ``"batch"``."""
    graph = model.graph
    mapping = {}
    for value, spec in zip(list(graph.input), part.inputs):
        mapping[value.name] = spec.name
    for value, spec in zip(list(graph.output), part.outputs):
        mapping[value.name] = spec.name
    mapping = {old: new for old, new in mapping.items() if old != new}
    if mapping:
        for node in graph.node:
            node.input[:] = [mapping.get(n, n) for n in node.input]
            node.output[:] = [mapping.get(n, n) for n in node.output]
        for value in list(graph.input) + list(graph.output) + list(graph.value_info):
            value.name = mapping.get(value.name, value.name)
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "batch"
    return model


def _io_json(tensors) -> str:
    return json.dumps([{**asdict(t), "shape": list(t.shape)} for t in tensors])


def runtime_metadata(ckpt: Checkpoint) -> dict[str, str]:
    """The ``age.prior`` / ``age.encoder_kind`` / ``age.reconstructs`` values (without the prefix)."""
    facts = runtime_facts(ckpt.config)
    return {
        "prior": str(facts["prior"]),
        "encoder_kind": str(facts["encoder_kind"]),
        "reconstructs": json.dumps(bool(facts["reconstructs"])),
    }


def embed_metadata(model: onnx.ModelProto, ckpt: Checkpoint, part: PartSpec, via: str,
                   optimized_for: str | None = None) -> onnx.ModelProto:
    """Replace every ``age.*`` entry of ``model`` with this export's (other entries are kept).
    ``optimized_for``: :func:`export.optimize.optimized_for` of the graph's rewrites, when any."""
    meta = {
        "model": ckpt.model,
        "part": part.name,
        "config": ckpt.config.to_json(),
        "inputs": _io_json(part.inputs),
        "outputs": _io_json(part.outputs),
        "value_range": json.dumps(list(part.value_range) if part.value_range else None),
        "source_framework": ckpt.framework,
        "exported_via": via,
        "step": str(ckpt.step),
        "format_version": FORMAT_VERSION,
        **runtime_metadata(ckpt),
        **({"optimized_for": optimized_for} if optimized_for else {}),
    }
    kept = [p for p in model.metadata_props if not p.key.startswith(META_PREFIX)]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in meta.items():
        model.metadata_props.add(key=META_PREFIX + key, value=value)
    model.producer_name = "age-toolkit"
    model.doc_string = f"A.G.E. toolkit: {ckpt.model} {part.name}"
    return model
