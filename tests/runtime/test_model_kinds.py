"""Models the runtime knows only through ``age.prior`` / ``age.encoder_kind`` / ``age.reconstructs``.

No such model is registered yet, so the parts are built with ``onnx.helper``:

* ``ae``: a conv autoencoder with a deterministic encoder and a spatial latent,
  ``x (batch, 3, 8, 8) -> Conv stride 2 -> Tanh -> z (batch, 2, 4, 4)`` and
  ``z -> Resize x2 -> Conv -> Sigmoid -> image (batch, 3, 8, 8)``, prior ``none``;
* the same graphs with prior ``sphere``, a flat ``sphere`` generator, and files without the
  new keys (exports from before them), which must still load.

Library, CLI and server are checked against onnxruntime run directly on the same files.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import runtime
from core import images as core_images
from core import noise as spec_noise
from core.errors import ModelFileError
from runtime import generate as cli
from runtime.priors import to_unit_sphere

pytestmark = pytest.mark.serving

SIZE = 8
LATENT = (2, 4, 4)
FLAT = 6
FACTS_AE = {"prior": "none", "encoder_kind": "deterministic", "reconstructs": "true"}


# --------------------------------------------------------------------------- building models


def _save(proto, folder: Path, part: str, inputs: list, outputs: list, facts: dict | None, model: str = "toyae",
          config: dict | None = None) -> Path:
    import onnx

    meta = {
        "model": model, "part": part, "config": json.dumps(config or {"model": model, "image_size": SIZE}),
        "inputs": json.dumps(inputs), "outputs": json.dumps(outputs),
        "value_range": json.dumps([0.0, 1.0] if part != "encoder" else None),
        "source_framework": "torch", "exported_via": "torch", "step": "5", "format_version": "1",
        **(facts or {}),
    }
    for key, value in meta.items():
        proto.metadata_props.add(key="age." + key, value=value)
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, folder / f"{part}.onnx")
    return folder / f"{part}.onnx"


def _model(nodes, name, inputs, outputs, initializers):
    from onnx import helper

    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)


def build_ae(folder: Path, facts: dict | None = FACTS_AE, encoder: bool = True, encoder_facts: dict | None = None) -> Path:
    """The spatial-latent conv autoencoder (deterministic encoder)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    c, h, w = LATENT
    dec = _model(
        [helper.make_node("Resize", ["z", "", "scales"], ["up"], mode="nearest"),
         helper.make_node("Conv", ["up", "k", "kb"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Sigmoid", ["c"], ["image"])],
        "decoder",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", *LATENT])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
         numpy_helper.from_array(rng.normal(0, 1.5, (3, c, 3, 3)).astype(np.float32), "k"),
         numpy_helper.from_array(np.zeros(3, np.float32), "kb")],
    )
    z_info = [{"name": "z", "shape": ["batch", *LATENT], "kind": "vector"}]
    _save(dec, folder, "decoder", z_info, [{"name": "image", "shape": ["batch", 3, SIZE, SIZE], "kind": "image"}], facts)
    if encoder:
        enc = _model(
            [helper.make_node("Conv", ["x", "ek", "ekb"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Tanh", ["c"], ["z"])],
            "encoder",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
            [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", *LATENT])],
            [numpy_helper.from_array(rng.normal(0, 0.8, (c, 3, 3, 3)).astype(np.float32), "ek"),
             numpy_helper.from_array(np.zeros(c, np.float32), "ekb")],
        )
        _save(enc, folder, "encoder", [{"name": "x", "shape": ["batch", 3, SIZE, SIZE], "kind": "image"}], z_info,
              facts if encoder_facts is None else encoder_facts)
    return folder


def build_flat(folder: Path, facts: dict | None, gaussian_encoder: bool = False) -> Path:
    """A flat-latent generator ``z (batch, 6) -> MatMul -> Reshape (3, 8, 8) -> Sigmoid`` (and,
    optionally, a Gaussian encoder ``x -> Flatten -> MatMul -> mu, logvar``)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    pixels = 3 * SIZE * SIZE
    dec = _model(
        [helper.make_node("MatMul", ["z", "w"], ["h"]), helper.make_node("Reshape", ["h", "shape"], ["r"]),
         helper.make_node("Sigmoid", ["r"], ["image"])],
        "decoder",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", FLAT])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [numpy_helper.from_array(rng.normal(0, 2.0, (FLAT, pixels)).astype(np.float32), "w"),
         numpy_helper.from_array(np.array([-1, 3, SIZE, SIZE], np.int64), "shape")],
    )
    z_info = [{"name": "z", "shape": ["batch", FLAT], "kind": "vector"}]
    config = {"model": "toyflat", "latent_dim": FLAT}
    _save(dec, folder, "decoder", z_info, [{"name": "image", "shape": ["batch", 3, SIZE, SIZE], "kind": "image"}],
          facts, "toyflat", config)
    if gaussian_encoder:
        enc = _model(
            [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "wm"], ["mu"]),
             helper.make_node("MatMul", ["f", "wl"], ["logvar"])],
            "encoder",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
            [helper.make_tensor_value_info("mu", TensorProto.FLOAT, ["batch", FLAT]),
             helper.make_tensor_value_info("logvar", TensorProto.FLOAT, ["batch", FLAT])],
            [numpy_helper.from_array(rng.normal(0, 0.05, (pixels, FLAT)).astype(np.float32), "wm"),
             numpy_helper.from_array(rng.normal(0, 0.01, (pixels, FLAT)).astype(np.float32), "wl")],
        )
        _save(enc, folder, "encoder", [{"name": "x", "shape": ["batch", 3, SIZE, SIZE], "kind": "image"}],
              [{"name": "mu", "shape": ["batch", FLAT], "kind": "vector"},
               {"name": "logvar", "shape": ["batch", FLAT], "kind": "vector"}], facts, "toyflat", config)
    return folder


def ort_outputs(path: Path, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    """onnxruntime on the file itself: the reference the runtime is compared with."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kinds") / "models"
    build_ae(root / "ae")
    build_ae(root / "ae_sphere", facts={**FACTS_AE, "prior": "sphere"})
    build_ae(root / "ae_old", facts=None)  # exported before the keys existed
    build_ae(root / "ae_decoder_only", encoder=False)
    build_flat(root / "sphere", {"prior": "sphere", "encoder_kind": "none", "reconstructs": "false"})
    build_flat(root / "vae_old", None, gaussian_encoder=True)
    return root


@pytest.fixture(scope="module")
def ae(repo) -> runtime.GeneratorSession:
    return runtime.load(repo / "ae", providers="cpu")


@pytest.fixture(scope="module")
def photo() -> bytes:
    yy, xx = np.mgrid[0:20, 0:14]
    return png((np.stack([xx * 17, yy * 11, (xx * yy) % 256], -1) % 256).astype(np.uint8))


def reference_reconstruction(folder: Path, x: np.ndarray) -> np.ndarray:
    z = ort_outputs(folder / "encoder.onnx", {"x": x})[0]
    return core_images.to_uint8(ort_outputs(folder / "decoder.onnx", {"z": z})[0])


# --------------------------------------------------------------------------- metadata read back


def test_facts_and_latent_shape_read_back(repo, ae):
    assert ae.latent_shape == LATENT and ae.latent_dim == 32
    assert (ae.prior, ae.encoder_kind) == ("none", "deterministic")
    assert ae.can_reconstruct and not ae.can_generate and not ae.can_vary
    sphere = runtime.load(repo / "sphere", providers="cpu")
    assert (sphere.prior, sphere.encoder_kind, sphere.latent_shape) == ("sphere", "none", (FLAT,))
    assert sphere.can_generate and not sphere.can_reconstruct


def test_files_without_the_keys_still_load_with_derived_defaults(repo):
    old_ae = runtime.load(repo / "ae_old", providers="cpu")
    assert (old_ae.prior, old_ae.encoder_kind) == ("normal", "deterministic")
    old_vae = runtime.load(repo / "vae_old", providers="cpu")
    assert (old_vae.prior, old_vae.encoder_kind, old_vae.can_vary) == ("normal", "gaussian", True)
    # the normal prior: core.noise's latents, as before the keys existed
    z = spec_noise.latents(3, 32, 4).reshape(3, *LATENT)
    np.testing.assert_array_equal(old_ae.generate(3, seed=4), old_ae.generate(latents=z))


def test_encoder_kind_must_match_the_encoder_outputs(tmp_path):
    folder = build_ae(tmp_path / "m", facts={**FACTS_AE, "encoder_kind": "gaussian"})
    with pytest.raises(ModelFileError) as info:
        runtime.load(folder, providers="cpu")
    message = str(info.value)
    assert "age.encoder_kind" in message and "'gaussian'" in message and "deterministic encoder" in message
    assert message.startswith(str(folder))


def test_parts_of_one_export_agree_on_the_facts(tmp_path):
    folder = build_ae(tmp_path / "m", encoder_facts={**FACTS_AE, "prior": "sphere"})
    with pytest.raises(ModelFileError, match=r"encoder\.onnx: metadata age\.prior is 'sphere' but .*decoder\.onnx says 'none'"):
        runtime.load(folder, providers="cpu")


def test_encoder_none_with_an_encoder_file_is_refused(tmp_path):
    folder = build_ae(tmp_path / "m", facts={**FACTS_AE, "encoder_kind": "none"})
    with pytest.raises(ModelFileError, match="age.encoder_kind is 'none'"):
        runtime.load(folder, providers="cpu")


def test_encoder_output_shape_must_match_the_generator_input(tmp_path):
    folder = build_ae(tmp_path / "m")
    build_flat(tmp_path / "flat", FACTS_AE)
    (folder / "decoder.onnx").write_bytes((tmp_path / "flat" / "decoder.onnx").read_bytes())
    # same model/config/step in both files, so only the shapes differ
    import onnx

    dec = onnx.load(folder / "decoder.onnx")
    enc_meta = {p.key: p.value for p in onnx.load(folder / "encoder.onnx").metadata_props}
    for p in dec.metadata_props:
        if p.key in ("age.model", "age.config"):
            p.value = enc_meta[p.key]
    onnx.save(dec, folder / "decoder.onnx")
    with pytest.raises(ModelFileError, match=r"encoder output 'z' has shape \['batch', 2, 4, 4\]; the generator "
                                             r"decoder\.onnx takes \(batch, 6\)"):
        runtime.load(folder, providers="cpu")


# --------------------------------------------------------------------------- library


def test_spatial_latents_decode_shaped_or_flat(ae, repo):
    z = np.random.default_rng(3).standard_normal((4, *LATENT)).astype(np.float32)
    want = core_images.to_uint8(ort_outputs(repo / "ae" / "decoder.onnx", {"z": z})[0])
    np.testing.assert_array_equal(ae.generate(latents=z), want)
    np.testing.assert_array_equal(ae.generate(latents=z.reshape(4, -1)), want)
    with pytest.raises(ValueError, match=r"expected shape \(N, 2, 4, 4\) or \(N, 32\)"):
        ae.generate(latents=np.zeros((1, 4, 4, 2), np.float32))


def test_reconstruct_matches_onnxruntime(ae, repo, photo, tmp_path):
    x = np.random.default_rng(5).random((5, 3, SIZE, SIZE), dtype=np.float32)
    want = reference_reconstruction(repo / "ae", x)
    got = ae.reconstruct(x, batch_size=2)  # chunked on both parts
    assert got.shape == (5, SIZE, SIZE, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)
    assert len({g.tobytes() for g in got}) == 5
    # one picture: path, bytes and PIL image give the same reconstruction
    path = tmp_path / "photo.png"
    path.write_bytes(photo)
    one = ae.reconstruct_image(path)
    np.testing.assert_array_equal(one, reference_reconstruction(repo / "ae", ae.load_image(path)[None])[0])
    np.testing.assert_array_equal(ae.reconstruct_image(photo), one)
    with Image.open(path) as im:
        np.testing.assert_array_equal(ae.reconstruct_image(im), one)
    with pytest.raises(ValueError, match="NaN"):
        ae.reconstruct(np.full((1, 3, SIZE, SIZE), np.nan, np.float32))


def test_gaussian_reconstruct_decodes_the_posterior_mean(repo, photo):
    vae = runtime.load(repo / "vae_old", providers="cpu")
    x = vae.load_image(photo)[None]
    mu, _ = vae.encode(x)
    np.testing.assert_array_equal(vae.reconstruct_image(photo), vae.generate(latents=mu)[0])


def test_prior_none_refuses_generation_from_seeds(ae):
    for call in (lambda: ae.generate(2, seed=0), lambda: ae.sample_latents(2, 0)):
        with pytest.raises(runtime.UnsupportedOperation, match="autoencoder and only reconstructs.*age.prior is 'none'"):
            call()
    assert ae.generate(latents=np.zeros((1, *LATENT), np.float32)).shape == (1, SIZE, SIZE, 3)  # decoding still works


def test_variations_are_refused_for_a_deterministic_encoder(ae, photo):
    with pytest.raises(runtime.UnsupportedOperation, match="deterministic encoder.*not a posterior"):
        ae.variations(photo, n=3)
    with pytest.raises(runtime.UnsupportedOperation, match="deterministic encoder"):
        ae.encode(np.zeros((1, 3, SIZE, SIZE), np.float32))


@pytest.mark.parametrize("folder", ["sphere", "ae_sphere"])
def test_sphere_latents_have_unit_norm_and_follow_the_seed(repo, folder):
    s = runtime.load(repo / folder, providers="cpu")
    z = s.sample_latents(50, seed=7)
    assert z.shape == (50, *s.latent_shape) and z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(z.reshape(50, -1), axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(z, s.sample_latents(50, seed=7))
    assert not np.array_equal(z, s.sample_latents(50, seed=8))
    # the normal draws of the same seed, projected: generate() uses exactly these
    flat = spec_noise.latents(4, s.latent_dim, 9)
    np.testing.assert_allclose(s.sample_latents(4, 9).reshape(4, -1), flat / np.linalg.norm(flat, axis=1, keepdims=True),
                               rtol=1e-6)
    np.testing.assert_array_equal(s.generate(4, seed=9), s.generate(latents=to_unit_sphere(flat)))


# --------------------------------------------------------------------------- CLI


def run_main(args: list[str], caplog) -> tuple[int, str]:
    caplog.clear()
    caplog.set_level(logging.INFO, logger="runtime")
    status = cli.main(args)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    return status, "\n".join(errors)


def test_cli_prior_none_and_variations_refused_in_one_line(repo, photo, tmp_path, caplog):
    image = tmp_path / "p.png"
    image.write_bytes(photo)
    out = tmp_path / "grid.png"
    status, err = run_main([str(repo / "ae"), "--out", str(out), "--n", "2", "--provider", "cpu"], caplog)
    assert status == 2 and "\n" not in err and "autoencoder and only reconstructs" in err, err
    status, err = run_main([str(repo / "ae"), "--out", str(out), "--variations", str(image), "--provider", "cpu"], caplog)
    assert status == 2 and "\n" not in err and "deterministic encoder" in err, err
    assert not out.exists()


def test_cli_reconstruct(repo, ae, photo, tmp_path, caplog):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(photo)
    b.write_bytes(png(np.asarray(Image.open(io.BytesIO(photo)))[::-1].copy()))
    out = tmp_path / "r.npy"
    status, err = run_main([str(repo / "ae"), "--out", str(out), "--reconstruct", str(a), str(b), "--provider", "cpu"], caplog)
    assert status == 0, err
    np.testing.assert_array_equal(np.load(out), np.stack([ae.reconstruct_image(a), ae.reconstruct_image(b)]))
    status, err = run_main([str(repo / "ae"), "--out", str(out), "--reconstruct", str(a), "--n", "3"], caplog)
    assert status == 2 and "--n: not used with --reconstruct" in err
    status, err = run_main([str(repo / "ae_decoder_only"), "--out", str(tmp_path / "x.png"), "--reconstruct", str(a),
                            "--provider", "cpu"], caplog)
    assert status == 2 and "no encoder.onnx" in err and "reconstruction needs the encoder part" in err, err


# --------------------------------------------------------------------------- server


@pytest.fixture(scope="module")
def client(repo):
    from runtime.server import Settings, create_app
    from tests.runtime.live import serve

    settings = Settings(max_batch=8, max_delay_ms=5, max_queue=16, max_n=16, max_body_bytes=64 * 1024,
                        max_image_pixels=250_000, request_timeout_s=20, provider="cpu")
    with serve(create_app(repo, settings)) as c:
        yield c


def error_of(response, status: int, field: str | None, needle: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) <= {"error", "field"} and needle in body["error"], body
    assert body.get("field") == field, body


def test_server_describes_the_kinds(client):
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    ae = models["ae"]
    assert ae["latent_shape"] == list(LATENT) and ae["latent_dim"] == 32
    assert (ae["prior"], ae["encoder_kind"], ae["generates"], ae["reconstructs"], ae["variations"]) == (
        "none", "deterministic", False, True, False)
    assert (models["vae_old"]["prior"], models["vae_old"]["variations"]) == ("normal", True)
    assert (models["sphere"]["prior"], models["sphere"]["reconstructs"]) == ("sphere", False)
    spec = client.get("/openapi.json").json()
    assert "multipart/form-data" in spec["paths"]["/v1/models/{name}/reconstruct"]["post"]["requestBody"]["content"]


def test_server_reconstructs_a_spatial_autoencoder(client, ae, photo):
    files = {"image": ("face.png", photo, "image/png")}
    r = client.post("/v1/models/ae/reconstruct", files=files)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
    assert r.headers["x-age-shape"] == f"1,{SIZE},{SIZE},3" and "x-age-seed" not in r.headers
    with Image.open(io.BytesIO(r.content)) as im:
        assert im.size == (SIZE, SIZE)
        np.testing.assert_array_equal(np.asarray(im), ae.reconstruct_image(photo))
    r = client.post("/v1/models/ae/reconstruct", files=files, data={"format": "npy"})
    np.testing.assert_array_equal(np.load(io.BytesIO(r.content)), ae.reconstruct_image(photo)[None])
    metrics = client.get("/metrics").text
    assert 'age_requests_total{model="ae",endpoint="reconstruct",status="200"} 2' in metrics


def test_server_refuses_what_a_model_cannot_do(client, ae, photo):
    files = {"image": ("face.png", photo, "image/png")}
    error_of(client.post("/v1/models/ae/generate", json={"n": 2}), 409, "name", "autoencoder and only reconstructs")
    error_of(client.post("/v1/models/ae/generate", json={"n": 2, "seed": 1}), 409, "name", "/v1/models/ae/reconstruct")
    error_of(client.post("/v1/models/ae/variations", files=files), 409, "name", "deterministic encoder")
    error_of(client.post("/v1/models/ae_decoder_only/reconstruct", files=files), 404, "name", "no encoder.onnx")
    error_of(client.post("/v1/models/sphere/reconstruct", files=files), 404, "name", "reconstruction needs the encoder")
    error_of(client.post("/v1/models/ae/reconstruct", data={"format": "png"}), 415, "image", "multipart")
    error_of(client.post("/v1/models/ae/reconstruct", files=files, data={"n": "2"}), 422, "n", "unknown form field")
    error_of(client.post("/v1/models/ae/reconstruct", files=files, data={"format": "gif"}), 422, "format", "gif")
    error_of(client.post("/v1/models/ae/reconstruct", files={"image": ("x.png", b"\x89PNGjunk" * 20)}), 422, "image",
             "not a readable image")
    big = png(np.zeros((600, 600), np.uint8))  # 360,000 pixels > max_image_pixels, a small file
    error_of(client.post("/v1/models/ae/reconstruct", files={"image": ("big.png", big)}), 413, "image", "--max-image-pixels")
    error_of(client.post("/v1/models/nope/reconstruct", files=files), 404, "name", "unknown model 'nope'")
    # explicit latents still decode on a model without a prior, flattened in C order
    z = np.random.default_rng(2).standard_normal((2, *LATENT)).astype(np.float32)
    r = client.post("/v1/models/ae/generate", json={"latents": z.reshape(2, -1).tolist(), "format": "npy"})
    assert r.status_code == 200, r.text
    np.testing.assert_array_equal(np.load(io.BytesIO(r.content)), ae.generate(latents=z))


def test_server_sphere_generation_matches_the_library(client, repo):
    s = runtime.load(repo / "sphere", providers="cpu")
    r = client.post("/v1/models/sphere/generate", json={"n": 3, "seed": 11, "format": "npy"})
    assert r.status_code == 200, r.text
    np.testing.assert_array_equal(np.load(io.BytesIO(r.content)), s.generate(3, seed=11))
