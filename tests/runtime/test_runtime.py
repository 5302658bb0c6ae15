"""The ONNX runtime: parity with torch, determinism, the CLI, and clear errors on bad input.

One tiny conv_vae is built (untrained: parity needs no training) and exported once per module;
everything else reuses that export. Subprocesses check what only a fresh interpreter can show:
no torch/TensorFlow import, and a quiet stderr.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import runtime
from runtime import generate as cli
from core import images as core_images
from core import noise as spec_noise
from core.errors import ConfigError, DataError, ModelFileError

REPO = Path(__file__).resolve().parents[2]
TOL = 1e-4
LATENT_DIM, SIZE = 16, 32  # conv_vae "tiny" preset
#: What onnxruntime prints when a provider fails to load, and Python's crash output.
ORT_SPAM = ("[E:onnxruntime", "[W:onnxruntime", "Failed to load library", "cannot open shared object", "EP Error", "Traceback")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    """ckpt + exported conv_vae directory (decoder.onnx, encoder.onnx)."""
    import torch

    import torch_impl
    from export.pipeline import export_checkpoint

    root = tmp_path_factory.mktemp("rt")
    torch.manual_seed(0)
    model = torch_impl.build("conv_vae", preset="tiny")
    # Untrained sigmoid outputs huddle around 0.5; widen them so uint8 comparisons mean something.
    last_conv = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last_conv.weight.mul_(64.0)
    ckpt = torch_impl.save_model(model, root / "ckpt.safetensors", step=7)
    out = root / "export"
    export_checkpoint(ckpt, out, via="torch")
    assert (out / "decoder.onnx").is_file() and (out / "encoder.onnx").is_file()
    decoder_only = root / "decoder_only"
    decoder_only.mkdir()
    shutil.copy(out / "decoder.onnx", decoder_only / "decoder.onnx")
    return {"root": root, "ckpt": Path(ckpt), "dir": out, "decoder_only": decoder_only}


@pytest.fixture(scope="module")
def session(exported) -> runtime.GeneratorSession:
    return runtime.load(exported["dir"])


@pytest.fixture(scope="module")
def torch_model(exported):
    import torch_impl

    return torch_impl.load_model(exported["ckpt"])


@pytest.fixture(scope="module")
def photo(exported) -> Path:
    """A non-square RGB image (exercises resize + centre crop)."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:48, 0:40]
    pixels = np.stack([xx * 6, yy * 5, (xx + yy) * 3], -1) + rng.integers(0, 40, (48, 40, 3))
    path = exported["root"] / "photo.png"
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
    return path


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "AGE_RUNTIME_PROVIDER"}
    full_env["PYTHONPATH"] = str(REPO)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "runtime.generate", *map(str, args)],
        cwd=REPO, env=full_env, capture_output=True, text=True, timeout=120,
    )


def provider_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "provider" in line.lower()]


def assert_quiet(stderr: str) -> None:
    for needle in ORT_SPAM:
        assert needle not in stderr, f"stderr has {needle!r}:\n{stderr}"
    assert len(provider_lines(stderr)) <= 1, stderr


# --------------------------------------------------------------------------- isolation


def test_runtime_imports_no_framework(exported):
    """A serving host has no torch/TensorFlow: block them outright, then also check sys.modules."""
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'tensorflow', 'keras', 'torch_impl', 'keras_impl', 'export'):
            raise ImportError('runtime must not import ' + name)
sys.meta_path.insert(0, Block())
import runtime
s = runtime.load({str(exported['dir'])!r})
images = s.generate(3, seed=0)
assert images.shape == (3, {SIZE}, {SIZE}, 3) and images.dtype.name == 'uint8'
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow', 'keras'))
assert not heavy, heavy
print('ok')
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


# --------------------------------------------------------------------------- parity and determinism


def test_properties(session, exported):
    assert session.model == "conv_vae" and session.part == "decoder"
    assert session.latent_dim == LATENT_DIM
    assert session.image_shape == (SIZE, SIZE, 3) and session.output_shape == (3, SIZE, SIZE)
    assert session.value_range == (0.0, 1.0)
    assert session.has_encoder and not session.is_video and session.frames is None
    assert session.provider in ("CPUExecutionProvider", "CUDAExecutionProvider")
    assert session.metadata["age.model"] == "conv_vae" and session.metadata["age.step"] == "7"
    assert session.config["latent_dim"] == LATENT_DIM
    assert session.path == exported["dir"] / "decoder.onnx"
    assert session.encoder_path == exported["dir"] / "encoder.onnx"


