"""export.onnx: a Keras-written tiny checkpoint exported via torch and via Keras, once each.

Both exports must give valid NCHW ONNX files with a dynamic "batch" axis and our metadata, whose
onnxruntime outputs match torch_impl on the same inputs; bad input must leave no .onnx behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

import export.onnx as cli
import export.pipeline as exporter
from core.checkpoint import load_checkpoint, save_checkpoint
from core.configs import config_from_json
from core.errors import ExportError
from core.registry import get_model_spec, make_config, runtime_facts
from tests.conftest import part_inputs, randomize_batchnorm

TINY = make_config("conv_vae", "tiny")
VIA = ("torch", "keras")
TOL = 1e-4


@pytest.fixture(scope="module")
def keras_ckpt(tmp_path_factory) -> Path:
    """Written by keras_impl.save_model; weights from a seeded torch model with lively BatchNorm."""
    import torch

    import keras_impl
    import torch_impl
    from keras_impl.checkpoint import load_tensors
    from torch_impl.checkpoint import model_tensors

    torch.manual_seed(1)
    tm = randomize_batchnorm(torch_impl.build("conv_vae", config=TINY), seed=1)
    last_conv = [m for m in tm.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last_conv.weight.mul_(16.0)
    km = load_tensors(keras_impl.build("conv_vae", config=TINY), model_tensors(tm))
    return keras_impl.save_model(km, tmp_path_factory.mktemp("ckpt") / "keras.safetensors", step=11)


@pytest.fixture(scope="module")
def exports(keras_ckpt, tmp_path_factory) -> dict[str, Path]:
    out = {}
    for via in VIA:
        out[via] = tmp_path_factory.mktemp(f"via-{via}")
        assert cli.main([str(keras_ckpt), "--out", str(out[via]), "--via", via, "--log-level", "WARNING"]) == 0
    return out


@pytest.fixture(scope="module")
def reference(keras_ckpt):
    import torch_impl

    return torch_impl.load_model(keras_ckpt)


def _session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _meta(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def _dims(value) -> list:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


@pytest.mark.parametrize("via", VIA)
def test_files_exist_and_pass_the_checker(via, exports):
    names = sorted(p.name for p in exports[via].iterdir())
    assert names == ["decoder.onnx", "encoder.onnx"]  # and no temp files
    for name in names:
        onnx.checker.check_model(str(exports[via] / name), full_check=True)


@pytest.mark.parametrize("via", VIA)
def test_metadata(via, exports):
    parts = get_model_spec("conv_vae").parts(TINY)
    for name, part in parts.items():
        model = onnx.load(str(exports[via] / f"{name}.onnx"))
        meta = _meta(model)
        assert meta["age.model"] == "conv_vae" and meta["age.part"] == name
        assert config_from_json(meta["age.config"]) == TINY
        assert meta["age.source_framework"] == "keras" and meta["age.exported_via"] == via
        assert meta["age.step"] == "11" and meta["age.format_version"] == "1"
        assert json.loads(meta["age.value_range"]) == ([0.0, 1.0] if name == "decoder" else None)
        assert [t["name"] for t in json.loads(meta["age.inputs"])] == [t.name for t in part.inputs]
        outputs = json.loads(meta["age.outputs"])
        assert [(t["name"], t["shape"]) for t in outputs] == [(t.name, list(t.shape)) for t in part.outputs]
        assert model.producer_name == "age-toolkit"
        # what the runtime serves by: conv_vae is a Gaussian-encoder VAE with a N(0, I) prior
        assert (meta["age.prior"], meta["age.encoder_kind"], meta["age.reconstructs"]) == ("normal", "gaussian", "true")
        facts = runtime_facts(TINY)
        assert meta["age.prior"] == facts["prior"] and meta["age.encoder_kind"] == facts["encoder_kind"]


@pytest.mark.parametrize("via", VIA)
def test_io_is_nchw_with_a_dynamic_batch_axis(via, exports):
    parts = get_model_spec("conv_vae").parts(TINY)
    for name, part in parts.items():
        graph = onnx.load(str(exports[via] / f"{name}.onnx")).graph
        assert [v.name for v in graph.input] == [t.name for t in part.inputs]
        assert [v.name for v in graph.output] == [t.name for t in part.outputs]
        for value, spec in zip(list(graph.input) + list(graph.output), part.inputs + part.outputs):
            assert _dims(value) == list(spec.shape), (via, name, value.name)
    # the Keras export takes the same NCHW image as torch's, not Keras' NHWC
    enc = onnx.load(str(exports["keras"] / "encoder.onnx")).graph.input[0]
    assert _dims(enc) == ["batch", 3, TINY.image_size, TINY.image_size]


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("via", VIA)
def test_onnxruntime_matches_torch(via, batch, exports, reference):
    from torch_impl.parts import run_part

    for name, part in get_model_spec("conv_vae").parts(TINY).items():
        inputs = part_inputs(part, batch, seed=batch)
        got = _session(exports[via] / f"{name}.onnx").run(None, {t.name: x for t, x in zip(part.inputs, inputs)})
        want = run_part(reference, name, *inputs)
        for spec, g, w in zip(part.outputs, got, want):
            assert g.shape == w.shape == spec.concrete_shape(batch)
            assert float(np.max(np.abs(g - w))) <= TOL, (via, name, spec.name)
        if name == "decoder":
            assert got[0].min() >= 0.0 and got[0].max() <= 1.0 and got[0].std() > 0.05


def test_the_two_exports_agree(exports):
    for name, part in get_model_spec("conv_vae").parts(TINY).items():
        inputs = {t.name: x for t, x in zip(part.inputs, part_inputs(part, 4, seed=9))}
        a = _session(exports["torch"] / f"{name}.onnx").run(None, inputs)
        b = _session(exports["keras"] / f"{name}.onnx").run(None, inputs)
        for x, y in zip(a, b):
            assert float(np.max(np.abs(x - y))) <= TOL


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kind", ["garbage", "missing", "misfit"])
def test_bad_checkpoint_fails_without_files(kind, keras_ckpt, tmp_path, caplog):
    if kind == "garbage":
        ckpt = tmp_path / "garbage.safetensors"
        ckpt.write_bytes(np.random.default_rng(0).bytes(2048))
        fragment = "not a safetensors file"
    elif kind == "missing":
        ckpt = tmp_path / "missing.safetensors"
        fragment = "no such file"
    else:
        tensors = dict(load_checkpoint(keras_ckpt).tensors)
        tensors["fc_mu.bias"] = np.zeros(17, np.float32)
        ckpt = save_checkpoint(tmp_path / "misfit.safetensors", tensors, TINY, "keras")
        fragment = "'fc_mu.bias'"
    out = tmp_path / "out"
    assert cli.main([str(ckpt), "--out", str(out)]) != 0
    assert str(ckpt) in caplog.text and fragment in caplog.text
    assert not out.exists() or not list(out.glob("*.onnx"))


def test_unknown_exporter_is_refused(keras_ckpt, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(keras_ckpt), "--out", str(tmp_path / "out"), "--via", "bogus"])
    assert exit_info.value.code == 2
    assert "bogus" in capsys.readouterr().err
    with pytest.raises(ExportError, match="bogus"):
        exporter.export_checkpoint(keras_ckpt, tmp_path / "out", via="bogus")
    assert not (tmp_path / "out").exists()


def test_a_part_over_tolerance_writes_nothing(keras_ckpt, exports, tmp_path, monkeypatch, capsys):
    """All or nothing: the encoder passes, the decoder misses the tolerance, no file lands.

    The export itself is replaced by the fixture's finished files (exporting is slow); the
    framework's reference outputs for the decoder are nudged by 1e-3.
    """
    import export.via_torch as via_torch

    monkeypatch.setattr(via_torch, "export_part",
                        lambda model, part, opset: onnx.load(str(exports["torch"] / f"{part.name}.onnx")))
    real_run = via_torch.run
    monkeypatch.setattr(via_torch, "run", lambda model, part, inputs: [
        o + (1e-3 if part.name == "decoder" else 0.0) for o in real_run(model, part, inputs)])
    out = tmp_path / "out"
    with pytest.raises(ExportError, match=r"\['decoder'\].*nothing written"):
        exporter.export_checkpoint(keras_ckpt, out, via="torch")
    table = capsys.readouterr().out
    assert "encoder" in table and "FAIL" in table
    assert not out.exists() or not list(out.iterdir())
    # with a tolerance that admits the nudge, the same run writes both files
    reports = exporter.export_checkpoint(keras_ckpt, out, via="torch", tolerance=2e-3)
    assert sorted(r.path.name for r in reports) == ["decoder.onnx", "encoder.onnx"]
    assert all(r.passed and r.path.is_file() for r in reports)
