"""Crafted checkpoints and configs: every one refused by name before anything is built or written.

Entry points: ``core.checkpoint.load_checkpoint``, ``torch_impl.load_model``, ``keras_impl.load_model``,
``python -m export.onnx`` and the trainers' ``--resume``. Also: OS errors of the export and training
CLIs, and the variations CLIs on every model.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.checkpoint import encode_safetensors, load_checkpoint, read_safetensors, save_checkpoint
from core.configs import MAX_ACTIVATIONS, MAX_PARAMETERS
from core.errors import CheckpointError
from core.registry import make_config

ROOT = Path(__file__).resolve().parents[2]
TINY = make_config("conv_vae", "tiny")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    import torch

    import torch_impl

    torch.manual_seed(0)
    return torch_impl.save_model(torch_impl.build("conv_vae", config=TINY),
                                 tmp_path_factory.mktemp("good") / "tiny.safetensors", step=3)


def _meta_and_tensors(path: Path) -> tuple[dict, dict]:
    return read_safetensors(path)


def _write(path: Path, tensors: dict, meta: dict) -> Path:
    path.write_bytes(encode_safetensors(tensors, meta))
    return path


def _with_config(tiny: Path, tmp: Path, config) -> Path:
    meta, tensors = _meta_and_tensors(tiny)
    meta["config"] = config if isinstance(config, str) else json.dumps({"model": "conv_vae", **config})
    return _write(tmp / "crafted.safetensors", tensors, meta)


# --------------------------------------------------------------------------- class 4: configs

CONFIGS = {
    "latent_1e7": ({"latent_dim": 10**7}, "'latent_dim' = 10000000 exceeds the limit"),
    "latent_1e6": ({"latent_dim": 10**6}, "parameters; the limit is"),
    "image_1e6": ({"image_size": 10**6}, "parameters; the limit is"),
    "image_big_activations": ({"image_size": 4096, "hidden_dims": [4] * 8}, "activation elements per sample"),
    "width_1e6": ({"hidden_dims": [32, 10**6]}, "parameters; the limit is"),
    "two_to_70": ({"latent_dim": 2**70}, "exceeds the limit"),
    "negative_eps": ({"bn_eps": -1.0}, "'bn_eps' must be in (0, 1]"),
    "huge_float_eps": ("__raw__" + '{"model": "conv_vae", "bn_eps": 1e400}', "'bn_eps' must be finite"),
    "nan_eps": ("__raw__" + '{"model": "conv_vae", "bn_eps": NaN}', "not valid JSON"),
    "momentum_2": ({"bn_momentum": 2.0}, "'bn_momentum' must be in [0, 1]"),
    "long_list": ({"hidden_dims": [8] * 100}, "at most 32"),
    "string_size": ({"image_size": "150"}, "must be an integer"),
    "deep": ("__raw__" + "[" * 100000 + "]" * 100000, "nested more than 64 levels deep"),
    "not_json": ("__raw__" + "{model: conv_vae", "not valid JSON"),
    "not_object": ("__raw__" + "[1, 2]", "no 'model' field"),
    "unknown_field": ({"latent": 4}, "unknown field(s) ['latent']"),
}


def _config_file(tiny: Path, tmp: Path, case: str) -> tuple[Path, str]:
    value, fragment = CONFIGS[case]
    if isinstance(value, str):
        value = value.removeprefix("__raw__")
    return _with_config(tiny, tmp, value), fragment


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_crafted_config_is_refused_before_building(case, tiny, tmp_path):
    path, fragment = _config_file(tiny, tmp_path, case)
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert time.perf_counter() - start < 5.0  # a bound on the work, not a benchmark
    assert str(path) in str(err.value) and fragment in str(err.value)


@pytest.mark.parametrize("framework", ["torch", "keras"])
@pytest.mark.parametrize("case", ["latent_1e6", "image_1e6", "deep"])
def test_load_model_refuses_crafted_configs(framework, case, tiny, tmp_path):
    path, fragment = _config_file(tiny, tmp_path, case)
    with pytest.raises(CheckpointError, match="crafted.safetensors") as err:
        importlib.import_module(f"{framework}_impl").load_model(path)
    assert fragment in str(err.value)


@pytest.mark.parametrize("case", ["latent_1e6", "width_1e6", "deep", "negative_eps"])
def test_export_refuses_crafted_configs_and_writes_nothing(case, tiny, tmp_path, caplog):
    from export.onnx import main

    path, fragment = _config_file(tiny, tmp_path, case)
    out = tmp_path / "exported"
    caplog.set_level(logging.ERROR, logger="export.onnx")
    assert main([str(path), "--out", str(out)]) == 1
    assert fragment in caplog.text and str(path) in caplog.text
    assert not out.exists()


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_resume_refuses_a_crafted_snapshot(framework, tiny, tmp_path, caplog):
    """A run directory whose snapshot checkpoint asks for a 40 GB model: --resume refuses it."""
    from core.snapshot import SNAPSHOTS

    run = tmp_path / "run"
    snap = run / SNAPSHOTS / "step_0000003"
    snap.mkdir(parents=True)
    crafted, _ = _config_file(tiny, tmp_path, "latent_1e6")
    os.replace(crafted, snap / "checkpoint.safetensors")
    (snap / "train_state.json").write_text(json.dumps({"step": 3, "epoch": 0, "history": []}))
    caplog.set_level(logging.ERROR, logger="age.train")
    rc = importlib.import_module(f"{framework}_impl.train").main(
        ["--preset", "tiny", "--steps", "5", "--out", str(run), "--resume", "--no-progress"])
    assert rc == 2 and "parameters; the limit is" in caplog.text and "checkpoint.safetensors" in caplog.text


def test_budget_counts_match_the_built_models():
    """parameter_count() is exact (every checkpoint element) for every registered model and test
    variant; activation_count() is within a factor of 3 of the leaf layers' real outputs (torch
    hooks) in a training-mode pass: the VAE forward with the objective's noise where the objective
    draws one (``eps``), otherwise every registry part once. The pass runs a batch of two (a
    BatchNorm over features, dcgan's, refuses one sample in training mode, as torch's does) and
    counts per sample."""
    import torch

    import torch_impl
    from core.objectives.base import StepContext
    from core.registry import MODELS, sample_part
    from tests.conftest import part_inputs
    from torch_impl.checkpoint import model_tensors

    variants = [(name, dict(overrides)) for name, spec in MODELS.items() for overrides in spec.variants.values()]
    variants += [("conv_vae", {"image_size": 37, "hidden_dims": (5, 7)})]
    assert {name for name, _ in variants} == set(MODELS)

    def count(_module, _inputs, out):
        seen.extend(o.numel() for o in (out if isinstance(out, (tuple, list)) else (out,)))

    for name, overrides in variants:
        spec = MODELS[name]
        cfg = make_config(name, "tiny", **overrides)
        model = torch_impl.build(name, cfg)
        assert cfg.parameter_count() == sum(t.size for t in model_tensors(model).values()), (name, overrides)
        objective = spec.objective(cfg, spec.objective.hyperparameters.from_dict(spec.hyperparameters))
        batch = 2
        step_inputs = objective.step_inputs(StepContext(seed=0, step=0, batch=batch, total_steps=1))
        seen = []
        leaves = [m for m in model.modules() if not list(m.children())]
        hooks = [m.register_forward_hook(count) for m in leaves]
        with torch.no_grad():
            model.train()
            x = torch.rand(batch, cfg.in_channels, cfg.image_size, cfg.image_size)
            if spec.data == "video":  # trained on clips: what its generator makes
                x = torch.rand(*spec.parts(cfg)[sample_part(cfg)].outputs[0].concrete_shape(batch))
            if "eps" in step_inputs:  # a VAE's training forward
                model(x, torch.zeros(batch, cfg.latent_dim))
            else:
                for part in spec.parts(cfg).values():
                    getattr(model, part.method)(*[torch.from_numpy(a) for a in part_inputs(part, batch=batch)])
            if hasattr(model, "critique"):  # a GAN's training step also judges real and generated images
                model.critique(x)
                model.critique(model.generate_images(torch.zeros(batch, cfg.latent_dim)))
        for h in hooks:
            h.remove()
        assert 1 / 3 < cfg.activation_count() * batch / sum(seen) < 3, (name, overrides, cfg.activation_count(), sum(seen) / batch)
    assert make_config("vaegan", "seed", tanh_mode="transformer").parameter_count() < MAX_PARAMETERS / 10
    assert make_config("vaegan", "seed", tanh_mode="time").activation_count() < MAX_ACTIVATIONS / 3


# --------------------------------------------------------------------------- class 5: tensors


def _retyped(tiny: Path, tmp: Path, name: str, array: np.ndarray, raw_dtype: str | None = None) -> Path:
    meta, tensors = _meta_and_tensors(tiny)
    tensors = dict(tensors)
    if raw_dtype is None:
        tensors[name] = array
        return _write(tmp / "typed.safetensors", tensors, meta)
    # dtypes our writer refuses to write: build the file by hand (the format is simple)
    tensors[name] = np.zeros(1, np.float32)
    data = encode_safetensors(tensors, meta)
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_len])
    body = bytearray(data[8 + header_len :])
    begin, end = header[name]["data_offsets"]
    payload = array.tobytes()
    body[begin:end] = payload
    shift = len(payload) - (end - begin)
    header[name] = {"dtype": raw_dtype, "shape": list(array.shape), "data_offsets": [begin, begin + len(payload)]}
    for other, info in header.items():
        if other != "__metadata__" and other != name and info["data_offsets"][0] >= end:
            info["data_offsets"] = [o + shift for o in info["data_offsets"]]
    text = json.dumps(header).encode()
    path = tmp / "typed.safetensors"
    path.write_bytes(len(text).to_bytes(8, "little") + text + bytes(body))
    return path


NAME = "fc_mu.bias"  # (16,)


@pytest.mark.parametrize("dtype, raw", [("int8", "I8"), ("bool", "BOOL"), ("float64", "F64"), ("int64", "I64"),
                                        ("uint8", "U8"), ("int32", "I32")])
def test_other_dtypes_are_refused_naming_the_tensor(dtype, raw, tiny, tmp_path):
    path = _retyped(tiny, tmp_path, NAME, np.ones(16, dtype), raw)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert f"tensor {NAME!r} is {raw}" in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("raw", ["F16", "BF16"])
def test_half_precision_is_converted_explicitly(raw, tiny, tmp_path, caplog):
    import torch

    import torch_impl

    values = np.linspace(-2, 2, 16, dtype=np.float32)
    half = (np.asarray(torch.from_numpy(values).to(torch.bfloat16).view(torch.int16)).view(np.uint16)
            if raw == "BF16" else values.astype(np.float16))
    path = _retyped(tiny, tmp_path, NAME, half, raw)
    caplog.set_level(logging.WARNING)
    ckpt = load_checkpoint(path)
    assert ckpt.tensors[NAME].dtype == np.float32
    np.testing.assert_allclose(ckpt.tensors[NAME], values, atol=0.02)
    assert "converted 1 half-precision tensor(s) to float32" in caplog.text
    model = torch_impl.load_model(path)
    np.testing.assert_array_equal(model.fc_mu.bias.detach().numpy(), ckpt.tensors[NAME])


def test_unknown_dtype_is_refused(tiny, tmp_path):
    path = _retyped(tiny, tmp_path, NAME, np.ones(16, np.float32), "F8_E4M3X")
    with pytest.raises(CheckpointError, match="unknown dtype 'F8_E4M3X'"):
        load_checkpoint(path)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused(value, tiny, tmp_path):
    meta, tensors = _meta_and_tensors(tiny)
    tensors = dict(tensors)
    tensors[NAME] = tensors[NAME].copy()
    tensors[NAME][3] = value
    path = tmp_path / "nan.safetensors"
    path.write_bytes(encode_safetensors(tensors, meta))  # the writer itself refuses (save_tensors)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert f"tensor {NAME!r} holds 1 NaN or infinite value(s)" in str(err.value)
    with pytest.raises(CheckpointError, match="refusing to write"):
        save_checkpoint(tmp_path / "out.safetensors", tensors, TINY, "torch")
    assert not (tmp_path / "out.safetensors").exists()


@pytest.mark.parametrize("step, ok", [("0", True), ("12", True), ("-1", False), ("abc", False), ("1.5", False),
                                      (str(2**64), False), ("", False)])
def test_step_must_be_a_non_negative_integer(step, ok, tiny, tmp_path):
    meta, tensors = _meta_and_tensors(tiny)
    path = _write(tmp_path / "step.safetensors", tensors, {**meta, "step": step})
    if ok:
        assert load_checkpoint(path).step == int(step)
    else:
        with pytest.raises(CheckpointError, match=f"step {step!r} is not an integer"):
            load_checkpoint(path)


def _header_edit(tiny: Path, tmp: Path, edit) -> Path:
    data = tiny.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    edit(header)
    text = json.dumps(header).encode()
    path = tmp / "edited.safetensors"
    path.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + n :])
    return path


HEADERS = {
    "overlap": (lambda h: h[NAME].__setitem__("data_offsets", [0, 64]), "overlaps another tensor"),
    "shape_lies": (lambda h: h[NAME].__setitem__("shape", [17]), "declares shape [17]"),
    "negative_dim": (lambda h: h[NAME].__setitem__("shape", [-16]), "invalid shape"),
    "meta_not_strings": (lambda h: h["__metadata__"].__setitem__("step", 3), "must map strings to strings"),
    "extra_key": (lambda h: h[NAME].__setitem__("extra", 1), "malformed header entry"),
    "huge_rank": (lambda h: h[NAME].__setitem__("shape", [1] * 20), "invalid shape"),
}


@pytest.mark.parametrize("case", sorted(HEADERS))
def test_inconsistent_headers_are_refused(case, tiny, tmp_path):
    edit, fragment = HEADERS[case]
    path = _header_edit(tiny, tmp_path, edit)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert fragment in str(err.value) and str(path) in str(err.value)


def test_deeply_nested_header_is_refused(tmp_path):
    text = b'{"a": ' + b"[" * 100000 + b"]" * 100000 + b"}"
    path = tmp_path / "deep.safetensors"
    path.write_bytes(len(text).to_bytes(8, "little") + text)
    with pytest.raises(CheckpointError, match="nested more than 64 levels deep"):
        load_checkpoint(path)


def test_crafted_json_costs_linear_time(tmp_path):
    """An unterminated string of escaped quotes (quadratic for a naive pre-scan) and a deep header:
    both refused at once."""
    for text in (b'{"a": "' + b'\\"' * 300000, b"[" * 300000 + b"]" * 300000):
        path = tmp_path / "slow.safetensors"
        path.write_bytes(len(text).to_bytes(8, "little") + text)
        start = time.perf_counter()
        with pytest.raises(CheckpointError, match="slow.safetensors: header"):
            load_checkpoint(path)
        assert time.perf_counter() - start < 2.0


def test_an_empty_tensor_cannot_claim_a_huge_shape(tiny, tmp_path):
    path = _header_edit(tiny, tmp_path, lambda h: h.__setitem__("empty", {"dtype": "F32", "shape": [0, 2**39, 2**39],
                                                                          "data_offsets": [0, 0]}))
    with pytest.raises(CheckpointError, match="tensor 'empty' has an invalid shape"):
        load_checkpoint(path)


def test_a_negative_batchnorm_variance_is_refused(tiny, tmp_path):
    meta, tensors = _meta_and_tensors(tiny)
    name = next(n for n in sorted(tensors) if n.endswith("running_var"))
    tensors = {**tensors, name: -np.ones_like(tensors[name])}
    path = _write(tmp_path / "var.safetensors", tensors, meta)
    with pytest.raises(CheckpointError, match=f"tensor '{name}' \\(a BatchNorm variance\\) holds negative values"):
        load_checkpoint(path)


# --------------------------------------------------------------------------- class 13: bytes


def test_same_tensors_same_bytes_and_readable_by_the_safetensors_package(tiny, tmp_path):
    from safetensors.numpy import load_file

    ckpt = load_checkpoint(tiny)
    shuffled = dict(reversed(list(ckpt.tensors.items())))
    a = save_checkpoint(tmp_path / "a.safetensors", ckpt.tensors, ckpt.config, "torch", 3)
    b = save_checkpoint(tmp_path / "b.safetensors", shuffled, ckpt.config, "torch", 3)
    assert a.read_bytes() == b.read_bytes()
    loaded = load_file(str(a))
    assert set(loaded) == set(ckpt.tensors)
    for name, array in ckpt.tensors.items():
        np.testing.assert_array_equal(loaded[name], array)


# --------------------------------------------------------------------------- class 15: OS errors


def _full_disk_preexec() -> None:
    """A child whose files cannot grow past 64 KB: writes fail with EFBIG, as on a full disk."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def _cli(module: str, *args: str, full_disk: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", module, *args], env=env, capture_output=True, text=True,
                          timeout=300, preexec_fn=_full_disk_preexec if full_disk else None, cwd=ROOT)