def test_generate_matches_torch(session, torch_model):
    from torch_impl.parts import run_part

    n, seed = 6, 3
    z = spec_noise.latents(n, LATENT_DIM, seed)
    want = run_part(torch_model, "decoder", z)[0]
    got = session.decode(z)
    assert got.dtype == np.float32 and got.shape == (n, 3, SIZE, SIZE)
    assert float(np.max(np.abs(got - want))) <= TOL
    assert float(want.max() - want.min()) > 0.5, "fixture outputs should span the range"
    images = session.generate(n, seed=seed)
    assert images.dtype == np.uint8 and images.shape == (n, SIZE, SIZE, 3)
    diff = np.abs(images.astype(np.int16) - core_images.to_uint8(want).astype(np.int16))
    assert int(diff.max()) <= 1


def test_seeds_latents_and_batching(session):
    a = session.generate(5, seed=11)
    assert np.array_equal(a, session.generate(5, seed=11))
    assert not np.array_equal(a, session.generate(5, seed=12))
    z = spec_noise.latents(5, LATENT_DIM, 11)
    assert np.array_equal(a, session.generate(latents=z))
    assert np.array_equal(a, session.generate(5, latents=z))
    # chunking must not change anything (BatchNorm runs in eval mode)
    z7 = spec_noise.latents(7, LATENT_DIM, 4)
    one = session.decode(z7)
    for bs in (1, 3, 7, 100):
        assert np.allclose(session.decode(z7, batch_size=bs), one, atol=1e-6, rtol=0)
    assert np.array_equal(session.generate(7, seed=4, batch_size=3), session.generate(7, seed=4))
    assert session.generate(0, seed=0).shape == (0, SIZE, SIZE, 3)


def test_variations_match_torch(session, torch_model, photo):
    from torch_impl.parts import run_part

    n, scale, seed = 10, 0.05, 5
    images = session.variations(photo, n=n, scale=scale, seed=seed)
    assert images.shape == (n, SIZE, SIZE, 3) and images.dtype == np.uint8
    assert np.array_equal(images, session.variations(photo, n=n, scale=scale, seed=seed))
    assert np.array_equal(images, session.variations(photo.read_bytes(), n=n, scale=scale, seed=seed))

    x = core_images.load_image(photo, SIZE)
    assert np.array_equal(images, session.variations(x, n=n, scale=scale, seed=seed))
    mu, logvar = run_part(torch_model, "encoder", x[None])
    z_torch = spec_noise.variation_latents(mu[0], logvar[0], n, scale, seed)
    z_rt = session.variation_latents(photo, n=n, scale=scale, seed=seed)
    assert float(np.max(np.abs(z_rt - z_torch))) <= TOL
    want = run_part(torch_model, "decoder", z_torch)[0]
    assert float(np.max(np.abs(session.decode(z_rt) - want))) <= TOL
    diff = np.abs(images.astype(np.int16) - core_images.to_uint8(want).astype(np.int16))
    assert int(diff.max()) <= 1


# --------------------------------------------------------------------------- CLI


def grid_size(n: int, nrow: int | None = None, size: int = SIZE, pad: int = 2) -> tuple[int, int]:
    ncol = nrow or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / ncol))
    return ncol * (size + pad) + pad, rows * (size + pad) + pad  # PIL's (width, height)


