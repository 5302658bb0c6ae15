"""The HTTP server (``python -m runtime.serve``): API, micro-batching, limits, probes, shutdown.

The model repository is built by hand with ``onnx.helper`` (a conv VAE with an encoder, the same
decoder alone, a toy video generator, and broken folders), so no framework is imported and the
module's fixtures take well under a second. Servers run for real on 127.0.0.1: uvicorn in a
thread around an in-process app (so tests can gate a session and inspect the batcher), and once
as ``python -m runtime.serve`` in a subprocess (startup lines, SIGTERM).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

import runtime
from runtime.server import Settings, create_app
from core import images as core_images
from core import noise as spec_noise

pytestmark = pytest.mark.serving

REPO = Path(__file__).resolve().parents[2]
LATENT, SIZE = 16, 8
VIDEO_SHAPE = (2, 3, 4, 4)  # frames, C, H, W
BODY_LIMIT = 64 * 1024
PIXEL_LIMIT = 250_000


# --------------------------------------------------------------------------- a model repository


def _save(proto, path: Path, part: str, model: str, inputs, outputs, config: dict, step: str = "3") -> None:
    import onnx

    meta = {
        "model": model, "part": part, "config": json.dumps(config),
        "inputs": json.dumps(inputs), "outputs": json.dumps(outputs),
        "value_range": json.dumps([0.0, 1.0]), "source_framework": "torch", "exported_via": "torch",
        "step": step, "format_version": "1",
    }
    for key, value in meta.items():
        proto.metadata_props.add(key="age." + key, value=value)
    path.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, path / f"{part}.onnx")


def build_vae(folder: Path, encoder: bool = True) -> None:
    """decoder: z -> Gemm -> (3, 8, 8) -> Conv 3x3 -> Sigmoid; encoder: Conv stride 2 -> Gemm -> mu, logvar."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    config = {"model": "toyvae", "latent_dim": LATENT, "image_size": SIZE}

    def const(name, array):
        return numpy_helper.from_array(np.asarray(array), name)

    dec = helper.make_graph(
        [
            helper.make_node("Gemm", ["z", "w1", "b1"], ["h"]),
            helper.make_node("Reshape", ["h", "shape"], ["r"]),
            helper.make_node("Conv", ["r", "k", "kb"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Sigmoid", ["c"], ["image"]),
        ],
        "decoder",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", LATENT])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        initializer=[
            const("w1", rng.normal(0, 1.0, (LATENT, 3 * SIZE * SIZE)).astype(np.float32)),
            const("b1", np.zeros(3 * SIZE * SIZE, np.float32)),
            const("shape", np.array([-1, 3, SIZE, SIZE], np.int64)),
            const("k", rng.normal(0, 0.6, (3, 3, 3, 3)).astype(np.float32)),
            const("kb", np.zeros(3, np.float32)),
        ],
    )
    _save(
        helper.make_model(dec, opset_imports=[helper.make_opsetid("", 18)], ir_version=9), folder, "decoder", "toyvae",
        [{"name": "z", "shape": ["batch", LATENT], "kind": "vector"}],
        [{"name": "image", "shape": ["batch", 3, SIZE, SIZE], "kind": "image"}], config,
    )
    if not encoder:
        return
    flat = 4 * (SIZE // 2) ** 2
    enc = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "ek", "ekb"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
            helper.make_node("Flatten", ["c"], ["f"]),
            helper.make_node("Gemm", ["f", "wm", "bm"], ["mu"]),
            helper.make_node("Gemm", ["f", "wl", "bl"], ["logvar"]),
        ],
        "encoder",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("mu", TensorProto.FLOAT, ["batch", LATENT]),
         helper.make_tensor_value_info("logvar", TensorProto.FLOAT, ["batch", LATENT])],
        initializer=[
            const("ek", rng.normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32)),
            const("ekb", np.zeros(4, np.float32)),
            const("wm", rng.normal(0, 0.3, (flat, LATENT)).astype(np.float32)),
            const("bm", np.zeros(LATENT, np.float32)),
            const("wl", rng.normal(0, 0.05, (flat, LATENT)).astype(np.float32)),
            const("bl", np.full(LATENT, -0.5, np.float32)),
        ],
    )
    _save(
        helper.make_model(enc, opset_imports=[helper.make_opsetid("", 18)], ir_version=9), folder, "encoder", "toyvae",
        [{"name": "x", "shape": ["batch", 3, SIZE, SIZE], "kind": "image"}],
        [{"name": "mu", "shape": ["batch", LATENT], "kind": "vector"},
         {"name": "logvar", "shape": ["batch", LATENT], "kind": "vector"}], config,
    )


