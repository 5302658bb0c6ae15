"""``precision="auto"`` (runtime.precision): the fastest variant within 40 dB PSNR of fp32, measured at
load; fp32 when no variant qualifies or gains; nothing refused that was not asked for.

Variants are crafted from a toy generator (``onnx.helper``): a faithful one (weights moved by 1e-5)
and a poor one (weights moved by a lot), saved under the names ``export.onnx`` gives its fp16/int8
files. Which is faster is decided by replacing the timer, so the tests do not depend on the machine.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

import runtime
from core.errors import ConfigError
from runtime import generate
from runtime import precision as auto
from runtime.server.settings import Settings

from tests.runtime.test_model_kinds import SIZE, build_flat

pytestmark = pytest.mark.serving


def variant(folder: Path, part: str, precision: str, scale: float, seed: int = 0) -> Path:
    """``<part>.<precision>.onnx``: ``<part>.onnx`` with every float initializer moved by ``scale`` noise."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(folder / f"{part}.onnx")
    rng = np.random.default_rng(seed)
    for i, init in enumerate(proto.graph.initializer):
        array = numpy_helper.to_array(init)
        if array.dtype == np.float32:
            moved = (array + rng.normal(0, scale, array.shape)).astype(np.float32)
            proto.graph.initializer[i].CopyFrom(numpy_helper.from_array(moved, init.name))
    path = folder / f"{part}.{precision}.onnx"
    onnx.save(proto, path)
    return path


@pytest.fixture
def model(tmp_path) -> Path:
    return build_flat(tmp_path / "gauss", None, gaussian_encoder=True)


@pytest.fixture
def timings(monkeypatch):
    """Set ``timings[label] = seconds`` to fake how long a candidate's call takes."""
    table: dict[str, float] = {}
    real = auto._time_call

    def fake(label, call):
        seconds = real(label, call)
        return table.get(label, seconds)

    monkeypatch.setattr(auto, "_time_call", fake)
    return table


def by_label(session) -> dict[str, auto.Measurement]:
    return {m.label: m for m in session.measurements}


def test_psnr():
    ref = np.zeros((2, 3, 4, 4), np.float32)
    assert auto.psnr(ref, ref, (0.0, 1.0)) == math.inf
    assert auto.psnr(ref, ref + 0.01, (0.0, 1.0)) == pytest.approx(40.0)
    assert auto.psnr(ref, ref + 0.01, (-1.0, 1.0)) == pytest.approx(20 * math.log10(200))
    assert auto.psnr(ref, np.full_like(ref, np.nan), None) == -math.inf


def test_auto_keeps_fp32_when_the_only_variant_is_below_the_bound(model, timings):
    variant(model, "decoder", "int8", scale=0.5)
    timings.update({"fp32": 0.010, "int8": 0.001})  # ten times faster, and still not chosen
    session = runtime.load(model, providers="cpu", precision="auto")
    rows = by_label(session)
    assert session.precision == "fp32" and session.path.name == "decoder.onnx"
    assert rows["int8"].psnr_db < auto.MIN_PSNR_DB and not rows["int8"].passes
    fp32 = runtime.load(model, providers="cpu")
    np.testing.assert_array_equal(session.generate(3, seed=1), fp32.generate(3, seed=1))


def test_auto_picks_the_fastest_variant_within_the_bound(model, timings):
    variant(model, "decoder", "int8", scale=1e-5)
    variant(model, "decoder", "fp16", scale=0.5)
    variant(model, "encoder", "int8", scale=1e-5)
    timings.update({"fp32": 0.010, "fp16": 0.001, "int8": 0.005})  # fp16 fastest, but far from fp32
    session = runtime.load(model, providers="cpu", precision="auto")
    rows = by_label(session)
    assert [m.label for m in session.measurements] == ["fp32", "fp16", "int8"]
    assert session.precision == "int8" and session.path.name == "decoder.int8.onnx"
    assert rows["int8"].psnr_db > 60 and rows["int8"].ms == pytest.approx(5.0)
    assert not rows["fp16"].passes
    assert session.encoder_path.name == "encoder.int8.onnx" and not session.parts[1].opened
    assert "int8" in auto.table(session.measurements, rows["int8"]).splitlines()[3]