def test_cli_grid_and_variations(exported, photo, tmp_path):
    out = tmp_path / "grid.png"
    proc = run_cli(exported["dir"] / "decoder.onnx", "--n", 6, "--seed", 0, "--nrow", 3, "--batch-size", 4, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    assert_quiet(proc.stderr)
    assert len(provider_lines(proc.stderr)) == 1 and proc.stderr.count("\n") == 1, proc.stderr
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == grid_size(6, 3)
        grid = np.asarray(im.convert("RGB"))
    # the grid is exactly the API's images, tiled
    expected = core_images.make_grid(runtime.load(exported["dir"]).generate(6, seed=0), 3)
    assert np.array_equal(grid, expected)

    var = tmp_path / "var.png"
    proc = run_cli(exported["dir"], "--variations", photo, "--scale", 0.02, "--out", var)
    assert proc.returncode == 0, proc.stderr
    assert_quiet(proc.stderr)
    with Image.open(var) as im:
        assert im.size == grid_size(10)


def test_export_facts_read_back_and_old_files_without_them_load(session, exported, photo, tmp_path):
    """conv_vae's export says prior normal, a gaussian encoder, reconstructs; a copy with those keys
    stripped (an export from before them) loads as the same kind of model and gives the same images."""
    import onnx

    meta = session.metadata
    assert (meta["age.prior"], meta["age.encoder_kind"], meta["age.reconstructs"]) == ("normal", "gaussian", "true")
    assert (session.prior, session.encoder_kind, session.latent_shape) == ("normal", "gaussian", (LATENT_DIM,))
    assert session.can_generate and session.can_vary and session.can_reconstruct
    old = tmp_path / "old"
    old.mkdir()
    for name in ("decoder.onnx", "encoder.onnx"):
        proto = onnx.load(exported["dir"] / name)
        kept = [p for p in proto.metadata_props if p.key not in ("age.prior", "age.encoder_kind", "age.reconstructs")]
        assert len(kept) == len(proto.metadata_props) - 3
        del proto.metadata_props[:]
        proto.metadata_props.extend(kept)
        onnx.save(proto, old / name)
    legacy = runtime.load(old)
    assert "age.prior" not in legacy.metadata
    assert (legacy.prior, legacy.encoder_kind) == ("normal", "gaussian")
    np.testing.assert_array_equal(legacy.generate(3, seed=2), session.generate(3, seed=2))
    np.testing.assert_array_equal(legacy.reconstruct_image(photo), session.reconstruct_image(photo))


def test_reconstruct_matches_torch_and_the_server_answers_a_png(session, torch_model, exported, photo, tmp_path):
    from runtime.server import Settings, create_app
    from tests.runtime.live import serve
    from torch_impl.parts import run_part

    x = session.load_image(photo)[None]
    mu, _ = run_part(torch_model, "encoder", x)
    want = core_images.to_uint8(run_part(torch_model, "decoder", mu)[0])
    got = session.reconstruct(x)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1  # float noise may flip a rounding
    np.testing.assert_array_equal(session.reconstruct_image(photo), got[0])

    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copytree(exported["dir"], repo / "faces")
    with serve(create_app(repo, Settings(provider="cpu"))) as client:
        with open(photo, "rb") as fh:
            r = client.post("/v1/models/faces/reconstruct", files={"image": ("photo.png", fh.read(), "image/png")})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
    with Image.open(io.BytesIO(r.content)) as im:
        assert im.format == "PNG" and im.size == (SIZE, SIZE)
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), got[0])

    out = tmp_path / "rec.png"
    proc = run_cli(exported["dir"], "--reconstruct", photo, photo, "--out", out)
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as im:
        assert im.size == grid_size(2)
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), core_images.make_grid(np.concatenate([got, got])))


def test_cli_gif_from_image_generator_is_refused_and_npy_works(exported, tmp_path, caplog):
    gif, npy = tmp_path / "g.gif", tmp_path / "g.npy"
    assert cli.main([str(exported["dir"]), "--n", "4", "--out", str(gif)]) == 2
    assert "generates still images, not videos" in caplog.text
    assert not gif.exists()
    assert cli.main([str(exported["dir"]), "--n", "3", "--seed", "9", "--out", str(npy)]) == 0
    arr = np.load(npy)
    assert arr.dtype == np.uint8 and np.array_equal(arr, runtime.load(exported["dir"]).generate(3, seed=9))


def test_cli_provider_env(exported, tmp_path):
    out = tmp_path / "cpu.png"
    proc = run_cli(exported["dir"], "--n", 2, "--out", out, env={"AGE_RUNTIME_PROVIDER": "cpu"})
    assert proc.returncode == 0, proc.stderr
    assert provider_lines(proc.stderr) == ["runtime: using CPUExecutionProvider (forced by AGE_RUNTIME_PROVIDER)"]

    out = tmp_path / "cuda.png"
    proc = run_cli(exported["dir"], "--n", 2, "--out", out, env={"AGE_RUNTIME_PROVIDER": "cuda"})
    assert_quiet(proc.stderr)
    if proc.returncode == 0:  # a machine where CUDA really works
        assert "using CUDAExecutionProvider" in proc.stderr and out.is_file()
    else:
        assert proc.returncode == 2 and not out.exists()
        assert "CUDA" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr

    proc = run_cli(exported["dir"], "--out", out, env={"AGE_RUNTIME_PROVIDER": "tpu"})
    assert proc.returncode == 2 and "AGE_RUNTIME_PROVIDER" in proc.stderr and not out.exists()


def test_spin_env_sets_the_session_option_and_rejects_other_values(monkeypatch, session, exported):
    from runtime import providers

    monkeypatch.setenv(providers.SPIN_ENV_VAR, "0")
    options = providers.session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    quiet = runtime.load(exported["dir"], providers="cpu")  # loads and gives the same images
    np.testing.assert_array_equal(quiet.generate(3, seed=5), session.generate(3, seed=5))
    monkeypatch.setenv(providers.SPIN_ENV_VAR, "yes")
    with pytest.raises(ConfigError, match="AGE_RUNTIME_SPIN"):
        providers.session_options()


