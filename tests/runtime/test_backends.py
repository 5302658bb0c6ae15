"""Backends (runtime.backends): OpenVINO gives onnxruntime's outputs within 1e-4 through the same
API, CLI and server; unknown names, OpenVINO on CUDA, and a missing OpenVINO are refused clearly.

OpenVINO is an optional extra: its tests skip when it is not installed. The toy models are built
with ``onnx.helper`` (serving-only environments run them); the exported registered model needs torch.
"""

from __future__ import annotations

import importlib
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import runtime
from core.errors import ConfigError, ModelFileError
from runtime import backends, evaluate, generate
from runtime.backends import BackendError
from runtime.server.settings import Settings

from tests.runtime.test_model_kinds import SIZE, build_ae, build_flat

pytestmark = pytest.mark.serving

TOL = 1e-4
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
needs_openvino = pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is not installed (the openvino extra)")


@pytest.fixture(scope="module")
def toys(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("backends") / "models"
    build_flat(root / "gauss", None, gaussian_encoder=True)
    build_ae(root / "ae")
    return root


def _gaussian_decoder_model() -> str:
    """The first registered model with a Gaussian encoder and a ``decoder`` part (chosen by registry
    fields, not by name): a real model's graph (convolutions, BatchNorm, ConvTranspose)."""
    from core.registry import MODELS, make_config, runtime_facts, sample_part

    for name in sorted(MODELS):
        config = make_config(name, "tiny")
        if runtime_facts(config)["encoder_kind"] == "gaussian" and sample_part(config) == "decoder":
            return name
    pytest.skip("no registered model has a Gaussian encoder and a decoder")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """A registered model (tiny preset) exported through torch, with the export's graph rewrites."""
    torch = pytest.importorskip("torch")
    torch_impl = pytest.importorskip("torch_impl")
    pipeline = pytest.importorskip("export.pipeline")

    root = tmp_path_factory.mktemp("backends_export")
    torch.manual_seed(0)
    model = torch_impl.build(_gaussian_decoder_model(), preset="tiny")
    ckpt = torch_impl.save_model(model, root / "ckpt.safetensors", step=1)
    pipeline.export_checkpoint(ckpt, root / "onnx", via="torch")
    return root / "onnx"


# --------------------------------------------------------------------------- refusals


def test_unknown_backend_is_refused(toys, tmp_path):
    with pytest.raises(BackendError, match="backend must be one of onnxruntime, openvino, got 'tensorrt'"):
        runtime.load(toys / "gauss", backend="tensorrt")
    with pytest.raises(SystemExit):
        generate.main([str(toys / "gauss"), "--out", str(tmp_path / "x.png"), "--backend", "tensorrt"])
    with pytest.raises(ConfigError, match="--backend must be one of"):
        Settings(backend="tensorrt")


def test_openvino_with_cuda_is_refused(toys, tmp_path, monkeypatch, caplog):
    with pytest.raises(BackendError, match="backend 'openvino' runs on the CPU only; provider 'cuda' needs backend "
                                           "'onnxruntime'"):
        runtime.load(toys / "gauss", backend="openvino", providers="cuda")
    with pytest.raises(BackendError, match="CUDAExecutionProvider"):
        runtime.load(toys / "gauss", backend="openvino", providers=["CUDAExecutionProvider"])
    monkeypatch.setenv("AGE_RUNTIME_PROVIDER", "cuda")
    with pytest.raises(BackendError, match=r"provider 'cuda' \(from \$AGE_RUNTIME_PROVIDER\)"):
        runtime.load(toys / "gauss", backend="openvino")
    monkeypatch.delenv("AGE_RUNTIME_PROVIDER")
    assert generate.main([str(toys / "gauss"), "--out", str(tmp_path / "x.png"), "--backend", "openvino",
                          "--provider", "cuda"]) == 2
    assert "--backend 'openvino' runs on the CPU only" in caplog.text
    with pytest.raises(ConfigError, match="--backend 'openvino' runs on the CPU only"):
        Settings(backend="openvino", provider="cuda")


def test_missing_openvino_says_how_to_install_it(toys, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "openvino", None)  # what `import openvino` meets when it is not installed
    monkeypatch.delitem(sys.modules, "runtime.backends.openvino", raising=False)
    # an earlier import left the submodule as an attribute of its package, where `from . import` finds it
    monkeypatch.delattr(sys.modules["runtime.backends"], "openvino", raising=False)
    with pytest.raises(BackendError, match=r"needs OpenVINO, which is not installed: pip install '\.\[openvino\]'"):
        runtime.load(toys / "gauss", backend="openvino")
    assert evaluate.main([str(toys / "gauss"), "--n", "4", "--backend", "openvino"]) == 2
    assert "pip install '.[openvino]'" in capsys.readouterr().err
    # onnxruntime, the default, never needs it
    assert runtime.load(toys / "gauss", providers="cpu").generate(1, seed=0).shape == (1, SIZE, SIZE, 3)


# --------------------------------------------------------------------------- OpenVINO = onnxruntime


def _both(folder: Path, **kwargs) -> tuple[runtime.GeneratorSession, runtime.GeneratorSession]:
    return (runtime.load(folder, providers="cpu", **kwargs), runtime.load(folder, backend="openvino", **kwargs))


def _assert_same_api(ort_session, ov_session) -> None:
    assert (ov_session.backend, ort_session.backend) == ("openvino", "onnxruntime")
    assert ov_session.provider == "openvino:CPU" and "inference precision f32" in ov_session.provider_reason
    for name in ("model", "part", "latent_shape", "prior", "encoder_kind", "image_shape", "value_range", "metadata",
                 "max_images", "input_image_shape"):
        assert getattr(ov_session, name) == getattr(ort_session, name), name


@needs_openvino
def test_openvino_matches_onnxruntime_on_an_exported_model(exported):
    ort_session, ov_session = _both(exported)
    _assert_same_api(ort_session, ov_session)
    for n in (1, 9):
        z = ort_session.sample_latents(n, seed=n)
        np.testing.assert_allclose(ov_session.decode(z), ort_session.decode(z), atol=TOL, rtol=0)
    x = np.random.default_rng(0).random((5, *ort_session.input_image_shape), dtype=np.float32)
    for got, want in zip(ov_session.encode(x), ort_session.encode(x)):
        np.testing.assert_allclose(got, want, atol=TOL, rtol=0)
    assert np.abs(ov_session.reconstruct(x).astype(int) - ort_session.reconstruct(x).astype(int)).max() <= 1
    assert np.abs(ov_session.generate(4, seed=3).astype(int) - ort_session.generate(4, seed=3).astype(int)).max() <= 1


@needs_openvino
@pytest.mark.parametrize("name", ["gauss", "ae"])
def test_openvino_matches_onnxruntime_on_every_kind(toys, name):
    ort_session, ov_session = _both(toys / name)
    _assert_same_api(ort_session, ov_session)
    z = np.random.default_rng(1).standard_normal((6, *ort_session.latent_shape), dtype=np.float32)
    np.testing.assert_allclose(ov_session.decode(z), ort_session.decode(z), atol=TOL, rtol=0)
    assert not ov_session.parts[1].opened  # the encoder is lazy on every backend
    x = np.random.default_rng(2).random((3, 3, SIZE, SIZE), dtype=np.float32)
    np.testing.assert_allclose(ov_session.encode_latents(x), ort_session.encode_latents(x), atol=TOL, rtol=0)
    assert ov_session.parts[1].backend == "openvino"


@needs_openvino
def test_openvino_takes_the_thread_policy_and_computes_in_f32(toys):
    session = runtime.load(toys / "gauss", backend="openvino", threads=1)
    compiled = session.parts[0].session
    assert compiled.get_property("INFERENCE_NUM_THREADS") == 1
    assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) in ("<Type: 'float32'>", "f32")