def test_a_variant_must_gain_to_be_chosen(model, timings):
    variant(model, "decoder", "int8", scale=1e-5)
    timings.update({"fp32": 0.0100, "int8": 0.0098})  # 2 % faster: not worth any error
    assert runtime.load(model, providers="cpu", precision="auto").precision == "fp32"


def test_auto_refuses_nothing_it_was_not_asked(model, tmp_path, caplog):
    # no variants at all: fp32, measured alone
    only = runtime.load(model, providers="cpu", precision="auto")
    assert only.precision == "fp32" and [m.label for m in only.measurements] == ["fp32"]
    assert math.isfinite(only.measurements[0].ms)
    # a broken variant is skipped with a warning naming it; the model still loads
    (model / "decoder.int8.onnx").write_bytes(b"\xff\xff\xff\xff")
    with caplog.at_level(logging.WARNING, logger="runtime"):
        session = runtime.load(model, providers="cpu", precision="auto")
    assert session.precision == "fp32" and not by_label(session)["int8"].usable
    assert "skipping int8 (decoder.int8.onnx)" in caplog.text
    # a single file: nothing beside it to choose from is fine too
    single = tmp_path / "single"
    single.mkdir()
    shutil.copy(model / "decoder.onnx", single / "decoder.onnx")
    assert runtime.load(single / "decoder.onnx", providers="cpu", precision="auto").precision == "fp32"
    # what auto does need, fp32, is still required
    (single / "decoder.onnx").rename(single / "decoder.int8.onnx")
    with pytest.raises(runtime.ModelFileError, match="no generator part in this directory"):
        runtime.load(single, providers="cpu", precision="auto")
    with pytest.raises(ValueError, match="precision must be one of fp32, fp16, int8, auto"):
        runtime.load(model, precision="bf16")


def test_auto_in_the_cli_and_the_server_settings(model, tmp_path):
    variant(model, "decoder", "int8", scale=1e-5)
    out = tmp_path / "grid.npy"
    assert generate.main([str(model), "--out", str(out), "--n", "2", "--precision", "auto", "--provider", "cpu"]) == 0
    assert np.load(out).shape == (2, SIZE, SIZE, 3)
    assert Settings(precision="auto").precision == "auto"
    with pytest.raises(ConfigError, match="--precision must be one of fp32, fp16, int8, auto"):
        Settings(precision="bf16")


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="openvino is not installed")
def test_auto_on_openvino_measures_bf16_where_the_cpu_has_it(model):
    from runtime.backends import openvino as backend

    variant(model, "decoder", "int8", scale=1e-5)
    session = runtime.load(model, backend="openvino", precision="auto")
    labels = [m.label for m in session.measurements]
    assert labels == (["fp32", "bf16", "int8"] if backend.supports_bf16() else ["fp32", "int8"])
    assert session.backend == "openvino" and session.precision in labels
    want = "bf16" if session.precision == "bf16" else "f32"
    assert session.inference_precision == want
    assert str(session.parts[0].session.get_property("INFERENCE_PRECISION_HINT")) in (
        f"<Type: '{'bfloat16' if want == 'bf16' else 'float32'}'>", want)


def test_auto_refuses_a_variant_file_as_its_reference(tmp_path):
    """Auto compares variants with the fp32 file: handed the int8 file itself it would call it fp32."""
    import runtime
    from tests.runtime.test_model_kinds import build_flat

    folder = build_flat(tmp_path / "m", None)
    variant = folder / "decoder.int8.onnx"
    variant.write_bytes((folder / "decoder.onnx").read_bytes())
    with pytest.raises(ValueError, match=r"not decoder\.int8\.onnx \(the int8 variant\)"):
        runtime.load(variant, providers="cpu", precision="auto")
    assert runtime.load(folder / "decoder.onnx", providers="cpu", precision="auto").precision in ("fp32", "int8")