def build_video(folder: Path) -> int:
    from onnx import TensorProto, helper

    dim = int(np.prod(VIDEO_SHAPE))
    graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["shape"], value=helper.make_tensor("s", TensorProto.INT64, [5], [-1, *VIDEO_SHAPE])),
            helper.make_node("Reshape", ["z", "shape"], ["r"]),
            helper.make_node("Sigmoid", ["r"], ["video"]),
        ],
        "video_generator",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", dim])],
        [helper.make_tensor_value_info("video", TensorProto.FLOAT, ["batch", *VIDEO_SHAPE])],
    )
    _save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9), folder, "video_generator",
        "toyvideo", [{"name": "z", "shape": ["batch", dim], "kind": "vector"}],
        [{"name": "video", "shape": ["batch", *VIDEO_SHAPE], "kind": "video"}], {"model": "toyvideo", "latent_dim": dim},
    )
    return dim


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("serve") / "models"
    build_vae(root / "vae")
    build_vae(root / "decoder_only", encoder=False)
    build_video(root / "video")
    (root / "broken").mkdir()
    (root / "broken" / "decoder.onnx").write_bytes(b"not an onnx file" * 64)
    (root / "empty").mkdir()
    build_vae(root / "bad name")
    (root / "README.txt").write_text("not a model")
    return root


@pytest.fixture(scope="module")
def solo(repo) -> runtime.GeneratorSession:
    """An independent session: what a lone caller gets, to compare server answers with."""
    return runtime.load(repo / "vae")


@pytest.fixture(scope="module")
def photo() -> bytes:
    yy, xx = np.mgrid[0:30, 0:24]
    pixels = np.stack([xx * 9, yy * 7, (xx + yy) * 4], -1) % 256
    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------- servers on 127.0.0.1


class LiveServer:
    """uvicorn on 127.0.0.1 (an OS-chosen port) in a thread, around an in-process app."""

    def __init__(self, app):
        import uvicorn

        from runtime.server.protocol import uvicorn_config

        self.app = app
        self.state = app.state.server
        config = uvicorn_config(app, self.state.settings, "127.0.0.1", 0, access_log=False, timeout_graceful_shutdown=20)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.client = httpx.Client(base_url=self.url, timeout=30)
        return self

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self.client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "server never became ready"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True  # what uvicorn's SIGTERM/SIGINT handler does
        self.thread.join(30)
        assert not self.thread.is_alive(), "server did not shut down"

    def __exit__(self, *exc) -> None:
        self.client.close()
        if self.thread.is_alive():
            self.stop()

    def metric(self, name: str, **labels: str) -> float:
        return metric_value(self.client.get("/metrics").text, name, **labels)


def metric_value(text: str, name: str, **labels: str) -> float:
    want = {k: str(v) for k, v in labels.items()}
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)", line)
        assert m, f"not exposition format: {line!r}"
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if m.group(1) == name and got == want:
            return float(m.group(4))
    return 0.0


class Gate:
    """Block a session's decode until released; records when a call entered."""

    def __init__(self, session, monkeypatch, block_first: int = 1):
        self.release = threading.Event()
        self.entered = threading.Event()
        self.calls = 0
        original = session.decode

        def decode(latents, batch_size=None):
            self.calls += 1
            if self.calls <= block_first:
                self.entered.set()
                assert self.release.wait(30), "gate never released"
            return original(latents, batch_size)

        monkeypatch.setattr(session, "decode", decode)