def test_cuda_probe_is_quiet(exported):
    """Force the real [CUDA, CPU] session attempt even without a driver: stderr must stay clean."""
    code = f"""
import logging, sys
logging.basicConfig(level=logging.INFO, format='%(name)s: %(message)s')
import runtime.providers as p
p._driver_present = lambda: (True, 'pretend')
import runtime
s = runtime.load({str(exported['dir'])!r})
s.generate(2, seed=0)
print(s.provider)
"""
    env = {k: v for k, v in os.environ.items() if k != "AGE_RUNTIME_PROVIDER"}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert_quiet(proc.stderr)
    lines = provider_lines(proc.stderr)
    assert len(lines) == 1 and proc.stdout.strip() in lines[0], proc.stderr


# --------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def bad_models(exported) -> dict[str, Path]:
    import onnx
    from onnx import TensorProto, helper

    root = exported["root"] / "bad"
    root.mkdir()
    garbage = root / "garbage" / "decoder.onnx"
    garbage.parent.mkdir()
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))

    plain = root / "plain.onnx"
    graph = helper.make_graph(
        [helper.make_node("Identity", ["z"], ["image"])],
        "plain",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", LATENT_DIM])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", LATENT_DIM])],
    )
    # ir_version pinned: onnx may be newer than what this onnxruntime reads
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9), plain)

    renamed = root / "renamed" / "decoder.onnx"
    renamed.parent.mkdir()
    proto = onnx.load(exported["dir"] / "decoder.onnx")
    for node in proto.graph.node:
        node.input[:] = ["x" if name == "z" else name for name in node.input]
    proto.graph.input[0].name = "x"
    onnx.save(proto, renamed)

    mismatched = root / "mismatched"
    mismatched.mkdir()
    shutil.copy(exported["dir"] / "decoder.onnx", mismatched / "decoder.onnx")
    enc = onnx.load(exported["dir"] / "encoder.onnx")
    for prop in enc.metadata_props:
        if prop.key == "age.step":
            prop.value = "8"
    onnx.save(enc, mismatched / "encoder.onnx")

    corrupt_image = root / "corrupt.png"
    corrupt_image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    empty = root / "empty"
    empty.mkdir()
    return {
        "garbage": garbage, "plain": plain, "renamed": renamed, "mismatched": mismatched,
        "corrupt_image": corrupt_image, "empty": empty,
    }


@pytest.mark.parametrize(
    "case, needle",
    [
        ("missing", "no such file"),
        ("garbage", "not a loadable ONNX model"),
        ("plain", "not an A.G.E. model"),
        ("renamed", "graph inputs ['x'] do not match"),
        ("mismatched", "not from one checkpoint"),
        ("empty", "no generator part"),
        ("encoder", "is not a generator"),
    ],
)
def test_bad_model_files(case, needle, exported, bad_models, tmp_path):
    path = {
        "missing": exported["root"] / "nope" / "decoder.onnx",
        "encoder": exported["dir"] / "encoder.onnx",
    }.get(case) or bad_models[case]
    with pytest.raises(ModelFileError) as info:
        runtime.load(path)
    message = str(info.value)
    assert needle in message and path.name in message and "\n" not in message, message

    out = tmp_path / "never.png"
    assert cli.main([str(path), "--n", "2", "--out", str(out)]) == 2
    assert not out.exists()


