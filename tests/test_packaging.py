"""Packaging: the runtime installs alone.

The core dependencies are exactly what the ONNX runtime needs (NumPy, Pillow, onnxruntime); torch,
TensorFlow/Keras, the exporters and the training extras are optional extras. Checked two ways:

* fresh interpreters with an import blocker (a ``sys.meta_path`` finder installed by a
  ``sitecustomize`` that refuses the frameworks and the training/export packages) import the
  runtime and the server, run both CLIs' ``--help``, and generate a PNG from a hand-built ONNX
  decoder; once more with the server stack blocked too, for the core install alone;
* ``pyproject.toml`` itself: the core list, where torch and TensorFlow may appear, the aliases.

Runs in the full environment and in CI's serving-only one (``.[serve]`` + pytest, httpx, onnx).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.serving

REPO = Path(__file__).resolve().parents[1]
PROJECT = "age-toolkit"

#: What a serving host must never need: the frameworks, the exporters and the trainers' packages.
FRAMEWORKS = ("torch", "torchvision", "tensorflow", "keras", "tf_keras", "jax")
HEAVY = FRAMEWORKS + ("onnx", "onnxscript", "onnxconverter_common", "tf2onnx", "sklearn", "matplotlib", "tqdm",
                      "tensorboard", "safetensors", "tritonclient", "triton", "imageio_ffmpeg")
#: The server stack (the `serve` extra and what it brings): blocked too when checking the core alone.
SERVER_STACK = ("fastapi", "starlette", "pydantic", "pydantic_core", "uvicorn", "multipart", "python_multipart",
                "httpx", "anyio")
#: Optional imports the runtime may try and handle (MP4 output without imageio-ffmpeg is a clear error).
OPTIONAL = ("imageio_ffmpeg",)

#: Core: exactly these requirement strings, markers included.
CORE = {
    "numpy>=1.26",
    "pillow>=10",
    "onnxruntime-gpu==1.31.*; sys_platform == 'linux' and platform_machine == 'x86_64'",
    "onnxruntime>=1.20; sys_platform != 'linux' or platform_machine != 'x86_64'",
}

SITECUSTOMIZE = '''
"""Test import blocker (tests/test_packaging.py): refuses the packages named in $AGE_BLOCKED_IMPORTS."""
import os
import sys

_BLOCKED = frozenset(filter(None, os.environ.get("AGE_BLOCKED_IMPORTS", "").split(",")))
_LOG = os.environ.get("AGE_BLOCKER_LOG")


def _note(line):
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as f:
            f.write(line + "\\n")


class _Blocker:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in _BLOCKED:
            _note("attempt " + name)
            raise ModuleNotFoundError(f"import of {name!r} blocked by tests/test_packaging.py", name=name)
        return None


sys.meta_path.insert(0, _Blocker())
_note("active " + ",".join(sorted(m for m in _BLOCKED if m in sys.modules)))
'''


@pytest.fixture(scope="module")
def blocker(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("blocker")
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    return folder


def run_blocked(blocker: Path, tmp_path: Path, args: list[str], blocked: tuple[str, ...]) -> subprocess.CompletedProcess:
    """``python ARGS`` in a fresh interpreter that cannot import ``blocked``; asserts the blocker was active,
    nothing blocked was already imported at startup, and no blocked import was even attempted (except the
    optional ones the runtime handles)."""
    log = tmp_path / f"blocker-{len(list(tmp_path.glob('blocker-*.log')))}.log"
    env = dict(os.environ)
    env.pop("PYTHONSTARTUP", None)
    env.update({
        "PYTHONPATH": os.pathsep.join([str(blocker), str(REPO)]),
        "AGE_BLOCKED_IMPORTS": ",".join(blocked),
        "AGE_BLOCKER_LOG": str(log),
        "AGE_RUNTIME_PROVIDER": "cpu",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    proc = subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    assert lines and lines[0].startswith("active"), f"the import blocker did not run (a sitecustomize earlier on the path?): {lines}"
    assert lines[0] == "active ", f"blocked packages were imported before the blocker was installed: {lines[0]}"
    where = f"`python {' '.join(args)}` with {', '.join(blocked)} blocked"
    assert proc.returncode == 0, f"{where} failed (exit {proc.returncode}); the import chain:\n{proc.stderr[-4000:]}"
    attempted = sorted({line.split()[1] for line in lines[1:] if line.split()[1].partition(".")[0] not in OPTIONAL})
    assert not attempted, f"{where}: tried to import {attempted}\n{proc.stderr[-2000:]}"
    return proc


IMPORTS = "import runtime, runtime.generate, runtime.serve, runtime.server.app; print('imported')"


def test_runtime_and_server_import_without_frameworks(blocker, tmp_path):
    proc = run_blocked(blocker, tmp_path, ["-c", IMPORTS], HEAVY)
    assert proc.stdout.strip() == "imported"


@pytest.mark.parametrize("module", ["runtime.generate", "runtime.serve"])
def test_cli_help_without_frameworks(blocker, tmp_path, module):
    proc = run_blocked(blocker, tmp_path, ["-m", module, "--help"], HEAVY)
    assert proc.stdout.startswith(f"usage: python -m {module}"), proc.stdout[:300]


def _write_decoder(folder: Path, latent: int = 4, size: int = 4) -> Path:
    """A decoder z -> Gemm -> Reshape -> Sigmoid with the metadata the runtime reads (built with onnx.helper,
    which the serving test environment has; the runtime that loads it must not need onnx)."""
    from onnx import TensorProto, helper, numpy_helper, save

    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["z", "w", "b"], ["h"]),
         helper.make_node("Reshape", ["h", "shape"], ["r"]),
         helper.make_node("Sigmoid", ["r"], ["image"])],
        "decoder",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", latent])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, size, size])],
        initializer=[
            numpy_helper.from_array(rng.normal(0, 2.0, (latent, 3 * size * size)).astype(np.float32), "w"),
            numpy_helper.from_array(np.zeros(3 * size * size, np.float32), "b"),
            numpy_helper.from_array(np.array([-1, 3, size, size], np.int64), "shape"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    meta = {
        "model": "toydecoder", "part": "decoder",
        "config": json.dumps({"model": "toydecoder", "latent_dim": latent, "image_size": size}),
        "inputs": json.dumps([{"name": "z", "shape": ["batch", latent], "kind": "vector"}]),
        "outputs": json.dumps([{"name": "image", "shape": ["batch", 3, size, size], "kind": "image"}]),
        "value_range": json.dumps([0.0, 1.0]), "source_framework": "torch", "exported_via": "torch",
        "step": "1", "format_version": "1",
    }
    for key, value in meta.items():
        model.metadata_props.add(key="age." + key, value=value)
    folder.mkdir(parents=True, exist_ok=True)
    save(model, folder / "decoder.onnx")
    return folder


def test_core_alone_generates_without_server_stack_or_frameworks(blocker, tmp_path):
    """What `pip install .` (the core) gives: the library and `python -m runtime.generate` work with the
    server stack blocked as well."""
    pytest.importorskip("onnx", reason="builds the test model with onnx.helper")
    model = _write_decoder(tmp_path / "model")
    blocked = HEAVY + SERVER_STACK
    run_blocked(blocker, tmp_path, ["-c", "import runtime, runtime.generate; print('imported')"], blocked)
    run_blocked(blocker, tmp_path, ["-m", "runtime.generate", "--help"], blocked)
    out = tmp_path / "grid.png"
    run_blocked(blocker, tmp_path, ["-m", "runtime.generate", str(model), "--n", "4", "--seed", "0", "--out", str(out),
                                    "--log-level", "WARNING"], blocked)
    from PIL import Image

    with Image.open(out) as im:
        assert im.mode == "RGB" and min(im.size) >= 4


def test_blocker_really_blocks(blocker, tmp_path):
    """The blocker itself: a blocked import fails in the child (so the tests above prove something)."""
    code = "import numpy\ntry:\n    import torch\nexcept ImportError as e:\n    print('blocked:', e)\n"
    log = tmp_path / "b.log"
    env = dict(os.environ, PYTHONPATH=str(blocker), AGE_BLOCKED_IMPORTS="torch,numpy_not", AGE_BLOCKER_LOG=str(log))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "blocked: import of 'torch' blocked" in proc.stdout, proc.stdout + proc.stderr
    assert log.read_text().splitlines() == ["active ", "attempt torch"]


# --------------------------------------------------------------------------- pyproject.toml


@pytest.fixture(scope="module")
def project() -> dict:
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def dist_name(requirement: str) -> str:
    """The canonical distribution name of a requirement string (PEP 503 normalised)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def expand(extras: dict[str, list[str]], name: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """Distribution names an extra pulls in directly, following ``age-toolkit[...]`` self-references."""
    out = set()
    for req in extras[name]:
        if dist_name(req) == PROJECT:
            for inner in re.search(r"\[([^\]]*)\]", req).group(1).split(","):
                inner = inner.strip()
                assert inner in extras and inner not in seen, f"extra {name!r}: bad self-reference {req!r}"
                out |= expand(extras, inner, seen | {name})
        else:
            out.add(dist_name(req))
    return out


def test_core_dependencies_are_exactly_the_runtime(project):
    assert set(project["dependencies"]) == CORE
    assert len(project["dependencies"]) == len(CORE)


def test_frameworks_only_in_extras(project):
    extras = project["optional-dependencies"]
    core = {dist_name(r) for r in project["dependencies"]}
    for heavy in ("torch", "torchvision", "tensorflow", "keras", "onnx", "tf2onnx", "onnxscript", "safetensors",
                  "scikit-learn", "matplotlib", "tensorboard", "tqdm", "fastapi", "uvicorn"):
        assert heavy not in core, f"{heavy} is a core dependency; it belongs in an extra"
    assert "torch" in expand(extras, "torch") and {"tensorflow", "keras"} <= expand(extras, "keras")
    for serving in ("serve", "runtime", "cuda"):
        pulled = expand(extras, serving)
        assert not pulled & {"torch", "torchvision", "tensorflow", "keras", "onnx", "tf2onnx", "onnxscript"}, (
            f"extra {serving!r} would pull a framework or exporter: {sorted(pulled)}")
    assert {"fastapi", "uvicorn", "python-multipart"} <= expand(extras, "serve")
    assert expand(extras, "runtime") == expand(extras, "serve"), "`runtime` is the old name of `serve`"


def test_all_is_every_extra_and_make_installs_it(project):
    extras = project["optional-dependencies"]
    everything = set().union(*(expand(extras, name) for name in extras if name not in ("all", "test")))
    assert expand(extras, "all") == everything
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert ".[all,test]" in makefile, "make demo / make test install everything: `pip install -e '.[all,test]'`"


def test_serving_marker_is_registered():
    with open(REPO / "pyproject.toml", "rb") as f:
        markers = tomllib.load(f)["tool"]["pytest"]["ini_options"]["markers"]
    assert any(m.startswith("serving:") for m in markers)
