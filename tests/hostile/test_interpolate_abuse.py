"""Inversion and interpolation under hostile input: encoders that give garbage, degenerate codes
(antipodal, identical, all-zero) on the sphere, crafted uploads and form values, concurrent callers.

Toy parts come from tests/runtime/test_interpolate.py's builders, plus encoders built here to
misbehave. Servers run on 127.0.0.1 in a thread; every loop is bounded.
"""

from __future__ import annotations

import io
import logging
import re
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import runtime
from runtime import generate as cli
from tests.runtime.test_interpolate import (FLAT, SIZE, build_flat_model, error_of, facts, graph_model, png,
                                            save_part, tensor_info, upload)

pytestmark = pytest.mark.serving


def build_with_encoder(folder: Path, prior: str, nodes: list, initializers: list) -> Path:
    """The flat toy generator with a deterministic encoder made of ``nodes`` (``x`` -> ``z``)."""
    from onnx import TensorProto, helper

    build_flat_model(folder, prior, None, seed=11)
    # the generator was saved as encoder-less: rewrite its facts to say it has one
    import onnx

    gen = onnx.load(folder / "decoder.onnx")
    for p in gen.metadata_props:
        if p.key == "age.encoder_kind":
            p.value = "deterministic"
        if p.key == "age.reconstructs":
            p.value = "true"
    onnx.save(gen, folder / "decoder.onnx")
    enc = graph_model(nodes, "encoder", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
                      [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", FLAT])], initializers)
    save_part(enc, folder, "encoder", [tensor_info("x", (3, SIZE, SIZE), "image")], [tensor_info("z", (FLAT,), "vector")],
              facts(prior, "deterministic"), folder.name)
    return folder


def scaled_mean_encoder(folder: Path, prior: str, scale: float, offset: float = 0.5) -> Path:
    """``z = (mean(x) - offset) * scale * v``: a bright and a dark picture give opposite codes."""
    from onnx import helper, numpy_helper

    v = np.array([[1.0, -2.0, 0.5, 3.0, -1.0, 0.25]], np.float32) * np.float32(scale)
    nodes = [helper.make_node("Flatten", ["x"], ["f"]),
             helper.make_node("ReduceMean", ["f", "axes"], ["m"], keepdims=1),
             helper.make_node("Sub", ["m", "offset"], ["c"]),
             helper.make_node("MatMul", ["c", "v"], ["z"])]
    inits = [numpy_helper.from_array(np.array([1], np.int64), "axes"),
             numpy_helper.from_array(np.array(offset, np.float32), "offset"),
             numpy_helper.from_array(v, "v")]
    return build_with_encoder(folder, prior, nodes, inits)


def nan_encoder(folder: Path) -> Path:
    """An encoder dividing by zero: every code is +-inf or NaN."""
    from onnx import helper, numpy_helper

    nodes = [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["h"]),
             helper.make_node("Div", ["h", "zero"], ["z"])]
    inits = [numpy_helper.from_array(np.random.default_rng(0).normal(0, 1, (3 * SIZE * SIZE, FLAT)).astype(np.float32), "w"),
             numpy_helper.from_array(np.array(0.0, np.float32), "zero")]
    return build_with_encoder(folder, "normal", nodes, inits)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("interpolate_abuse") / "models"
    build_flat_model(root / "vae", "normal", "gaussian", seed=1)
    build_flat_model(root / "age", "sphere", "deterministic", normalise=True, seed=2)
    scaled_mean_encoder(root / "poles", "sphere", 1.0)        # antipodal codes for bright vs dark pictures
    scaled_mean_encoder(root / "wild", "normal", 1e9)          # codes far beyond MAX_LATENT_ABS
    scaled_mean_encoder(root / "flat_zero", "sphere", 0.0)     # every code all zeros: no direction
    nan_encoder(root / "nan")
    return root


def flat_png(value: int) -> bytes:
    return png(np.full((SIZE, SIZE, 3), value, np.uint8))


@pytest.fixture(scope="module")
def pictures() -> tuple[bytes, bytes]:
    yy, xx = np.mgrid[0:12, 0:12]
    return png(np.stack([xx * 20, yy * 20, (xx * yy) % 256], -1) % 256), png(np.stack([yy * 9, xx * 3, xx + yy], -1))


# --------------------------------------------------------------------------- degenerate codes


def test_antipodal_codes_on_the_sphere_stay_on_the_sphere(repo):
    s = runtime.load(repo / "poles", providers="cpu")
    bright, dark = flat_png(230), flat_png(20)
    za, zb = s.invert(bright), s.invert(dark)
    np.testing.assert_allclose(za, -zb, atol=1e-6)  # opposite poles: no unique great circle
    for steps in (2, 3, 8, 9):
        z = s.interpolation_latents(bright, dark, steps=steps)
        assert np.all(np.isfinite(z))
        np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-6)
        np.testing.assert_array_equal(z[0], za)
        np.testing.assert_array_equal(z[-1], zb)
        assert np.linalg.norm(np.diff(z, axis=0), axis=1).max() < 2.01 * np.sin(np.pi / 2 / (steps - 1)) + 1e-6
    # the same picture twice: every step is its code
    z = s.interpolation_latents(bright, bright, steps=5)
    np.testing.assert_allclose(z, np.repeat(za[None], 5, 0), atol=1e-7)
    assert s.interpolate(bright, dark, steps=4).shape == (4, SIZE, SIZE, 3)


