"""DESIGN.md: the two framework trees mirror each other file for file and class for class."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_files(tree: str) -> set[str]:
    return {str(p.relative_to(ROOT / tree)) for p in (ROOT / tree).rglob("*.py") if "__pycache__" not in p.parts}


def public_classes(path: Path) -> set[str]:
    module = ast.parse(path.read_text())
    return {n.name for n in module.body if isinstance(n, ast.ClassDef) and not n.name.startswith("_")}


def test_same_files_in_both_trees():
    torch_files, keras_files = python_files("torch_impl"), python_files("keras_impl")
    assert torch_files == keras_files, {
        "only in torch_impl": sorted(torch_files - keras_files),
        "only in keras_impl": sorted(keras_files - torch_files),
    }


#: framework-only helper classes, each with the reason it has no twin
ONE_SIDED = {
    ("keras_impl", "layers/core.py", "TorchLayer"): "base class that reports torch names; torch needs none",
    ("torch_impl", "parts.py", "PartModule"): "nn.Module wrapper for torch.onnx; Keras builds a functional model",
    ("keras_impl", "layers/transformer.py", "PackedVariable"):
        "presents Keras' three q/k/v kernels as torch's one packed in_proj tensor; torch has it packed already",
}


@pytest.mark.parametrize("relative", sorted(python_files("torch_impl")))
def test_same_classes_in_each_twin(relative):
    torch_classes = {c for c in public_classes(ROOT / "torch_impl" / relative) if ("torch_impl", relative, c) not in ONE_SIDED}
    keras_classes = {c for c in public_classes(ROOT / "keras_impl" / relative) if ("keras_impl", relative, c) not in ONE_SIDED}
    # torch_impl/layers/core.py and optimizers.py re-export torch.nn / torch.optim classes that the Keras twin defines
    imported = set()
    module = ast.parse((ROOT / "torch_impl" / relative).read_text())
    for node in module.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("torch"):
            imported |= {a.asname or a.name for a in node.names}
    assert torch_classes | (keras_classes & imported) == keras_classes, relative