def wait_for(condition, timeout: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def npy(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    return np.load(io.BytesIO(response.content), allow_pickle=False)


def assert_error(response: httpx.Response, status: int, field: str | None, needle: str = "") -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("error"), str) and needle in body["error"], body
    assert body.get("field") == field, body
    return body


MAIN_SETTINGS = Settings(
    max_batch=16, max_delay_ms=20, max_queue=64, max_n=64, max_body_bytes=BODY_LIMIT,
    max_image_pixels=PIXEL_LIMIT, request_timeout_s=20, provider="cpu",
)


@pytest.fixture(scope="module")
def server(repo):
    with LiveServer(create_app(repo, MAIN_SETTINGS)) as live:
        live.wait_ready()
        yield live


# --------------------------------------------------------------------------- repository and probes


def test_repository_listing(server):
    r = server.client.get("/v1/models")
    assert r.status_code == 200
    body = r.json()
    models = {m["name"]: m for m in body["models"]}
    assert sorted(models) == ["decoder_only", "vae", "video"]
    vae = models["vae"]
    assert vae["model"] == "toyvae" and vae["latent_dim"] == LATENT and vae["kind"] == "image"
    assert vae["image_shape"] == [SIZE, SIZE, 3] and vae["value_range"] == [0.0, 1.0] and vae["variations"]
    assert vae["formats"] == ["png", "npy"] and vae["step"] == 3 and vae["ready"]
    assert vae["provider"] == "CPUExecutionProvider"
    parts = {p["part"]: p for p in vae["parts"]}
    assert parts["decoder"]["inputs"] == [{"name": "z", "shape": ["batch", LATENT], "kind": "vector"}]
    assert parts["decoder"]["outputs"][0]["shape"] == ["batch", 3, SIZE, SIZE]
    assert [o["name"] for o in parts["encoder"]["outputs"]] == ["mu", "logvar"]
    assert not models["decoder_only"]["variations"] and len(models["decoder_only"]["parts"]) == 1
    assert models["video"]["kind"] == "video" and models["video"]["frames"] == 2
    # mp4 only where the optional imageio-ffmpeg is installed (it is in the test extra)
    assert models["video"]["formats"] == (["gif", "mp4", "npy"] if core_images.mp4_available() else ["gif", "npy"])
    unavailable = {u["name"]: u["error"] for u in body["unavailable"]}
    assert sorted(unavailable) == ["bad name", "broken", "empty"]
    assert "not a loadable ONNX model" in unavailable["broken"]
    assert "generator part in this directory" in unavailable["empty"]
    assert "not a valid model name" in unavailable["bad name"]

    assert server.client.get("/v1/models/video").json()["name"] == "video"
    spec = server.client.get("/openapi.json").json()
    assert "multipart/form-data" in spec["paths"]["/v1/models/{name}/variations"]["post"]["requestBody"]["content"]
    assert "latents" in json.dumps(spec["paths"]["/v1/models/{name}/generate"]["post"]["requestBody"])
    assert_error(server.client.get("/v1/models/nope"), 404, "name", "unknown model 'nope'")


def test_request_schema_offers_exactly_the_encoder_formats():
    from runtime.server import schemas

    assert sorted(schemas.FORMATS) == sorted(core_images.MEDIA_TYPES)


def test_probes_and_metrics_format(server):
    assert server.client.get("/healthz").json() == {"status": "ok"}
    r = server.client.get("/readyz")
    assert r.status_code == 200 and r.json() == {"ready": True, "models": {m: "ready" for m in ("decoder_only", "vae", "video")}}
    server.client.post("/v1/models/vae/generate", json={"n": 2, "seed": 0, "format": "npy"})
    r = server.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    for family, kind in [
        ("age_requests_total", "counter"), ("age_request_duration_seconds", "histogram"),
        ("age_batch_size", "histogram"), ("age_batch_requests", "histogram"), ("age_queue_depth", "gauge"),
        ("age_model_ready", "gauge"),
    ]:
        assert f"# TYPE {family} {kind}" in text and f"# HELP {family} " in text
    for line in text.splitlines():
        assert line.startswith("#") or re.fullmatch(r'[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9.e+-]+|.* \+Inf', line), line
    assert metric_value(text, "age_requests_total", model="vae", endpoint="generate", status="200") >= 1
    assert metric_value(text, "age_model_ready", model="vae") == 1
    assert metric_value(text, "age_request_duration_seconds_count", model="vae", endpoint="generate") >= 1
    assert metric_value(text, "age_batch_size_bucket", model="vae", le="+Inf") >= 1
    assert metric_value(text, "age_queue_depth", model="vae") == 0


def test_readyz_is_503_until_every_model_warmed_up(repo, monkeypatch):
    app = create_app(repo, Settings(provider="cpu"))
    hold = threading.Event()
    entry = app.state.server.models["video"]
    original = entry.warm_up
    monkeypatch.setattr(entry, "warm_up", lambda: (hold.wait(20), original()))
    with LiveServer(app) as live:
        r = live.client.get("/readyz")
        assert r.status_code == 503 and not r.json()["ready"] and r.json()["models"]["video"] == "warming up"
        assert live.client.get("/healthz").status_code == 200  # alive while warming up
        hold.set()
        live.wait_ready()
        assert live.metric("age_model_ready", model="video") == 1


# --------------------------------------------------------------------------- generate and variations


def test_generate_png_and_npy_equal_solo_session(server, solo):
    r = server.client.post("/v1/models/vae/generate", json={"n": 5, "seed": 11, "format": "npy"})
    images = npy(r)
    assert r.headers["x-age-seed"] == "11" and r.headers["x-age-shape"] == f"5,{SIZE},{SIZE},3"
    want = solo.generate(5, seed=11)
    np.testing.assert_array_equal(images, want)
    assert images.std() > 20, "fixture outputs should vary"

    r = server.client.post("/v1/models/vae/generate", json={"n": 5, "seed": 11, "nrow": 2})  # png by default
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(r.content)) as im:
        np.testing.assert_array_equal(np.asarray(im), core_images.make_grid(want, nrow=2))

    # seed null: the server draws one and reports it, so the answer can be reproduced
    r = server.client.post("/v1/models/vae/generate", json={"n": 3, "seed": None, "format": "npy"})
    seed = int(r.headers["x-age-seed"])
    np.testing.assert_array_equal(npy(r), solo.generate(3, seed=seed))

    z = spec_noise.latents(4, LATENT, 99) * 0.5
    r = server.client.post("/v1/models/vae/generate", json={"latents": z.tolist(), "format": "npy"})
    np.testing.assert_array_equal(npy(r), solo.generate(latents=z))
    assert "x-age-seed" not in r.headers


