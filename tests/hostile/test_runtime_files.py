"""Hostile model files and hostile file systems against the runtime (``runtime.load``, the CLI, the server's repository).

Model files are built with ``onnx.helper`` (no framework): a decoder ``z (batch, 4) -> MatMul w ->
Reshape (3, 2, 2) -> Sigmoid`` whose weight can live in an external-data file. Every case asserts
the outcome a user sees: the exception or exit status, a message naming the model file and the
tensor (or the flag / path), and that nothing was written or disclosed.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import runtime
from runtime import generate as cli
from core.errors import ModelFileError

pytestmark = pytest.mark.serving

REPO = Path(__file__).resolve().parents[2]
LATENT, SHAPE = 4, (3, 2, 2)
WEIGHTS = np.linspace(-2, 2, LATENT * 12, dtype=np.float32).reshape(LATENT, 12)
SECRET = b"TOP-SECRET-" * 16  # 176 bytes: enough for the (4, 12) float32 weight


# --------------------------------------------------------------------------- helpers


def run_main(args: list[str], caplog) -> tuple[int, str]:
    """``python -m runtime.generate`` in process: (exit status, its error lines joined)."""
    caplog.clear()
    caplog.set_level(logging.INFO, logger="runtime")
    status = cli.main(args)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert all(r.exc_info is None for r in errors), "an error was logged with a traceback"
    return status, "\n".join(r.getMessage() for r in errors)


# --------------------------------------------------------------------------- building models


def _meta(proto, part: str = "decoder", cfg: dict | None = None, **override: str) -> None:
    meta = {
        "model": "toy", "part": part, "config": json.dumps(cfg or {"latent_dim": LATENT}),
        "inputs": json.dumps([{"name": "z", "shape": ["batch", LATENT], "kind": "vector"}]),
        "outputs": json.dumps([{"name": "image", "shape": ["batch", *SHAPE], "kind": "image"}]),
        "value_range": "[0.0, 1.0]", "step": "1", "format_version": "1",
    }
    meta.update(override)
    for key, value in meta.items():
        proto.metadata_props.add(key="age." + key, value=value)


def _decoder(weight, extra_nodes=(), out_dims=SHAPE, functions=()):
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["z", "w"], ["h"]), *extra_nodes,
         helper.make_node("Reshape", ["h", "shape"], ["r"]), helper.make_node("Sigmoid", ["r"], ["image"])],
        "decoder",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", LATENT])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", *out_dims])],
        initializer=[weight, numpy_helper.from_array(np.array([-1, *SHAPE], np.int64), "shape")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9, functions=list(functions))


def _external(tensor, location: str | None, length: int = WEIGHTS.nbytes):
    """Mark ``tensor`` as stored in ``location`` (its own bytes dropped)."""
    from onnx import TensorProto
    from onnx.external_data_helper import set_external_data

    set_external_data(tensor, location=location or "x", offset=0, length=length)
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    if location is None:
        del tensor.external_data[:]
    return tensor


def weight(name: str = "w"):
    from onnx import numpy_helper

    return numpy_helper.from_array(WEIGHTS, name)


def save(proto, folder: Path, **meta) -> Path:
    _meta(proto, **meta)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "decoder.onnx"
    path.write_bytes(proto.SerializeToString())
    return path


def expected(n: int, seed: int) -> np.ndarray:
    from core import images as core_images
    from core import noise as spec_noise

    z = spec_noise.latents(n, LATENT, seed)
    return core_images.to_uint8((1 / (1 + np.exp(-(z @ WEIGHTS)))).reshape(n, *SHAPE))


@pytest.fixture
def secret(tmp_path) -> Path:
    """A file outside every model folder that a model must never read."""
    path = tmp_path / "secret.bin"
    path.write_bytes(SECRET)
    return path


# --------------------------------------------------------------------------- class 1: external data


def test_external_data_next_to_the_model_loads_whatever_the_working_directory(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(WEIGHTS.tobytes())
    save(_decoder(_external(weight(), "weights.bin")), folder)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "weights.bin").write_bytes(np.zeros_like(WEIGHTS).tobytes())  # the cwd's decoy
    monkeypatch.chdir(elsewhere)
    session = runtime.load(folder, providers="cpu")
    assert np.array_equal(session.generate(5, seed=3), expected(5, 3))
    # and through the CLI, run from the decoy folder
    out = tmp_path / "grid.npy"
    assert cli.main([str(folder), "--out", str(out), "--n", "5", "--seed", "3", "--provider", "cpu"]) == 0
    assert np.array_equal(np.load(out), expected(5, 3))


def test_subfolder_external_data_is_allowed(tmp_path):
    folder = tmp_path / "model"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "w.bin").write_bytes(WEIGHTS.tobytes())
    save(_decoder(_external(weight(), "data/w.bin")), folder)
    assert np.array_equal(runtime.load(folder, providers="cpu").generate(2, seed=0), expected(2, 0))


def _hostile_cases(tmp_path: Path, secret: Path) -> dict[str, tuple[str, object]]:
    """case -> (expected words in the message, a function building the model in a folder)."""
    from onnx import TensorProto, helper, numpy_helper

    def plain(location):
        return lambda folder: _decoder(_external(weight(), location))

    def symlink(folder: Path):
        (folder / "link.bin").symlink_to(secret)
        return _decoder(_external(weight(), "link.bin"))

    def symlinked_dir(folder: Path):
        (folder / "sub").symlink_to(secret.parent, target_is_directory=True)
        return _decoder(_external(weight(), f"sub/{secret.name}"))

    def in_constant_node(folder: Path):
        value = _external(numpy_helper.from_array(np.zeros(1, np.float32), "c_value"), "../secret.bin", 4)
        node = helper.make_node("Constant", [], ["unused"], value=value)
        return _decoder(weight(), extra_nodes=[node])

    def in_subgraph(folder: Path):
        inner = _external(numpy_helper.from_array(np.zeros(1, np.float32), "deep_tensor"), "/etc/passwd", 4)
        branch = helper.make_graph([helper.make_node("Identity", ["deep_tensor"], ["o"])], "b", [],
                                   [helper.make_tensor_value_info("o", TensorProto.FLOAT, [1])], initializer=[inner])
        cond = helper.make_node("Constant", [], ["cond"], value=numpy_helper.from_array(np.array(True)))
        node = helper.make_node("If", ["cond"], ["unused"], then_branch=branch, else_branch=branch)
        return _decoder(weight(), extra_nodes=[cond, node])

    def in_sparse_initializer(folder: Path):
        model = _decoder(weight())
        values = _external(numpy_helper.from_array(np.ones(1, np.float32), "sparse_values"), str(secret), 4)
        indices = numpy_helper.from_array(np.array([0], np.int64), "sparse_indices")
        model.graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, [4]))
        return model

    def in_function(folder: Path):
        value = _external(numpy_helper.from_array(np.zeros(1, np.float32), "fn_const"), "../secret.bin", 4)
        fn = helper.make_function("age.test", "Leak", [], ["y"], [helper.make_node("Constant", [], ["y"], value=value)],
                                  [helper.make_opsetid("", 18)])
        return _decoder(weight(), functions=[fn])

    return {
        "dotdot": ("climbs out", plain("../secret.bin")),
        "dotdot_inside": ("climbs out", plain("sub/../../secret.bin")),
        "absolute": ("absolute path", plain(str(secret))),
        "etc_passwd": ("absolute path", plain("/etc/passwd")),
        "windows_drive": ("absolute path", plain("C:\\secret.bin")),
        "backslash_dotdot": ("climbs out", plain("..\\secret.bin")),
        "symlink": ("through a symlink", symlink),
        "symlinked_dir": ("through a symlink", symlinked_dir),
        "ort_memory_tag": ("not a file in the model's folder", plain("*/_ORT_MEM_ADDR_/*")),
        "cwd_file": ("not a file in the model's folder", plain("README.md")),
        "missing": ("not a file in the model's folder", plain("nothing-here.bin")),
        "a_folder": ("not a file in the model's folder", plain(".")),
        "no_location": ("names no location", plain(None)),
        "constant_node": ("climbs out", in_constant_node),
        "subgraph": ("absolute path", in_subgraph),
        "sparse": ("absolute path", in_sparse_initializer),
        "function": ("climbs out", in_function),
    }


TENSOR_OF = {"constant_node": "c_value", "subgraph": "deep_tensor", "sparse": "sparse_values", "function": "fn_const"}
CASES = ["dotdot", "dotdot_inside", "absolute", "etc_passwd", "windows_drive", "backslash_dotdot", "symlink",
         "symlinked_dir", "ort_memory_tag", "cwd_file", "missing", "a_folder", "no_location", "constant_node",
         "subgraph", "sparse", "function"]


@pytest.mark.parametrize("case", CASES)
def test_external_data_outside_the_model_folder_is_refused(case, tmp_path, secret, monkeypatch):
    words, build = _hostile_cases(tmp_path, secret)[case]
    folder = tmp_path / "models" / "m"
    folder.mkdir(parents=True)
    path = save(build(folder), folder)
    monkeypatch.chdir(REPO)  # README.md is in the working directory, as in the original report
    with pytest.raises(ModelFileError) as info:
        runtime.load(folder, providers="cpu")
    message = str(info.value)
    assert message.startswith(str(path)) and words in message, message
    assert repr(TENSOR_OF.get(case, "w")) in message, message
    assert "TOP-SECRET" not in message


def test_cli_refuses_a_leaking_model_and_writes_nothing(tmp_path, secret, caplog):
    folder = tmp_path / "m"
    path = save(_decoder(_external(weight(), "../secret.bin")), folder)
    out = tmp_path / "out" / "grid.npy"
    status, err = run_main([str(folder), "--out", str(out), "--n", "2"], caplog)
    assert status == 2 and str(path) in err and "'w'" in err and "climbs out" in err
    assert not out.exists()


def test_server_lists_leaking_models_as_unavailable(tmp_path, secret):
    from runtime.server.repository import Repository

    root = tmp_path / "repo"
    save(_decoder(weight()), root / "good")
    save(_decoder(_external(weight(), "../../secret.bin")), root / "dotdot")
    save(_decoder(_external(weight(), str(secret))), root / "absolute")
    (root / "symlink").mkdir()
    (root / "symlink" / "w.bin").symlink_to(secret)
    save(_decoder(_external(weight(), "w.bin")), root / "symlink")
    repo = Repository.scan(root, "cpu")
    assert sorted(repo.models) == ["good"]
    unavailable = {u["name"]: u["error"] for u in repo.describe()["unavailable"]}
    assert sorted(unavailable) == ["absolute", "dotdot", "symlink"]
    for name, error in unavailable.items():
        assert f"{root / name / 'decoder.onnx'}: tensor 'w'" in error and "TOP-SECRET" not in error


# --------------------------------------------------------------------------- the protobuf reader's bounds


def test_malformed_and_deeply_nested_files_are_refused_clearly(tmp_path):

    folder = tmp_path / "m"
    path = save(_decoder(weight()), folder)
    blob = path.read_bytes()
    for bad in (blob[: len(blob) // 2], b"\x0a\xff\xff\xff\xff\x0f", b"\x0b" + blob, os.urandom(256)):
        path.write_bytes(bad)
        with pytest.raises(ModelFileError, match="not a loadable ONNX model"):
            runtime.load(path, providers="cpu")

    # graph -> node -> attribute -> graph ... 5,000 deep, written by hand (the onnx package itself
    # refuses to build it): refused by the reader's depth bound, with no RecursionError
    def field(number: int, payload: bytes) -> bytes:
        return _varint(number << 3 | 2) + _varint(len(payload)) + payload

    graph = b""
    for _ in range(5000):
        graph = field(1, field(5, field(6, graph)))  # GraphProto.node / NodeProto.attribute / AttributeProto.g
    path.write_bytes(blob + field(7, graph))  # a second ModelProto.graph merges into the first
    with pytest.raises(ModelFileError, match=r"subgraphs nested more than \d+ deep"):
        runtime.load(path, providers="cpu")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append(value & 0x7F | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


# --------------------------------------------------------------------------- class 4: metadata and graph bounds


DEEP_JSON = "[" * 100_000 + "]" * 100_000
METADATA_CASES = {
    "deep_config": ({"config": '{"a": ' + DEEP_JSON + "}"}, "age.config: JSON nested"),
    "config_not_json": ({"config": "{nope"}, "age.config: not valid JSON"),
    "config_nan": ({"config": '{"latent_dim": NaN}'}, "age.config: not valid JSON"),
    "deep_outputs": ({"outputs": DEEP_JSON}, "age.outputs: JSON nested"),
    "outputs_not_list": ({"outputs": '{"name": "image"}'}, "age.outputs is malformed"),
    "huge_output": ({"outputs": json.dumps([{"name": "image", "shape": ["batch", 3, 10**6, 10**6], "kind": "image"}])},
                    "values per sample"),
    "bool_dim": ({"outputs": json.dumps([{"name": "image", "shape": ["batch", True, 2, 2], "kind": "image"}])},
                 "bad shape"),
    "huge_latent": ({"inputs": json.dumps([{"name": "z", "shape": ["batch", 10**7], "kind": "vector"}])},
                    "latent_dim is limited to"),
    "latent_2_70": ({"inputs": json.dumps([{"name": "z", "shape": ["batch", 2**70], "kind": "vector"}])},
                    "values per sample"),
    "value_range_nan": ({"value_range": "[NaN, 1]"}, "age.value_range: not valid JSON"),
    "value_range_inf": ({"value_range": "[0, 1e999]"}, "age.value_range is malformed"),
    "value_range_deep": ({"value_range": DEEP_JSON}, "age.value_range: JSON nested"),
    "config_too_big": ({"config": json.dumps({"pad": "x" * (2 * 1024 * 1024)})}, "exceeds the limit"),
    "prior_unknown": ({"prior": "uniform"}, "metadata age.prior is 'uniform'; expected one of normal, sphere, none"),
    "prior_case": ({"prior": "Normal"}, "metadata age.prior is 'Normal'"),
    "encoder_kind_unknown": ({"encoder_kind": "variational"}, "metadata age.encoder_kind is 'variational'; expected one of"),
    "reconstructs_not_bool": ({"reconstructs": '"yes"'}, "metadata age.reconstructs is '\"yes\"'; expected true or false"),
    "reconstructs_number": ({"reconstructs": "1"}, "metadata age.reconstructs is '1'"),
    "reconstructs_not_json": ({"reconstructs": "maybe"}, "age.reconstructs: not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(METADATA_CASES))
def test_crafted_metadata_is_refused_before_a_session_exists(case, tmp_path, monkeypatch):
    override, words = METADATA_CASES[case]
    path = save(_decoder(weight()), tmp_path / "m", **override)
    monkeypatch.setattr("runtime.providers.create_session", lambda *a, **k: pytest.fail("session created"))
    with pytest.raises(ModelFileError) as info:
        runtime.load(path, providers="cpu")
    assert str(info.value).startswith(str(path)) and words in str(info.value), str(info.value)[:300]


def test_large_latent_dim_and_symbolic_output_dims_are_refused(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    # metadata within the per-sample bound but latent_dim beyond MAX_LATENT_DIM
    big = runtime.session.MAX_LATENT_DIM + 1
    model = _decoder(numpy_helper.from_array(np.zeros((big, 12), np.float32), "w"))
    model.graph.input[0].CopyFrom(helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", big]))
    path = save(model, tmp_path / "big", cfg={"latent_dim": big},
                inputs=json.dumps([{"name": "z", "shape": ["batch", big], "kind": "vector"}]))
    with pytest.raises(ModelFileError, match=f"'z' is a {big}-value vector; latent_dim is limited to"):
        runtime.load(path, providers="cpu")

    # the reshape target depends on the latents' values, so even onnxruntime's shape inference
    # leaves the image's height symbolic: the graph could return anything, whatever the metadata says
    data_dependent = [
        helper.make_node("ReduceMax", ["z"], ["zmax"], keepdims=0),
        helper.make_node("Cast", ["zmax"], ["zi"], to=TensorProto.INT64),
        helper.make_node("Mul", ["zi", "zero"], ["d"]),
        helper.make_node("Add", ["shape", "d"], ["shape2"]),
    ]
    model = _decoder(weight(), out_dims=(3, "h", 2))
    next(n for n in model.graph.node if n.op_type == "Reshape").input[1] = "shape2"
    for node in reversed(data_dependent):
        model.graph.node.insert(0, node)
    model.graph.initializer.append(numpy_helper.from_array(np.zeros(4, np.int64), "zero"))
    path = save(model, tmp_path / "symbolic")
    with pytest.raises(ModelFileError, match="only the batch axis may be symbolic"):
        runtime.load(path, providers="cpu")


def test_n_is_bounded_by_the_models_output_size(tmp_path, monkeypatch):
    path = save(_decoder(weight()), tmp_path / "m")
    monkeypatch.setattr("runtime.session.MAX_OUTPUT_ELEMENTS", 12 * 10)
    session = runtime.load(path, providers="cpu")
    assert session.max_images == 10 and session.generate(10, seed=0).shape == (10, 2, 2, 3)
    with pytest.raises(ValueError, match="n must be at most 10"):
        session.generate(11, seed=0)
    with pytest.raises(ValueError, match="at most 10 per call"):
        session.decode(np.zeros((11, LATENT), np.float32))


def test_server_lists_every_crashing_folder_under_unavailable_and_starts(tmp_path, monkeypatch):
    """A folder whose loading raises anything (here RecursionError and MemoryError, as crafted
    inputs did) is listed with its reason; the good folder is served."""
    from runtime.server import repository

    root = tmp_path / "repo"
    for name in ("good", "recursion", "memory", "deep_config"):
        save(_decoder(weight()), root / name, **({"config": DEEP_JSON} if name == "deep_config" else {}))
    real_load = repository.load

    def crashing_load(folder, *args, **kwargs):
        crash = {"recursion": RecursionError("maximum recursion depth exceeded"), "memory": MemoryError()}
        if Path(folder).name in crash:
            raise crash[Path(folder).name]
        return real_load(folder, *args, **kwargs)

    monkeypatch.setattr(repository, "load", crashing_load)
    repo = repository.Repository.scan(root, "cpu")
    assert sorted(repo.models) == ["good"]
    unavailable = {u["name"]: u["error"] for u in repo.describe()["unavailable"]}
    assert "RecursionError" in unavailable["recursion"] and "MemoryError" in unavailable["memory"]
    assert "age.config: JSON nested" in unavailable["deep_config"]


# --------------------------------------------------------------------------- class 3 and 15: the CLI


@pytest.fixture
def model_dir(tmp_path) -> Path:
    folder = tmp_path / "model"
    save(_decoder(weight()), folder)
    return folder


@pytest.mark.parametrize("flags, needle", [
    (["--nrow", "1000000"], "--nrow must be an integer between 1 and n (16)"),
    (["--nrow", "0"], "--nrow must be"),
    (["--fps", "0.001"], "--fps must be a number between 0.1 and 100"),
    (["--fps", "nan"], "--fps must be"),
    (["--fps", "1e308"], "--fps must be"),
    (["--seed", "-1"], "--seed must be an integer between 0 and"),
    (["--seed", str(2**64)], "--seed must be"),
    (["--scale", "1e300"], "--scale must be a number between 0 and 100"),
    (["--scale", "-0.5"], "--scale must be"),
    (["--n", "1000000000"], "--n must be between 1 and"),
    (["--batch-size", "0"], "--batch-size must be"),
])
def test_cli_refuses_out_of_range_parameters_before_loading(flags, needle, tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(cli, "load", lambda *a, **k: pytest.fail("model loaded before the arguments were checked"))
    out = tmp_path / "grid.png"
    status, err = run_main([str(tmp_path / "model"), "--out", str(out), *flags], caplog)
    assert status == 2 and needle in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_cli_n_beyond_the_models_output_budget(model_dir, tmp_path, caplog, monkeypatch):
    monkeypatch.setattr("runtime.session.MAX_OUTPUT_ELEMENTS", 12 * 10)
    out = tmp_path / "grid.png"
    status, err = run_main([str(model_dir), "--out", str(out), "--n", "11"], caplog)
    assert status == 2 and "--n must be at most 10" in err and not out.exists()


def _run_cli(*args: str, preexec=None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runtime.generate", *args, "--provider", "cpu"],
                          capture_output=True, text=True, timeout=120, preexec_fn=preexec, cwd=cwd or REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_cli_out_is_a_directory_or_under_a_file(model_dir, tmp_path, caplog):
    (tmp_path / "a_dir.png").mkdir()
    status, err = run_main([str(model_dir), "--out", str(tmp_path / "a_dir.png"), "--n", "2"], caplog)
    assert status == 2 and f"--out {tmp_path / 'a_dir.png'}: is a directory" in err
    assert _leftovers(tmp_path / "a_dir.png") == []
    (tmp_path / "a_file").write_text("x")
    target = tmp_path / "a_file" / "grid.png"
    status, err = run_main([str(model_dir), "--out", str(target), "--n", "2"], caplog)
    assert status == 2 and str(target) in err and len(err.splitlines()) == 1, err
    assert (tmp_path / "a_file").read_text() == "x"


def test_cli_missing_output_folder_is_created(model_dir, tmp_path):
    out = tmp_path / "new" / "deeper" / "grid.png"
    assert cli.main([str(model_dir), "--out", str(out), "--n", "2"]) == 0 and out.is_file()


def test_cli_model_path_os_errors_are_one_line(tmp_path, caplog):
    (tmp_path / "file.txt").write_text("x")
    for model in (tmp_path / ("x" * 5000), tmp_path / "file.txt" / "decoder.onnx", tmp_path / "nothing", tmp_path):
        status, err = run_main([str(model), "--out", str(tmp_path / "g.png"), "--n", "2"], caplog)
        assert status == 2 and str(model)[:200] in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "g.png").exists()


def test_cli_full_disk_leaves_nothing_half_written(model_dir, tmp_path):
    """RLIMIT_FSIZE stands in for a full disk: the write fails with EFBIG (SIGXFSZ ignored)."""

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "grid.npy").write_bytes(b"previous")
    result = _run_cli(str(model_dir), "--out", str(out_dir / "grid.npy"), "--n", "16", preexec=small_files)
    assert result.returncode == 2, result
    assert str(out_dir / "grid.npy") in result.stderr and "File too large" in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("error:") == 1, result.stderr
    assert _leftovers(out_dir) == ["grid.npy"] and (out_dir / "grid.npy").read_bytes() == b"previous"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_cli_unreadable_model_and_read_only_output_folder(model_dir, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    (model_dir / "decoder.onnx").chmod(0)
    try:
        result = _run_cli(str(model_dir / "decoder.onnx"), "--out", str(tmp_path / "g.png"))
        assert result.returncode == 2 and "decoder.onnx" in result.stderr and "Traceback" not in result.stderr
    finally:
        (model_dir / "decoder.onnx").chmod(0o644)
    locked.chmod(0o500)
    try:
        result = _run_cli(str(model_dir), "--out", str(locked / "g.png"), "--n", "2")
        assert result.returncode == 2 and str(locked / "g.png") in result.stderr and "Traceback" not in result.stderr
        assert _leftovers(locked) == []
    finally:
        locked.chmod(0o700)