def test_an_all_zero_code_gives_no_nan(repo):
    s = runtime.load(repo / "flat_zero", providers="cpu")
    z = s.interpolation_latents(flat_png(200), flat_png(10), steps=4)
    np.testing.assert_array_equal(z, 0.0)
    assert s.interpolate(flat_png(200), flat_png(10), steps=4).shape == (4, SIZE, SIZE, 3)


@pytest.mark.parametrize("name, needle", [("nan", "NaN or infinity"), ("wild", "within +-10000")])
def test_garbage_codes_are_refused_in_one_clear_error(repo, name, needle):
    s = runtime.load(repo / name, providers="cpu")
    for call in (lambda: s.invert(flat_png(200)), lambda: s.interpolate(flat_png(200), flat_png(10), steps=3)):
        with pytest.raises(ValueError, match=f"the encoder gives unusable latents for this image.*{re.escape(needle)}"):
            call()


def test_interpolation_path_refuses_hostile_latents(repo):
    s = runtime.load(repo / "vae", providers="cpu")
    good = np.zeros(FLAT, np.float32)
    cases = [
        ((np.full(FLAT, 1e30), good), "latent_a: latents: values must lie within"),
        ((good, np.full(FLAT, np.inf)), "latent_b: latents: contain NaN"),
        ((good, "not numbers"), "latent_b: not a numeric array"),
        ((good, np.zeros(FLAT + 1)), "latent_b: expected one latent"),
        ((np.zeros((3, FLAT)), good), "latent_a: expected one latent"),
        ((np.float32(1.0), good), "latent_a: expected one latent"),
    ]
    for (a, b), needle in cases:
        with pytest.raises(ValueError, match=needle):
            s.interpolation_path(a, b, steps=3)
    assert s.interpolation_path(good, good, steps=np.int64(3)).shape == (3, FLAT)
    for steps in (10**18, -1, float("nan"), np.float64(3.0)):
        with pytest.raises(ValueError, match="steps must be an integer between 2 and"):
            s.interpolation_path(good, good, steps=steps)


# --------------------------------------------------------------------------- CLI


def run_main(args: list[str], caplog) -> tuple[int, str]:
    caplog.clear()
    caplog.set_level(logging.INFO, logger="runtime")
    status = cli.main([*args, "--provider", "cpu"])
    return status, "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


def test_cli_refuses_hostile_inputs_in_one_line(repo, tmp_path, caplog):
    a = tmp_path / "a.png"
    a.write_bytes(flat_png(200))
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    out = tmp_path / "w.gif"
    (tmp_path / "d.gif").mkdir()
    cases = [
        (["vae", "--interpolate", str(a), str(tmp_path)], "is a directory"),
        (["vae", "--interpolate", str(junk), str(a)], "not a readable image"),
        (["nan", "--interpolate", str(a), str(a)], "unusable latents"),
        (["vae", "--interpolate", str(a), str(a), "--out", str(tmp_path / "w.bmp")], "unsupported extension .bmp"),
        (["vae", "--interpolate", str(a), str(a), "--steps", "3", "--out", str(tmp_path / "d.gif")], "is a directory"),
    ]
    for (model, *rest), needle in cases:
        args = [str(repo / model), *rest]
        if "--out" not in rest:
            args += ["--out", str(out)]
        status, err = run_main(args, caplog)
        assert status == 2 and needle in err and "\n" not in err, (rest, err)
    assert not out.exists()