def test_video_generator_formats(server):
    r = server.client.post("/v1/models/video/generate", json={"n": 3, "seed": 1})  # gif by default
    assert r.status_code == 200 and r.headers["content-type"] == "image/gif"
    with Image.open(io.BytesIO(r.content)) as im:
        assert im.format == "GIF" and im.n_frames == VIDEO_SHAPE[0]
    videos = npy(server.client.post("/v1/models/video/generate", json={"n": 3, "seed": 1, "format": "npy"}))
    assert videos.shape == (3, VIDEO_SHAPE[0], VIDEO_SHAPE[2], VIDEO_SHAPE[3], 3)
    assert_error(server.client.post("/v1/models/video/generate", json={"n": 1, "format": "png"}), 422, "format", "video generator")
    assert_error(server.client.post("/v1/models/vae/generate", json={"n": 1, "format": "gif"}), 422, "format", "still images")
    assert_error(server.client.post("/v1/models/vae/generate", json={"n": 1, "format": "mp4"}), 422, "format", "still images")


def test_video_generator_mp4(server, monkeypatch):
    pytest.importorskip("imageio_ffmpeg")
    r = server.client.post("/v1/models/video/generate", json={"n": 2, "seed": 1, "format": "mp4"})
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    assert r.content[4:8] == b"ftyp" and r.headers["content-disposition"].endswith('.mp4"')
    monkeypatch.setattr(core_images, "mp4_available", lambda: False)
    assert_error(server.client.post("/v1/models/video/generate", json={"n": 1, "format": "mp4"}), 422, "format",
                 "imageio-ffmpeg")


