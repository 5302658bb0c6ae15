"""export.onnx --fp16 / --int8 / --triton on a tiny conv_vae: files written, measured and loadable.

The Triton configs are parsed with Triton's own ModelConfig schema (shipped in tritonclient), so a
malformed config.pbtxt cannot pass.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from google.protobuf import text_format

import export.onnx as cli
import export.pipeline as exporter
import runtime
from export.variants import psnr
from core.errors import ExportError
from core.registry import get_model_spec, make_config

TINY = make_config("conv_vae", "tiny")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import torch

    import torch_impl

    torch.manual_seed(3)
    return torch_impl.save_model(torch_impl.build("conv_vae", config=TINY),
                                 tmp_path_factory.mktemp("ckpt") / "ckpt.safetensors", step=5)


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    out, repo = tmp_path_factory.mktemp("onnx"), tmp_path_factory.mktemp("triton")
    reports = exporter.export_checkpoint(checkpoint, out, "torch", variants=("fp16", "int8"), triton=repo,
                                         triton_name="digits-vae", triton_max_batch=32, triton_delay_us=2500)
    return out, repo, reports


def test_variants_are_written_with_metadata_and_float32_io(exported, capsys):
    out, _, _ = exported
    for part in ("encoder", "decoder"):
        fp32 = onnx.load(out / f"{part}.onnx")
        for kind in ("fp16", "int8"):
            model = onnx.load(out / f"{part}.{kind}.onnx")
            meta = {p.key: p.value for p in model.metadata_props}
            assert meta["age.precision"] == kind and meta["age.part"] == part
            io = [*model.graph.input, *model.graph.output]
            assert all(v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for v in io)
            initializers = {i.data_type for i in model.graph.initializer}
            want = onnx.TensorProto.FLOAT16 if kind == "fp16" else onnx.TensorProto.INT8
            assert want in initializers, (part, kind, initializers)
            assert [i.name for i in model.graph.input] == [i.name for i in fp32.graph.input]


def test_variant_table_reports_psnr(checkpoint, tmp_path, capsys):
    cli.main([str(checkpoint), "--out", str(tmp_path), "--fp16", "--log-level", "WARNING"])
    table = capsys.readouterr().out
    rows = [line.split() for line in table.splitlines() if line.startswith(("encoder", "decoder")) and "fp16" in line]
    assert len(rows) == 2
    for row in rows:
        assert float(row[2]) > 50.0, row  # PSNR dB of fp16 vs fp32


def test_fp16_and_int8_generators_run_in_the_runtime_close_to_fp32(exported):
    out, _, _ = exported
    z = np.random.default_rng(0).standard_normal((8, TINY.latent_dim), dtype=np.float32)
    ref = runtime.load(out / "decoder.onnx").decode(z)
    fp16 = runtime.load(out / "decoder.fp16.onnx").decode(z)
    int8 = runtime.load(out / "decoder.int8.onnx").decode(z)
    assert psnr(ref, fp16, (0.0, 1.0)) > 50.0
    assert psnr(ref, int8, (0.0, 1.0)) > 20.0
    assert not np.array_equal(ref, int8)  # it really is a different (quantized) graph


def test_psnr_formula():
    a = np.zeros((2, 3), np.float32)
    assert psnr(a, a, (0.0, 1.0)) == float("inf")
    assert psnr(a, a + 0.1, (0.0, 1.0)) == pytest.approx(20.0)
    assert psnr(a, a + 0.1, (0.0, 2.0)) == pytest.approx(20.0 + 20.0 * np.log10(2.0))


def test_triton_repository_parses_with_tritons_schema(exported):
    from tritonclient.grpc import model_config_pb2 as mc

    out, repo, _ = exported
    parts = get_model_spec("conv_vae").parts(TINY)
    configs = sorted(repo.glob("*/config.pbtxt"))
    assert [c.parent.name for c in configs] == ["digits-vae_decoder", "digits-vae_encoder"]
    for path in configs:
        config = text_format.Parse(path.read_text(), mc.ModelConfig())  # raises on any malformed field
        part = parts[path.parent.name.split("_", 1)[1]]
        assert config.name == path.parent.name
        assert config.platform == "onnxruntime_onnx" and config.max_batch_size == 32
        assert config.dynamic_batching.max_queue_delay_microseconds == 2500
        for declared, spec in ((config.input, part.inputs), (config.output, part.outputs)):
            assert [t.name for t in declared] == [t.name for t in spec]
            assert [list(t.dims) for t in declared] == [list(t.shape[1:]) for t in spec]
            assert all(t.data_type == mc.TYPE_FP32 for t in declared)
        assert config.parameters["age.part"].string_value == part.name
        model = onnx.load(path.parent / "1" / "model.onnx")
        assert [i.name for i in model.graph.input] == [t.name for t in part.inputs]
        assert_same_outputs(model, onnx.load(out / f"{part.name}.onnx"), part)


def assert_same_outputs(a, b, part):
    from export.validation import cpu_session, random_inputs

    feeds = {t.name: x for t, x in zip(part.inputs, random_inputs(part, batch=2))}
    for x, y in zip(cpu_session(a.SerializeToString()).run(None, feeds), cpu_session(b.SerializeToString()).run(None, feeds)):
        np.testing.assert_allclose(x, y, atol=1e-5, rtol=0)


def test_gpu_files_are_optimised_without_cpu_only_ops(exported):
    """The fp32 file takes every rewrite (Col2Im among them, CPU-only in onnxruntime); the fp16
    variant and the Triton model, meant for GPUs, are made from the graph without those."""
    out, repo, _ = exported
    ops = lambda path: {n.op_type for n in onnx.load(path).graph.node}  # noqa: E731
    assert "Col2Im" in ops(out / "decoder.onnx")
    assert "Col2Im" not in ops(out / "decoder.fp16.onnx")
    assert "Col2Im" not in ops(repo / "digits-vae_decoder" / "1" / "model.onnx")
    assert "Col2Im" in ops(out / "decoder.int8.onnx")  # int8 is for CPUs: made from the fp32 file
    target = lambda path: {p.key: p.value for p in onnx.load(path).metadata_props}.get("age.optimized_for")  # noqa: E731
    assert target(out / "decoder.onnx") == "onnxruntime-cpu"
    assert target(out / "decoder.fp16.onnx") == "onnxruntime"  # the phase form stays, without Col2Im


def test_the_runtime_says_when_a_file_was_tuned_for_another_backend(exported, caplog):
    """Opening an onnxruntime-tuned file on OpenVINO logs why it may be slow and what to do."""
    pytest.importorskip("openvino")
    out, _, _ = exported
    with caplog.at_level("WARNING", logger="runtime"):
        runtime.load(out / "decoder.onnx", backend="openvino").generate(1)
    assert any("--no-optimize" in r.getMessage() and "decoder.onnx" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="runtime"):
        runtime.load(out / "decoder.onnx").generate(1)  # onnxruntime on the CPU: what it was tuned for
    assert not [r for r in caplog.records if "rewritten" in r.getMessage()]


def test_a_malformed_config_is_caught_by_the_schema(exported):
    from tritonclient.grpc import model_config_pb2 as mc

    _, repo, _ = exported
    text = (repo / "digits-vae_decoder" / "config.pbtxt").read_text()
    with pytest.raises(text_format.ParseError):
        text_format.Parse(text.replace("TYPE_FP32", "TYPE_FLOAT32", 1), mc.ModelConfig())


def test_bad_triton_name_is_refused_before_writing(checkpoint, tmp_path):
    with pytest.raises(ExportError, match="triton-name"):
        exporter.export_checkpoint(checkpoint, tmp_path / "o", "torch", triton=tmp_path / "repo",
                                   triton_name="bad name/..")
    assert not (tmp_path / "repo").exists() and not (tmp_path / "o").exists()


def test_runtime_loads_a_precision_from_the_directory(exported):
    out, _, _ = exported
    fp16 = runtime.load(out, precision="fp16")
    assert fp16.path.name == "decoder.fp16.onnx" and fp16.encoder_path.name == "encoder.fp16.onnx"
    ref = runtime.load(out).generate(4, seed=1)
    assert np.abs(fp16.generate(4, seed=1).astype(int) - ref.astype(int)).max() <= 2
    with pytest.raises(ValueError, match="precision"):
        runtime.load(out, precision="bf16")


def test_io_binding_path_matches_plain_run(exported):
    """The IO-binding path the CUDA provider takes, exercised on the CPU device."""
    out, _, _ = exported
    session = runtime.load(out / "decoder.onnx", providers="cpu")
    part = session.parts[0]
    z = np.random.default_rng(2).standard_normal((5, TINY.latent_dim), dtype=np.float32)
    plain = part.run({"z": z})[0]
    bound = part.run_bound({"z": z}, device="cpu")
    assert np.array_equal(bound[0].numpy(), plain)
    chained = part.run_bound({"z": bound[0].numpy()[:, 0, 0, :TINY.latent_dim].copy()}, device="cpu")
    assert chained[0].shape() == [5, 3, 32, 32]


def test_runtime_advice_for_a_file_opened_where_it_was_not_tuned_for():
    from runtime.providers import CPU, CUDA
    from runtime.session import graph_target_advice

    assert graph_target_advice(None, "openvino", CPU) is None
    assert "--no-optimize" in graph_target_advice("onnxruntime", "openvino", CPU)
    assert "Col2Im" in graph_target_advice("onnxruntime-cpu", "onnxruntime", CUDA)
    assert graph_target_advice("onnxruntime", "onnxruntime", CUDA) is None
    assert graph_target_advice("onnxruntime-cpu", "onnxruntime", CPU) is None
    assert len(graph_target_advice("x" * 10_000, "openvino", CPU)) < 400  # a crafted value stays short
