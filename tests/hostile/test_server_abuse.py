"""The HTTP server under abuse: clients that leave, half-sent headers, malformed HTTP, hostile parameters.

Servers run on 127.0.0.1 only: in process (uvicorn in a thread around the app, as
tests/runtime/test_serve.py does, so a test can hold a model's inference) and once as
``python -m runtime.serve`` with the documented flags. Every loop is bounded in count and time.
"""

from __future__ import annotations

import json
import logging
import os
import re
import select
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from runtime.server import Settings, create_app
from core import noise as spec_noise
from tests.runtime.test_serve import (LiveServer, assert_error, build_vae, build_video, metric_value,
                                      start_cli_server, wait_for)

pytestmark = pytest.mark.serving

REPO = Path(__file__).resolve().parents[2]
LATENT = 16


# --------------------------------------------------------------------------- fixtures


def build_leaking(folder: Path, location: str) -> None:
    """The toy VAE's decoder with its first weight moved to external data at ``location``."""
    import onnx
    from onnx import TensorProto
    from onnx.external_data_helper import set_external_data

    build_vae(folder, encoder=False)
    model = onnx.load(folder / "decoder.onnx")
    tensor = next(t for t in model.graph.initializer if t.name == "w1")
    set_external_data(tensor, location=location, offset=0, length=len(tensor.raw_data))
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    (folder / "decoder.onnx").write_bytes(model.SerializeToString())


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("abuse") / "models"
    build_vae(root / "vae")
    build_video(root / "video")
    (root.parent / "secret.txt").write_bytes(b"TOP-SECRET " * 1000)
    build_leaking(root / "leak_dotdot", "../../secret.txt")
    build_leaking(root / "leak_readme", "README.md")  # the original report: resolved against the cwd
    build_leaking(root / "leak_absolute", str(root.parent / "secret.txt"))
    build_vae(root / "deep_config", encoder=False)
    import onnx

    model = onnx.load(root / "deep_config" / "decoder.onnx")
    next(p for p in model.metadata_props if p.key == "age.config").value = "[" * 100_000 + "]" * 100_000
    onnx.save(model, root / "deep_config" / "decoder.onnx")
    return root


SETTINGS = Settings(max_batch=16, max_delay_ms=1, max_queue=16, max_n=32, request_timeout_s=20, provider="cpu",
                    header_timeout_s=5, max_connections=64)


@pytest.fixture(scope="module")
def server(repo):
    old = os.getcwd()
    os.chdir(REPO)  # README.md in the working directory, where a bytes-loaded model used to find it
    try:
        with LiveServer(create_app(repo, SETTINGS)) as live:
            live.wait_ready()
            yield live
    finally:
        os.chdir(old)