@needs_openvino
def test_openvino_refuses_external_data_and_checks_the_graph(toys, tmp_path):
    import onnx
    from onnx.external_data_helper import convert_model_to_external_data

    folder = tmp_path / "gauss"
    shutil.copytree(toys / "gauss", folder)
    proto = onnx.load(folder / "decoder.onnx")
    convert_model_to_external_data(proto, all_tensors_to_one_file=True, location="decoder.data", size_threshold=1024)
    onnx.save(proto, folder / "decoder.onnx")
    with pytest.raises(ModelFileError, match=r"decoder\.onnx: keeps tensors in external data files"):
        runtime.load(folder, backend="openvino")
    assert runtime.load(folder, providers="cpu").generate(1, seed=0).shape == (1, SIZE, SIZE, 3)

    proto = onnx.load(toys / "gauss" / "decoder.onnx")
    proto.graph.node[-1].output[0] = "picture"
    proto.graph.output[0].name = "picture"
    onnx.save(proto, folder / "decoder.onnx")
    with pytest.raises(ModelFileError, match=r"graph outputs \['picture'\] do not match"):
        runtime.load(folder, backend="openvino")


@needs_openvino
def test_generate_cli_with_openvino(toys, tmp_path):
    ov_out, ort_out = tmp_path / "ov.npy", tmp_path / "ort.npy"
    assert generate.main([str(toys / "gauss"), "--out", str(ov_out), "--n", "3", "--backend", "openvino"]) == 0
    assert generate.main([str(toys / "gauss"), "--out", str(ort_out), "--n", "3", "--provider", "cpu"]) == 0
    assert np.abs(np.load(ov_out).astype(int) - np.load(ort_out).astype(int)).max() <= 1