def test_variations_upload(server, solo, photo):
    r = server.client.post(
        "/v1/models/vae/variations", files={"image": ("face.png", photo, "image/png")},
        data={"n": "6", "scale": "0.5", "seed": "4", "format": "npy"},
    )
    got = npy(r)
    want = solo.variations(photo, n=6, scale=0.5, seed=4)
    np.testing.assert_array_equal(got, want)
    assert len({g.tobytes() for g in got}) == 6, "variations should differ"

    r = server.client.post("/v1/models/vae/variations", files={"image": ("face.png", photo, "image/png")})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    seed = int(r.headers["x-age-seed"])
    with Image.open(io.BytesIO(r.content)) as im:
        np.testing.assert_array_equal(np.asarray(im), core_images.make_grid(solo.variations(photo, n=10, seed=seed)))

    files = {"image": ("face.png", photo, "image/png")}
    assert_error(server.client.post("/v1/models/decoder_only/variations", files=files), 404, "name", "no encoder.onnx")
    assert_error(server.client.post("/v1/models/vae/variations", data={"n": "2"}), 415, "image", "multipart")
    assert_error(server.client.post("/v1/models/vae/variations", files={"other": ("x", b"1")}), 422, "other", "unknown form field")
    assert_error(server.client.post("/v1/models/vae/variations", files=files, data={"n": "lots"}), 422, "n", "not an integer")
    assert_error(server.client.post("/v1/models/vae/variations", files=files, data={"scale": "-1"}), 422, "scale")
    assert_error(server.client.post("/v1/models/vae/variations", files=files, data={"n": "65"}), 422, "n", "--max-n")
    assert_error(server.client.post("/v1/models/vae/variations", files={"image": ("x.png", b"\x89PNGjunk" * 20)}), 422, "image", "not a readable image")
    assert_error(server.client.post("/v1/models/vae/variations", files={"image": ("x.png", b"")}), 422, "image", "empty")


# --------------------------------------------------------------------------- validation and limits


@pytest.mark.parametrize(
    "path, body, status, field, needle",
    [
        ("vae", b'{"n": 2,', 422, "body", "not valid JSON"),
        ("vae", b"[1, 2]", 422, "body", "JSON object"),
        ("vae", {"n": 65}, 422, "n", "between 1 and 64"),
        ("vae", {"n": 0}, 422, "n", "between 1 and 64"),
        ("vae", {"n": "3"}, 422, "n", "integer"),
        ("vae", {"n": True}, 422, "n", "integer"),
        ("vae", {}, 422, "n", "give n"),
        ("vae", {"n": 2, "colour": "red"}, 422, "colour", "unknown field"),
        ("vae", {"n": 2, "seed": -1}, 422, "seed", "between 0"),
        ("vae", {"n": 2, "format": "jpg"}, 422, "format", "png"),
        ("vae", {"n": 2, "nrow": 0}, 422, "nrow", "between 1 and n (2)"),
        ("vae", {"n": 2, "nrow": 10**6}, 422, "nrow", "between 1 and n (2)"),
        ("vae", {"n": 2, "fps": 0.001}, 422, "fps", "between 0.1 and 100"),
        ("vae", {"n": 2, "seed": 2**63}, 422, "seed", "between 0"),
        ("vae", {"latents": [[0.0] * 3]}, 422, "latents", f"takes {LATENT}"),
        ("vae", {"latents": [[0.0] * LATENT], "seed": 1}, 422, "seed", "not both"),
        ("vae", {"latents": [[0.0] * LATENT], "n": 2}, 422, "n", "1 latents"),
        ("vae", {"latents": [[1e39] * LATENT]}, 422, "latents", "finite numbers within"),
        ("vae", {"latents": [[1e5] * LATENT]}, 422, "latents", "finite numbers within +-10000"),
        ("vae", {"latents": [[0.0] * LATENT], "nrow": 2}, 422, "nrow", "between 1 and n (1)"),
        ("nope", {"n": 1}, 404, "name", "unknown model 'nope'"),
    ],
)
def test_generate_validation_errors(server, path, body, status, field, needle):
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    assert_error(server.client.post(f"/v1/models/{path}/generate", **kwargs), status, field, needle)