def raw(port: int, data: bytes, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` as is and read until the server closes: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_response(sock, timeout)


def read_response(sock: socket.socket, timeout: float) -> tuple[int, dict[str, str], bytes]:
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = re.search(rb"content-length: *(\d+)", head, re.I)
            if length and len(body) >= int(length.group(1)):
                break
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


def json_error(status: int, headers: dict[str, str], body: bytes, want_status: int, field: str | None, needle: str = "") -> dict:
    assert status == want_status, (status, body[:300])
    assert headers.get("content-type", "").startswith("application/json"), headers
    payload = json.loads(body)
    assert isinstance(payload.get("error"), str) and needle in payload["error"], payload
    assert payload.get("field") == field and set(payload) <= {"error", "field"}, payload
    return payload


# --------------------------------------------------------------------------- class 1 and 4 at the server


def test_bad_model_folders_are_unavailable_and_leak_nothing(server):
    body = server.client.get("/v1/models").json()
    assert sorted(m["name"] for m in body["models"]) == ["vae", "video"]
    unavailable = {u["name"]: u["error"] for u in body["unavailable"]}
    assert sorted(unavailable) == ["deep_config", "leak_absolute", "leak_dotdot", "leak_readme"]
    assert "tensor 'w1'" in unavailable["leak_dotdot"] and "climbs out" in unavailable["leak_dotdot"]
    assert "tensor 'w1'" in unavailable["leak_absolute"] and "absolute path" in unavailable["leak_absolute"]
    assert "tensor 'w1'" in unavailable["leak_readme"] and "not a file in the model's folder" in unavailable["leak_readme"]
    assert "age.config: JSON nested" in unavailable["deep_config"]
    assert "TOP-SECRET" not in json.dumps(body)
    assert_error(server.client.post("/v1/models/leak_readme/generate", json={"n": 1}), 404, "name", "unknown model")


# --------------------------------------------------------------------------- class 3: presentation parameters


@pytest.mark.parametrize("model, body, field, needle", [
    ("vae", {"n": 2, "nrow": 10**6}, "nrow", "between 1 and n (2)"),
    ("vae", {"n": 2, "nrow": -3}, "nrow", "between 1 and n"),
    ("video", {"n": 2, "fps": 0.001}, "fps", "between 0.1 and 100"),
    ("video", {"n": 2, "fps": 1e308}, "fps", "between 0.1 and 100"),
    ("video", {"n": 2, "fps": 101}, "fps", "between 0.1 and 100"),
    ("video", {"n": 2, "nrow": 3}, "nrow", "between 1 and n (2)"),
    ("vae", {"n": 10**9}, "n", "between 1 and 32"),
    ("vae", {"n": 1, "seed": 2**64}, "seed", "between 0"),
    ("vae", {"latents": [[1e30] * LATENT]}, "latents", "within +-10000"),
])
def test_out_of_range_parameters_are_422_before_any_model_work(server, model, body, field, needle):
    before = metric_value(server.client.get("/metrics").text, "age_batch_size_count", model=model)
    start = time.monotonic()
    assert_error(server.client.post(f"/v1/models/{model}/generate", json={"format": "gif", **body}
                                    if model == "video" else body), 422, field, needle)
    assert time.monotonic() - start < 2
    assert metric_value(server.client.get("/metrics").text, "age_batch_size_count", model=model) == before


def test_variations_form_ranges(server):
    from PIL import Image
    import io

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format="PNG")
    files = {"image": ("x.png", buf.getvalue(), "image/png")}
    for data, field, needle in [
        ({"nrow": "1000000"}, "nrow", "between 1 and n (10)"),
        ({"fps": "0.001"}, "fps", "between 0.1 and 100"),
        ({"fps": "nan"}, "fps", "between 0.1 and 100"),
        ({"scale": "1e300"}, "scale", "between 0 and 100"),
        ({"scale": "inf"}, "scale", "between 0 and 100"),
        ({"seed": "-5"}, "seed", "between 0"),
    ]:
        assert_error(server.client.post("/v1/models/vae/variations", files=files, data=data), 422, field, needle)


def test_request_schema_documents_the_ranges(server):
    schema = json.dumps(server.client.get("/openapi.json").json())
    assert "images per grid row, 1..n" in schema and "0.1..100" in schema and "+-10000" in schema
    assert '"maximum": 100.0' in schema  # the variations form's fps / scale


# --------------------------------------------------------------------------- class 6: clients that leave


def test_a_client_that_leaves_is_dropped_before_inference(server, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    session = server.state.models["vae"].session
    batcher = server.state.batchers["vae"]
    calls: list[np.ndarray] = []
    release, entered = threading.Event(), threading.Event()
    original = session.decode

    def decode(latents, batch_size=None):
        calls.append(np.array(latents))
        if len(calls) == 1:
            entered.set()
            assert release.wait(30), "never released"
        return original(latents, batch_size)

    monkeypatch.setattr(session, "decode", decode)
    text = server.client.get("/metrics").text
    ok_before = metric_value(text, "age_requests_total", model="vae", endpoint="generate", status="200")
    gone_before = metric_value(text, "age_client_disconnects_total", model="vae", endpoint="generate")
    body = json.dumps({"n": 3, "seed": 2, "format": "npy"}).encode()
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(server.client.post, "/v1/models/vae/generate", json={"n": 1, "seed": 1, "format": "npy"})
        assert entered.wait(10)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"POST /v1/models/vae/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            wait_for(lambda: batcher.depth == 1, what="the second request to queue")
        # the socket is closed: the request is cancelled while it waits, before any inference
        wait_for(lambda: server.metric("age_client_disconnects_total", model="vae", endpoint="generate") == gone_before + 1,
                 what="the disconnect to be counted")
        release.set()
        assert first.result(30).status_code == 200
    wait_for(lambda: batcher.depth == 0 and batcher._running is None, what="the queue to drain")
    time.sleep(0.2)
    assert [len(z) for z in calls] == [1], "the abandoned request's latents were decoded"
    np.testing.assert_array_equal(calls[0], spec_noise.latents(1, LATENT, 1))
    assert server.metric("age_requests_total", model="vae", endpoint="generate", status="200") == ok_before + 1
    assert server.metric("age_requests_total", model="vae", endpoint="generate", status="500") == 0
    assert any("went away" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)


@pytest.mark.parametrize("endpoint, head, partial", [
    ("generate", "Content-Type: application/json\r\nContent-Length: 1000", b'{"n": 1, "se'),
    ("variations", "Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: 5000",
     b'--XyZ\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n\x89PNG\r\n'),
])
def test_a_client_that_leaves_mid_body_is_a_normal_event(server, caplog, endpoint, head, partial):
    caplog.set_level(logging.DEBUG)
    statuses = ("200", "400", "422", "500")
    text = server.client.get("/metrics").text
    counted = {s: metric_value(text, "age_requests_total", model="vae", endpoint=endpoint, status=s) for s in statuses}
    gone_before = server.metric("age_client_disconnects_total", model="vae", endpoint=endpoint)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"POST /v1/models/vae/{endpoint} HTTP/1.1\r\nHost: x\r\n{head}\r\n\r\n".encode() + partial)
        time.sleep(0.2)  # let the server start reading the body
    wait_for(lambda: server.metric("age_client_disconnects_total", model="vae", endpoint=endpoint) == gone_before + 1,
             what="the disconnect to be counted")
    time.sleep(0.1)
    text = server.client.get("/metrics").text
    for status in statuses:  # not counted as an answer of any kind
        assert metric_value(text, "age_requests_total", model="vae", endpoint=endpoint, status=status) == counted[status]
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert not noisy, [(r.name, r.getMessage()) for r in noisy]


# --------------------------------------------------------------------------- class 8: every error is JSON


@pytest.mark.parametrize("request_bytes, status, field, needle", [
    (b"POST /v1/models/vae/generate HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400, "content-length", "Content-Length"),
    (b"POST /v1/models/vae/generate HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n", 400, "content-length", "Content-Length"),
    (b"POST /v1/models/vae/generate HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400,
     "content-length", "Content-Length"),
    (b"POST /v1/models/vae/generate HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400, "content-length", ""),
    (b"POST /v1/models/vae/generate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "transfer-encoding", ""),
    (b"GET /healthz HTTP/1.1\r\n\r\n", 400, "host", "Host"),
    (b"GARBAGE\r\n\r\n", 400, None, "malformed HTTP request"),
    (b"POST /v1/models/vae/generate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, None, "chunk"),
    (b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n", 400, None, "malformed HTTP request"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", 431, "headers", "exceed 16384 bytes"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000, 431, "headers", "exceed 16384 bytes"),  # incomplete
    (b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", 404, None, "no such endpoint"),
    (b"DELETE /v1/models HTTP/1.1\r\nHost: x\r\n\r\n", 405, None, ""),
    (b"PUT /v1/models/vae/generate HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405, None, ""),
    (b"POST /v1/models/vae/variations HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi", 415,
     "image", "multipart"),
    (b"POST /v1/models/vae/variations HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data\r\nContent-Length: 2\r\n\r\nhi",
     400, None, ""),
    (b"POST /v1/models/vae/generate HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n", 413, "content-length", ""),
])
def test_every_error_is_the_documented_json_shape(server, request_bytes, status, field, needle):
    json_error(*raw(server.port, request_bytes), status, field, needle)


def test_protocol_errors_are_counted_and_close_the_connection(server):
    before = server.metric("age_connection_errors_total", reason="bad_request")
    status, headers, _ = raw(server.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n")
    assert status == 400 and headers["connection"] == "close"
    assert server.metric("age_connection_errors_total", reason="bad_request") == before + 1


def test_an_internal_error_is_json_too(server, monkeypatch):
    from runtime.server import schemas

    monkeypatch.setattr(schemas, "parse_generate", lambda *a, **k: 1 / 0)
    assert_error(server.client.post("/v1/models/vae/generate", json={"n": 1}), 500, None, "internal error")


# --------------------------------------------------------------------------- class 7: slow and idle sockets


def _open_slow(port: int, count: int, partial: bytes) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if partial:
            sock.sendall(partial)
        socks.append(sock)
    return socks


def _wait_closed(socks: list[socket.socket], timeout: float) -> list[bytes]:
    """What each socket received until the server closed it (bounded by ``timeout`` overall)."""
    got = {s: b"" for s in socks}
    open_ = set(socks)
    deadline = time.monotonic() + timeout
    while open_ and time.monotonic() < deadline:
        readable, _, _ = select.select(list(open_), [], [], 0.2)
        for sock in readable:
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            if chunk:
                got[sock] += chunk
            else:
                open_.discard(sock)
    assert not open_, f"{len(open_)} slow sockets still open after {timeout} s"
    return [got[s] for s in socks]


#: --header-timeout-s of the subprocess server: long enough that a loaded machine serves the other
#: clients well within it, short enough to keep the tests quick.
HEADER_TIMEOUT_S = 2.5


@pytest.fixture(scope="module")
def cli_server(repo):
    """``python -m runtime.serve`` with short timeouts and a small connection limit."""
    proc, port, url = start_cli_server(repo, "--header-timeout-s", str(HEADER_TIMEOUT_S), "--keep-alive-s", "1",
                                       "--max-connections", "150", "--no-access-log")
    try:
        yield port, url, proc
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_half_sent_headers_are_timed_out_while_others_are_served(cli_server):
    port, url, proc = cli_server
    partial = _open_slow(port, 120, b"POST /v1/models/vae/generate HTTP/1.1\r\nHost: x\r\nContent-Le")
    idle = _open_slow(port, 20, b"")
    try:
        start = time.monotonic()
        with httpx.Client(base_url=url, timeout=10) as client:
            assert client.get("/healthz").status_code == 200
            r = client.post("/v1/models/vae/generate", json={"n": 2, "seed": 0, "format": "npy"})
            assert r.status_code == 200
        assert time.monotonic() - start < HEADER_TIMEOUT_S - 0.3, "the other clients had to wait for the slow ones"
        answers = _wait_closed(partial + idle, timeout=HEADER_TIMEOUT_S + 8)
    finally:
        for sock in partial + idle:
            sock.close()
    assert time.monotonic() - start >= HEADER_TIMEOUT_S - 0.5
    for answer in answers[:len(partial)]:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408") and b"application/json" in head, answer[:200]
        assert json.loads(body)["field"] == "headers" and "--header-timeout-s" in json.loads(body)["error"]
    assert all(answer == b"" for answer in answers[len(partial):]), "idle sockets are closed without a word"
    metrics = httpx.get(url + "/metrics", timeout=10).text
    assert metric_value(metrics, "age_connection_errors_total", reason="header_timeout") >= len(partial)


def test_beyond_max_connections_clients_get_json_503_then_service_resumes(cli_server):
    port, url, proc = cli_server
    slow = _open_slow(port, 160, b"GET /healthz HTTP/1.1\r\nHost")  # more than --max-connections 150
    try:
        status, headers, body = raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
        payload = json_error(status, headers, body, 503, None, "--max-connections 150")
        assert headers["retry-after"] == "1" and headers["connection"] == "close" and payload
        _wait_closed(slow, timeout=HEADER_TIMEOUT_S + 8)  # the header timeout frees them
    finally:
        for sock in slow:
            sock.close()
    deadline = time.monotonic() + 5
    while httpx.get(url + "/healthz", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "service never resumed"
        time.sleep(0.1)
    metrics = httpx.get(url + "/metrics", timeout=10).text
    assert metric_value(metrics, "age_connection_errors_total", reason="too_many_connections") >= 1
    assert proc.poll() is None


def test_keep_alive_connection_must_finish_its_next_headers_too(cli_server):
    """After a response, a client that trickles one byte at a time still gets only --header-timeout-s."""
    port, url, proc = cli_server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _ = read_response(sock, 5)
        assert status == 200
        start = time.monotonic()
        sent = b""
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
            if select.select([sock], [], [], 0.05)[0] or time.monotonic() - start > HEADER_TIMEOUT_S + 5:
                break
            sock.sendall(bytes([byte]))
            sent += bytes([byte])
        status, headers, body = read_response(sock, 5)
        json_error(status, headers, body, 408, "headers", "--header-timeout-s")
        assert HEADER_TIMEOUT_S - 0.5 < time.monotonic() - start < HEADER_TIMEOUT_S + 3


def test_serve_flags_are_validated(caplog):
    from runtime import serve

    for flags, needle in [(["--header-timeout-s", "0"], "--header-timeout-s"), (["--max-connections", "0"], "--max-connections"),
                          (["--keep-alive-s", "nan"], "--keep-alive-s"), (["--max-header-bytes", "-1"], "--max-header-bytes")]:
        caplog.clear()
        assert serve.main(["/nonexistent", *flags]) == 2
        assert any(needle in r.getMessage() for r in caplog.records), flags