@needs_openvino
def test_server_with_openvino(toys):
    from fastapi.testclient import TestClient

    from runtime.server.app import create_app

    with TestClient(create_app(toys, Settings(backend="openvino"))) as client:
        for _ in range(200):
            if client.get("/readyz").status_code == 200:
                break
            time.sleep(0.05)
        listing = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
        assert listing["gauss"]["backend"] == "openvino" and listing["gauss"]["provider"] == "openvino:CPU"
        assert all(p["backend"] == "openvino" for p in listing["gauss"]["parts"])  # the warm-up opened both
        r = client.post("/v1/models/gauss/generate", json={"n": 2, "seed": 4, "format": "npy"})
        assert r.status_code == 200, r.text
        import io

        images = np.load(io.BytesIO(r.content))
    want = runtime.load(toys / "gauss", providers="cpu").generate(2, seed=4)
    assert np.abs(images.astype(int) - want.astype(int)).max() <= 1


def test_backend_list_names_the_default_first():
    assert backends.BACKENDS[0] == backends.DEFAULT_BACKEND == "onnxruntime"


@needs_openvino
def test_openvino_gets_only_bytes_that_passed_the_checks(toys, tmp_path, monkeypatch):
    """A file the scan refuses (metadata out of bounds, external data outside the model's folder)
    never reaches OpenVINO."""
    import onnx

    from runtime.backends import openvino as backend

    monkeypatch.setattr(backend, "open_runner", lambda *a, **k: pytest.fail("OpenVINO saw a refused file"))
    folder = tmp_path / "gauss"
    shutil.copytree(toys / "gauss", folder)
    proto = onnx.load(folder / "decoder.onnx")
    for entry in proto.metadata_props:
        if entry.key == "age.outputs":
            entry.value = '[{"name": "image", "shape": ["batch", 3, 1000000, 1000000], "kind": "image"}]'
    onnx.save(proto, folder / "decoder.onnx")
    with pytest.raises(ModelFileError, match="values per sample"):
        runtime.load(folder, backend="openvino")

    proto = onnx.load(toys / "gauss" / "decoder.onnx")
    weight = proto.graph.initializer[0]
    weight.data_location = onnx.TensorProto.EXTERNAL
    weight.ClearField("raw_data")
    weight.external_data.add(key="location", value="/etc/passwd")
    onnx.save(proto, folder / "decoder.onnx")
    with pytest.raises(ModelFileError, match="absolute path '/etc/passwd'"):
        runtime.load(folder, backend="openvino")


@needs_openvino
def test_openvino_reports_the_declared_name_of_a_tensor_with_several(tmp_path):
    """OpenVINO fuses ``Reshape(z) -> Reshape`` and then names the graph input after the reshapes too
    (as the export's single_pixel_transpose leaves a latent): the runtime must still find ``z``."""
    from onnx import TensorProto, helper, numpy_helper

    from tests.runtime.test_model_kinds import FLAT, _model, _save

    rng = np.random.default_rng(3)
    pixels = 3 * SIZE * SIZE
    dec = _model(
        [helper.make_node("Reshape", ["z", "as_image"], ["view"]), helper.make_node("Reshape", ["view", "flat"], ["view_flat"]),
         helper.make_node("MatMul", ["view_flat", "w"], ["h"]), helper.make_node("Reshape", ["h", "shape"], ["r"]),
         helper.make_node("Sigmoid", ["r"], ["image"])],
        "decoder",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", FLAT])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [numpy_helper.from_array(rng.normal(0, 1.0, (FLAT, pixels)).astype(np.float32), "w"),
         numpy_helper.from_array(np.array([0, FLAT, 1, 1], np.int64), "as_image"),
         numpy_helper.from_array(np.array([0, FLAT], np.int64), "flat"),
         numpy_helper.from_array(np.array([-1, 3, SIZE, SIZE], np.int64), "shape")],
    )
    _save(dec, tmp_path / "m", "decoder", [{"name": "z", "shape": ["batch", FLAT], "kind": "vector"}],
          [{"name": "image", "shape": ["batch", 3, SIZE, SIZE], "kind": "image"}], None, "toyflat",
          {"model": "toyflat", "latent_dim": FLAT})
    ort_session, ov_session = _both(tmp_path / "m")
    z = ort_session.sample_latents(3, seed=1)
    np.testing.assert_allclose(ov_session.decode(z), ort_session.decode(z), atol=TOL, rtol=0)