def test_cli_errors_are_one_line(bad_models, tmp_path):
    out = tmp_path / "never.png"
    proc = run_cli(bad_models["garbage"], "--out", out)
    assert proc.returncode == 2 and not out.exists()
    assert_quiet(proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "decoder.onnx" in lines[0] and lines[0].startswith("runtime.generate: error:"), proc.stderr


def test_bad_variations(session, exported, bad_models, photo, tmp_path):
    with pytest.raises(DataError, match="corrupt.png"):
        session.variations(bad_models["corrupt_image"])
    with pytest.raises(DataError, match="no such file"):
        session.variations(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="expected float"):
        session.variations(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="scale"):
        session.variations(photo, scale=-1.0)

    decoder_only = runtime.load(exported["decoder_only"])
    assert not decoder_only.has_encoder
    with pytest.raises(ModelFileError, match="encoder.onnx"):
        decoder_only.variations(photo)

    out = tmp_path / "never.png"
    assert cli.main([str(exported["dir"]), "--variations", str(bad_models["corrupt_image"]), "--out", str(out)]) == 2
    assert cli.main([str(exported["decoder_only"]), "--variations", str(photo), "--out", str(out)]) == 2
    assert not out.exists()


def test_bad_latents_and_arguments(session, exported, tmp_path):
    for bad in (np.zeros((4, 3)), np.zeros(LATENT_DIM), np.zeros((2, LATENT_DIM, 1))):
        with pytest.raises(ValueError, match=rf"expected shape \(N, {LATENT_DIM}\)"):
            session.decode(bad)
    with pytest.raises(ValueError, match="NaN"):
        session.decode(np.full((1, LATENT_DIM), np.nan, np.float32))
    with pytest.raises(ValueError, match="batch_size"):
        session.generate(2, batch_size=0)
    with pytest.raises(ValueError, match="n must be"):
        session.generate(-1)
    with pytest.raises(ValueError, match="n=3 but 2 latents"):
        session.generate(3, latents=np.zeros((2, LATENT_DIM), np.float32))

    out = tmp_path / "never"
    for argv in (
        ["--out", str(out) + ".jpg"],
        ["--out", str(out) + ".png", "--n", "0"],
        ["--out", str(out) + ".png", "--batch-size", "0"],
        ["--out", str(out) + ".png", "--nrow", "0"],
    ):
        assert cli.main([str(exported["dir"]), *argv]) == 2, argv
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- other part kinds


def toy_part(path: Path, part: str, out_shape: tuple[int, ...], kind: str, op: str, value_range) -> Path:
    """A synthetic exported part (z -> op(reshape(z))) with full age.* metadata, no training needed."""
    import onnx
    from onnx import TensorProto, helper

    dim = int(np.prod(out_shape))
    graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["shape"], value=helper.make_tensor("s", TensorProto.INT64, [len(out_shape) + 1], [-1, *out_shape])),
            helper.make_node("Reshape", ["z", "shape"], ["r"]),
            helper.make_node(op, ["r"], ["out"]),
        ],
        part,
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", dim])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", *out_shape])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    meta = {
        "model": "toy", "part": part, "config": json.dumps({"model": "toy", "latent_dim": dim}),
        "inputs": json.dumps([{"name": "z", "shape": ["batch", dim], "kind": "vector"}]),
        "outputs": json.dumps([{"name": "out", "shape": ["batch", *out_shape], "kind": kind}]),
        "value_range": json.dumps(value_range), "source_framework": "torch", "exported_via": "torch",
        "step": "0", "format_version": "1",
    }
    for key, value in meta.items():
        proto.metadata_props.add(key="age." + key, value=value)
    path.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, path / f"{part}.onnx")
    return path / f"{part}.onnx"


def test_generator_value_range_and_priority(exported, tmp_path):
    folder = tmp_path / "both"
    toy_part(folder, "generator", (3, 2, 2), "image", "Tanh", [-1.0, 1.0])
    shutil.copy(exported["dir"] / "decoder.onnx", folder / "decoder.onnx")
    s = runtime.load(folder)  # "generator" wins over "decoder"
    assert (s.part, s.model, s.latent_dim, s.value_range) == ("generator", "toy", 12, (-1.0, 1.0))
    assert not s.has_encoder and s.image_shape == (2, 2, 3)
    z = spec_noise.latents(4, 12, 0)
    want = core_images.to_uint8((np.tanh(z).reshape(4, 3, 2, 2) + 1) / 2)
    assert np.abs(s.generate(4, seed=0).astype(int) - want.astype(int)).max() <= 1


def test_video_generator(tmp_path):
    path = toy_part(tmp_path / "video", "video_generator", (2, 3, 2, 4), "video", "Sigmoid", [0.0, 1.0])
    s = runtime.load(path.parent)
    assert s.is_video and s.frames == 2 and s.image_shape == (2, 4, 3) and s.latent_dim == 48
    videos = s.generate(5, seed=1, batch_size=2)
    assert videos.shape == (5, 2, 2, 4, 3) and videos.dtype == np.uint8
    assert s.decode(spec_noise.latents(5, 48, 1)).shape == (5, 2, 3, 2, 4)

    gif, png = tmp_path / "v.gif", tmp_path / "v.png"
    assert cli.main([str(path), "--n", "5", "--out", str(gif)]) == 0
    with Image.open(gif) as im:
        assert im.format == "GIF" and getattr(im, "n_frames", 1) == 2
    assert cli.main([str(path), "--n", "5", "--out", str(png)]) == 2 and not png.exists()