# --------------------------------------------------------------------------- server


@pytest.fixture(scope="module")
def client(repo):
    from runtime.server import Settings, create_app
    from tests.runtime.live import serve

    settings = Settings(max_batch=8, max_delay_ms=2, max_queue=64, max_n=16, max_body_bytes=32 * 1024,
                        max_image_pixels=250_000, request_timeout_s=20, provider="cpu")
    with serve(create_app(repo, settings)) as c:
        yield c


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int, height: int) -> bytes:
    """A complete greyscale PNG of ``width`` x ``height`` black pixels: a few KB that decode to megabytes."""
    raw = (b"\x00" * (width + 1)) * height
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")


def header_only_png(width: int, height: int) -> bytes:
    """A PNG signature and IHDR, then nothing: no pixel data at all."""
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))


def test_server_refuses_crafted_uploads(client, pictures):
    url = "/v1/models/vae/interpolate"
    files = upload(pictures)
    # a decompression bomb is refused from its header, naming the field it came in
    bomb = bomb_png(4000, 4000)
    assert len(bomb) < 32 * 1024
    error_of(client.post(url, files={**files, "image_a": ("bomb.png", bomb)}), 413, "image_a", "--max-image-pixels")
    error_of(client.post(url, files={**files, "image_b": ("x.png", header_only_png(20, 20))}), 422, "image_b",
             "image image_b")
    error_of(client.post(url, files={**files, "image_b": ("x.bin", bytes(range(256)) * 4)}), 422, "image_b",
             "not a readable image")
    # form values where files belong and the reverse, a third upload, a body over the limit
    error_of(client.post(url, files={"image_a": files["image_a"], "steps": ("s.txt", b"4")}, data={}), 422, "image_b",
             "image_b: missing")
    for extra in ({"steps": ("s.txt", b"4")}, {"image_c": ("c.png", pictures[0])}):  # a third upload
        error_of(client.post(url, files={**files, **extra}), 400, None, "Too many files. Maximum number of files is 2")
    error_of(client.post(url, files={**files, "image_b": ("big.png", b"\0" * 40_000)}), 413, "content-length", "--max-body-bytes")
    for steps in ("9" * 5000, "-3", "nan", "0x10"):
        r = client.post(url, files=files, data={"steps": steps})
        assert r.status_code == 422 and r.json()["field"] == "steps", r.text
    r = client.post(url, files=files, data={"steps": " 3 ", "format": " npy "})  # blanks around values are fine
    assert r.status_code == 200 and np.load(io.BytesIO(r.content)).shape == (3, SIZE, SIZE, 3), r.text


@pytest.mark.parametrize("name, needle", [("nan", "NaN or infinity"), ("wild", "within +-10000")])
def test_server_answers_422_for_an_encoder_that_gives_garbage(client, name, needle):
    r = client.post(f"/v1/models/{name}/interpolate", files={"image_a": ("a.png", flat_png(200)),
                                                               "image_b": ("b.png", flat_png(10))})
    error_of(r, 422, "image_a", needle)


def test_server_sphere_antipodes_and_concurrent_callers(client, repo, pictures):
    poles = runtime.load(repo / "poles", providers="cpu")
    bright, dark = flat_png(230), flat_png(20)
    r = client.post("/v1/models/poles/interpolate", files={"image_a": ("a.png", bright), "image_b": ("b.png", dark)},
                    data={"steps": "5", "format": "npy"})
    assert r.status_code == 200 and r.headers["x-age-interpolation"] == "spherical", r.text
    np.testing.assert_array_equal(np.load(io.BytesIO(r.content)), poles.interpolate(bright, dark, steps=5))

    age = runtime.load(repo / "age", providers="cpu")
    jobs = [(steps, pictures if steps % 2 else pictures[::-1]) for steps in range(2, 14)]

    def call(job):
        steps, pair = job
        r = client.post("/v1/models/age/interpolate", files=upload(pair), data={"steps": str(steps), "format": "npy"})
        return r.status_code, r.content

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(call, jobs))
    for (steps, pair), (status, content) in zip(jobs, results):
        assert status == 200, content[:200]
        np.testing.assert_array_equal(np.load(io.BytesIO(content)), age.interpolate(*pair, steps=steps))
    with Image.open(io.BytesIO(client.post("/v1/models/age/interpolate", files=upload(pictures),
                                           data={"steps": "16", "format": "gif"}).content)) as im:
        assert im.n_frames == 16