def test_unknown_routes_are_json(server):
    assert_error(server.client.get("/v2/anything"), 404, None, "no such endpoint")
    assert_error(server.client.get("/v1/models/vae/generate"), 405, None)
    before = server.metric("age_requests_total", model="_unknown", endpoint="generate", status="404")
    server.client.post("/v1/models/never-seen/generate", json={"n": 1})
    assert server.metric("age_requests_total", model="_unknown", endpoint="generate", status="404") == before + 1


def raw_http(port: int, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send bytes as they are (a lying Content-Length, say); returns (status, response body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1") + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1]), data.split(b"\r\n\r\n", 1)[1]


def _length(data: bytes) -> int:
    m = re.search(rb"content-length: (\d+)", data.split(b"\r\n\r\n", 1)[0], re.I)
    return int(m.group(1)) if m else 1 << 30


def test_body_size_limits(server, photo):
    # declared too large: refused from the headers alone, before any body byte is sent
    start = time.monotonic()
    status, body = raw_http(server.port, (
        "POST /v1/models/vae/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000000000\r\nConnection: close\r\n\r\n"))
    assert status == 413 and json.loads(body)["field"] == "content-length" and time.monotonic() - start < 5

    # no Content-Length (chunked): counted while streaming, refused once past the limit
    def chunks():
        yield b'{"latents": ['
        for _ in range(2000):
            yield (json.dumps([0.5] * LATENT) + ",").encode()
        yield b"[0]]}"

    r = server.client.post("/v1/models/vae/generate", content=chunks(), headers={"content-type": "application/json"})
    assert_error(r, 413, "body", f"limit of {BODY_LIMIT} bytes")

    big = np.random.default_rng(0).integers(0, 255, (160, 160, 3), dtype=np.uint8)  # noise: PNG stays large
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, format="PNG")
    assert len(buf.getvalue()) > BODY_LIMIT
    r = server.client.post("/v1/models/vae/variations", files={"image": ("big.png", buf.getvalue(), "image/png")})
    assert_error(r, 413, "content-length", "--max-body-bytes")
    # the same upload streamed without Content-Length: stopped while the multipart parser reads it
    head, payload = b"--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"big.png\"\r\n\r\n", buf.getvalue()

    def parts():
        yield head
        for i in range(0, len(payload), 4096):
            yield payload[i : i + 4096]
        yield b"\r\n--XyZ--\r\n"

    r = server.client.post("/v1/models/vae/variations", content=parts(), headers={"content-type": "multipart/form-data; boundary=XyZ"})
    assert_error(r, 413, "body", "--max-body-bytes")
    assert server.metric("age_requests_total", model="vae", endpoint="variations", status="413") >= 1
    assert server.client.post("/v1/models/vae/generate", json={"n": 1}).status_code == 200  # still serving


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height (the pixel data never fits: a bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("width, height", [(20000, 20000), (600, 600)])
def test_decompression_bomb_is_refused_before_decoding(server, width, height):
    payload = bomb_png(width, height)
    assert len(payload) < 200
    start = time.monotonic()
    r = server.client.post("/v1/models/vae/variations", files={"image": ("bomb.png", payload, "image/png")})
    assert_error(r, 413, "image", "pixels")
    assert time.monotonic() - start < 2


def test_micro_batching_coalesces_and_splits_exactly(server, solo, monkeypatch):
    """16 concurrent clients, different seeds and sizes: each gets exactly its solo images."""
    name = "vae"
    batcher = server.state.batchers[name]
    gate = Gate(server.state.models[name].session, monkeypatch)
    before = server.client.get("/metrics").text
    sizes = [1 + (i % 4) for i in range(16)]  # 40 latents in all; max_batch 16

    def call(i: int) -> np.ndarray:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            return npy(client.post(f"/v1/models/{name}/generate", json={"n": sizes[i], "seed": 1000 + i, "format": "npy"}))

    with ThreadPoolExecutor(16) as pool:
        first = pool.submit(call, 0)
        assert gate.entered.wait(10)  # request 0 is in the (blocked) session; the rest must queue
        rest = [pool.submit(call, i) for i in range(1, 16)]
        wait_for(lambda: batcher.depth == 15, what="15 queued requests")
        assert server.metric("age_queue_depth", model=name) == 15
        gate.release.set()
        results = [first.result(30)] + [f.result(30) for f in rest]

    for i, got in enumerate(results):
        np.testing.assert_array_equal(got, solo.generate(sizes[i], seed=1000 + i), err_msg=f"client {i}")
    after = server.client.get("/metrics").text

    def delta(metric: str, **labels) -> float:
        return metric_value(after, metric, **labels) - metric_value(before, metric, **labels)

    batches = delta("age_batch_requests_count", model=name)
    assert delta("age_batch_requests_sum", model=name) == 16 and delta("age_batch_size_sum", model=name) == 40
    assert batches < 16 and delta("age_batch_requests_bucket", model=name, le="1") < batches  # a batch > 1
    assert delta("age_batch_size_bucket", model=name, le="16") == batches  # none over --max-batch
    assert batches >= 1 + 3  # the lone first call, then 39 latents in batches of <= 16
    assert metric_value(after, "age_queue_depth", model=name) == 0


def test_concurrent_asyncio_clients_get_their_own_seeds(server, solo):
    async def main() -> list[np.ndarray]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            rs = await asyncio.gather(*[
                client.post("/v1/models/vae/generate", json={"n": 2, "seed": s, "format": "npy"}) for s in range(16)
            ])
        return [npy(r) for r in rs]

    for seed, got in enumerate(asyncio.run(main())):
        np.testing.assert_array_equal(got, solo.generate(2, seed=seed))


# --------------------------------------------------------------------------- queue, timeout, shutdown


def live_server(repo, **settings):
    live = LiveServer(create_app(repo, Settings(provider="cpu", **settings)))
    with live:
        live.wait_ready()
        yield live


@pytest.fixture()
def tight(repo):
    yield from live_server(repo, max_batch=4, max_delay_ms=1, max_queue=1)


@pytest.fixture()
def impatient(repo):
    yield from live_server(repo, request_timeout_s=1.0)


def test_full_queue_answers_503_with_retry_after(tight, monkeypatch):
    gate = Gate(tight.state.models["vae"].session, monkeypatch)
    batcher = tight.state.batchers["vae"]
    body = {"n": 1, "seed": 0, "format": "npy"}
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(tight.client.post, "/v1/models/vae/generate", json=body)
        assert gate.entered.wait(10)
        queued = pool.submit(httpx.post, tight.url + "/v1/models/vae/generate", json=body, timeout=30)
        wait_for(lambda: batcher.depth == 1, what="one queued request")
        start = time.monotonic()
        r = httpx.post(tight.url + "/v1/models/vae/generate", json=body, timeout=30)
        assert time.monotonic() - start < 1, "a full queue must answer at once"
        assert_error(r, 503, None, "--max-queue")
        assert r.headers["retry-after"] == "1"
        # the other model's queue is independent
        assert tight.client.post("/v1/models/video/generate", json={"n": 1, "format": "npy"}).status_code == 200
        gate.release.set()
        assert running.result(30).status_code == 200 and queued.result(30).status_code == 200
    assert tight.metric("age_queue_rejected_total", model="vae") == 1
    assert tight.metric("age_requests_total", model="vae", endpoint="generate", status="503") == 1


def test_request_timeout_answers_504(impatient, monkeypatch):
    gate = Gate(impatient.state.models["vae"].session, monkeypatch)
    start = time.monotonic()
    r = impatient.client.post("/v1/models/vae/generate", json={"n": 1})
    assert_error(r, 504, None, "--request-timeout-s")
    assert 0.9 < time.monotonic() - start < 5
    gate.release.set()
    wait_for(lambda: gate.calls == 1 and impatient.state.batchers["vae"]._running is None, what="the batch to end")
    assert impatient.client.post("/v1/models/vae/generate", json={"n": 1}).status_code == 200
    assert impatient.metric("age_requests_total", model="vae", endpoint="generate", status="504") == 1


def test_graceful_shutdown_drains_in_flight_requests(repo, solo, monkeypatch):
    app = create_app(repo, Settings(provider="cpu"))
    with LiveServer(app) as live:
        live.wait_ready()
        gate = Gate(app.state.server.models["vae"].session, monkeypatch)
        with ThreadPoolExecutor(2) as pool:
            pending = pool.submit(live.client.post, "/v1/models/vae/generate", json={"n": 3, "seed": 5, "format": "npy"})
            assert gate.entered.wait(10)
            stopper = pool.submit(live.stop)  # SIGTERM's effect: stop accepting, then drain
            time.sleep(0.5)
            assert not stopper.done() and live.thread.is_alive(), "shutdown must wait for the in-flight request"
            with pytest.raises(httpx.ConnectError):
                httpx.get(live.url + "/healthz", timeout=2)  # no longer accepting
            gate.release.set()
            np.testing.assert_array_equal(npy(pending.result(30)), solo.generate(3, seed=5))
            stopper.result(30)
    assert app.state.server.draining and not live.thread.is_alive()


# --------------------------------------------------------------------------- the command line


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cli_server(repo: Path, *flags: str) -> tuple[subprocess.Popen, int, str]:
    """``python -m runtime.serve REPO --port P --provider cpu FLAGS`` in a subprocess, once /readyz is 200."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("AGE_RUNTIME_PROVIDER", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime.serve", str(repo), "--port", str(port), "--provider", "cpu", *flags],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    return proc, port, url
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server never became ready"
            time.sleep(0.1)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise


def test_cli_serves_and_stops_on_sigterm(repo):
    proc, port, url = start_cli_server(repo, "--max-delay-ms", "2")
    try:
        r = httpx.post(url + "/v1/models/vae/generate", json={"n": 4, "seed": 0}, timeout=30)
        assert r.status_code == 200 and r.content.startswith(b"\x89PNG")
        assert "age_requests_total" in httpx.get(url + "/metrics", timeout=10).text
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    # uvicorn re-raises the signal after its graceful shutdown: killed by SIGTERM or exit 0 both mean clean
    assert proc.returncode in (0, -signal.SIGTERM), stderr
    lines = stderr.splitlines()
    for name in ("vae", "decoder_only", "video"):
        [line] = [ln for ln in lines if f"model {name}: " in ln]
        assert "CPUExecutionProvider" in line, line
    assert any("skipping model broken" in ln for ln in lines) and any("skipping model empty" in ln for ln in lines)
    assert any(f"on http://127.0.0.1:{port}" in ln for ln in lines)
    assert any("batchers drained; shut down" in ln for ln in lines), stderr
    assert "Traceback" not in stderr


def test_cli_refuses_an_unservable_repository(tmp_path, caplog):
    from runtime import serve

    (tmp_path / "empty").mkdir()
    assert serve.main([str(tmp_path)]) == 2
    assert "no servable model" in caplog.text and "empty: " in caplog.text
    assert serve.main([str(tmp_path / "missing")]) == 2
    assert serve.main([str(tmp_path), "--max-batch", "0"]) == 2
    assert "--max-batch must be an integer >= 1" in caplog.text


def test_server_imports_no_framework(repo):
    """A serving host has no torch/TensorFlow: the server package must not even try to import them."""
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'tensorflow', 'keras', 'torch_impl', 'keras_impl', 'export', 'onnx'):
            raise ImportError('the server must not import ' + name)
sys.meta_path.insert(0, Block())
import runtime.serve
from runtime.server import Settings, create_app
from starlette.testclient import TestClient
with TestClient(create_app({str(repo)!r}, Settings(provider='cpu'))) as client:
    r = client.post('/v1/models/vae/generate', json={{'n': 2, 'seed': 0}})
    assert r.status_code == 200 and r.headers['content-type'] == 'image/png', r.text
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow', 'keras', 'onnx'))
assert not heavy, heavy
print('ok')
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