def _one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr[-2000:]


def test_export_os_errors_are_one_line_and_write_nothing(tiny, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    _one_line_error(_cli("export.onnx", str(tiny), "--out", str(a_file)), str(a_file), "not a directory")
    _one_line_error(_cli("export.onnx", str(tiny), "--out", str(a_file / "sub")), str(a_file / "sub"))
    _one_line_error(_cli("export.onnx", str(tmp_path), "--out", str(tmp_path / "x")), "not a file")
    out = tmp_path / "full"
    proc = _cli("export.onnx", str(tiny), "--out", str(out), full_disk=True)
    _one_line_error(proc, "cannot write", str(out))
    assert not out.exists() or [p.name for p in out.iterdir()] == []


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_trainer_os_errors_are_one_line(framework, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    module = f"{framework}_impl.train"
    common = ["--model", "conv_vae", "--preset", "tiny", "--steps", "2", "--batch-size", "4", "--no-progress"]
    _one_line_error(_cli(module, *common, "--out", str(a_file)), str(a_file))
    _one_line_error(_cli(module, *common, "--out", str(a_file / "run")), str(a_file / "run"))
    run = tmp_path / "full"
    proc = _cli(module, *common, "--out", str(run), full_disk=True)
    _one_line_error(proc, "cannot write", str(run))


# --------------------------------------------------------------------------- class 16: variations


@pytest.fixture(scope="module")
def picture(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pic") / "p.png"
    Image.fromarray((np.random.default_rng(0).random((30, 40, 3)) * 255).astype(np.uint8)).save(path)
    return path


@pytest.mark.parametrize("framework", ["torch", "keras"])
@pytest.mark.parametrize("mode, suffix", [("single", "png"), ("transformer", "png"), ("time", "gif"),
                                          ("time", "png")])
def test_variations_work_for_vaegan(framework, mode, suffix, picture, tmp_path):
    import torch_impl

    ckpt = torch_impl.save_model(torch_impl.build("vaegan", preset="tiny", tanh_mode=mode), tmp_path / "v.safetensors")
    out = tmp_path / f"grid.{suffix}"
    main = importlib.import_module(f"{framework}_impl.variations").main
    assert main([str(ckpt), str(picture), "--n", "4", "--nrow", "2", "--out", str(out)]) == 0
    with Image.open(out) as im:
        assert im.format == suffix.upper() and im.size == (2 * 34 + 2, 2 * 34 + 2)
        assert getattr(im, "n_frames", 1) == (4 if suffix == "gif" else 1)


def test_variations_refuse_bad_requests_by_field(tiny, picture, tmp_path, caplog):
    from torch_impl.variations import main

    caplog.set_level(logging.ERROR, logger="age.variations")
    cases = [(["--n", "4", "--nrow", "9"], "nrow must be an integer between 1 and n (4)"),
             (["--n", "0"], "--n must be between 1 and"),
             (["--scale", "nan"], "--scale must be a number between 0 and 100"),
             (["--seed", "-1"], "--seed must be an integer between 0 and"),
             (["--out", str(tmp_path / "grid.gif")], "generates still images, not videos"),
             (["--out", str(tmp_path / "grid.bmp")], "unsupported extension .bmp"),
             (["--out", str(tmp_path)], "is a directory")]
    for extra, fragment in cases:
        caplog.clear()
        argv = [str(tiny), str(picture), *extra]
        if "--out" not in extra:
            argv += ["--out", str(tmp_path / "grid.png")]
        assert main(argv) == 2, extra
        assert fragment in caplog.text, (extra, caplog.text)
    assert not (tmp_path / "grid.png").exists() and not (tmp_path / "grid.gif").exists()
