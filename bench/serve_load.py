"""Load-test ``python -m runtime.serve``: concurrent clients, latency, throughput, batching, no lost requests.

    python bench/serve_load.py [--export MODEL[/VARIANT]] [--preset tiny|seed] [--repo DIR [--model NAME]]
                               [--clients 16] [--requests-per-client 50]
                               [--seconds 30] [--n-per-request 4] [--format npy] [--verify K]
                               [--max-batch 64] [--max-delay-ms 5] [--server-arg=--no-access-log ...]

1. Without ``--repo``, the ``--export`` model at ``--preset`` (default tiny) is built with core's
   initial weights (``torch_impl.init.initialize(model, --seed)``), saved and exported with
   ``export.pipeline.export_checkpoint(ckpt, REPO/NAME, "torch")`` into a temporary model
   repository. ``--export`` is ``MODEL`` (its first registered variant) or ``MODEL/VARIANT`` (a name
   from the model's ``ModelSpec.variants``); its default is the first registered model (in name
   order) whose prior is not ``"none"``, i.e. one that generates from seeds, which is what the load
   phase asks for. NAME is the model, or ``MODEL-VARIANT`` for a model with several variants. With
   ``--repo`` that repository is served as it is (``--model`` picks the model to load; default:
   the first one ``GET /v1/models`` lists).
2. ``python -m runtime.serve REPO --host 127.0.0.1 --port FREE --max-batch 64 --max-delay-ms 5``
   (plus any ``--server-arg``) starts as a subprocess, its log in a file; we wait for ``/readyz``.
3. ``--clients`` asyncio tasks share one ``httpx.AsyncClient`` (one connection each) and each sends
   up to ``--requests-per-client`` ``POST /v1/models/NAME/generate`` ``{"n", "seed", "format"}``
   requests back to back, every request with its own seed, until the count or ``--seconds`` runs out
   (requests in flight at the deadline are waited for). Latency and status of every request are
   recorded; transport failures count as errors.
4. ``GET /metrics`` before and after gives this phase's ``age_batch_size`` / ``age_batch_requests``
   histograms (and the server's own count of answers, as a cross-check).
5. With the server idle, ``runtime.load(model_dir).decode`` is timed in this process on the same
   work: the same number of images in as many equal calls as the server made (the mean coalesced
   batch, a whole number of requests), and at a full batch; the server's images/s is reported
   as a share of both.
6. ``--verify K``: K answered bodies are compared byte for byte with the server's own encoding of a
   solo ``session.generate(n, seed=seed)``.
7. SIGTERM to the server; its exit status and shutdown time are reported (CPU seconds used by this
   process and by the server during the load phase are reported too: on a small machine the
   clients compete with the server for the same cores).

"lost" = sent - (answered 200 + answered 503): anything else (other statuses, transport errors,
malformed bodies) is a lost request; the script exits 1 if any request was lost, a verified body
differed or the server did not shut down cleanly (exit 0, or killed by the SIGTERM that uvicorn
re-raises after its graceful shutdown, with "batchers drained" in its log).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import (  # noqa: E402
    CpuMeter, busy_note, cpu_count, environment, export_via_torch, median, percentile, process_cpu_s, setup_logging,
    write_json,
)

import httpx  # noqa: E402
import numpy as np  # noqa: E402

import runtime  # noqa: E402
from core import images as core_images  # noqa: E402
from core.noise import latents as seeded_latents  # noqa: E402

log = logging.getLogger("bench.serve_load")

#: seeds of the load phase start here (client c, request i -> SEED_BASE + c * R + i)
SEED_BASE = 1_000_000


# --------------------------------------------------------------------------- machine


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- repository


def default_export() -> str:
    """The first registered model (in name order) with a prior: one that generates from seeds."""
    from core.registry import MODELS

    for name, spec in sorted(MODELS.items()):
        if spec.prior != "none":
            return name
    raise SystemExit("no registered model has a prior to generate from; pass --repo")


def parse_export(target: str) -> tuple[str, str, str]:
    """``MODEL`` or ``MODEL/VARIANT`` -> (model, variant, repository folder name)."""
    from core.registry import MODELS

    model, _, variant = target.partition("/")
    if model not in MODELS:
        raise ValueError(f"--export: unknown model {model!r}; registered: {','.join(sorted(MODELS))}")
    if MODELS[model].prior == "none":
        raise ValueError(f"--export: {model} has no prior (prior 'none'); the load phase generates from seeds")
    variants = MODELS[model].variants
    variant = variant or next(iter(variants))
    if variant not in variants:
        raise ValueError(f"--export: {model} has no variant {variant!r}; it has {','.join(variants)}")
    return model, variant, model if len(variants) == 1 else f"{model}-{variant}"


def export_repo(root: Path, target: str, seed: int, preset: str = "tiny") -> tuple[Path, str]:
    """REPO/<name>/<part>.onnx from ``target`` (``MODEL[/VARIANT]``) at ``preset`` with core's initial
    weights of ``seed``; returns (REPO, name). torch is imported only here."""
    import torch_impl
    from core.registry import MODELS
    from torch_impl.init import initialize

    for logger in ("export", "torch", "onnxscript"):
        logging.getLogger(logger).setLevel(logging.WARNING)
    model, variant, name = parse_export(target)
    spec = MODELS[model]
    config = spec.config_cls.preset(preset, **spec.variants[variant])
    tmodel = initialize(torch_impl.build(model, config=config), seed).eval()
    export_via_torch(tmodel, root / "ckpt" / f"{name}_{preset}.safetensors", root / "repo" / name)
    return root / "repo", name


# --------------------------------------------------------------------------- metrics


_SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text -> {(sample name, sorted label pairs): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line.strip())
        if not m:
            continue
        labels = tuple(sorted(_LABEL.findall(m.group("labels") or "")))
        out[(m.group("name"), labels)] = float(m.group("value"))
    return out


def histogram(metrics: dict, name: str, model: str) -> dict:
    """{"buckets": {le: cumulative}, "count", "sum"} of histogram ``name`` for ``model``."""
    buckets, count, total = {}, 0.0, 0.0
    for (sample, labels), value in metrics.items():
        lab = dict(labels)
        if lab.get("model") != model:
            continue
        if sample == f"{name}_bucket":
            buckets[math.inf if lab["le"] == "+Inf" else float(lab["le"])] = value
        elif sample == f"{name}_count":
            count = value
        elif sample == f"{name}_sum":
            total = value
    return {"buckets": dict(sorted(buckets.items())), "count": count, "sum": total}


def histogram_delta(after: dict, before: dict) -> dict:
    return {
        "buckets": {le: v - before["buckets"].get(le, 0.0) for le, v in after["buckets"].items()},
        "count": after["count"] - before["count"],
        "sum": after["sum"] - before["sum"],
    }


def bucket_rows(hist: dict) -> list[tuple[str, int]]:
    """Non-cumulative (range, count) rows of a cumulative histogram, empty buckets left out."""
    rows, prev_le, prev_count = [], 0.0, 0.0
    for le, cum in hist["buckets"].items():
        n = int(round(cum - prev_count))
        if n:
            lo = int(prev_le) + 1
            hi = "inf" if math.isinf(le) else int(le)
            rows.append((f"{lo}" if lo == hi else f"{lo}-{hi}", n))
        prev_le, prev_count = le, cum
    return rows


def server_answers(metrics: dict, model: str) -> Counter:
    """status -> count of ``age_requests_total{endpoint="generate"}`` for ``model``."""
    out: Counter = Counter()
    for (sample, labels), value in metrics.items():
        lab = dict(labels)
        if sample == "age_requests_total" and lab.get("model") == model and lab.get("endpoint") == "generate":
            out[lab["status"]] += int(value)
    return out


# --------------------------------------------------------------------------- load


@dataclass
class Result:
    client: int
    index: int
    seed: int
    sent_at: float
    latency_s: float
    status: int | None  # None: no HTTP answer (transport error)
    error: str | None = None
    nbytes: int = 0
    shape_ok: bool = True


async def run_load(base_url: str, model: str, opts: argparse.Namespace, expected_shape: str,
                   keep: int) -> tuple[list[Result], dict[int, bytes], float, float]:
    """Every client's requests; returns (results, {seed: body} for the first ``keep`` 200s, t0, t1)."""
    results: list[Result] = []
    kept: dict[int, bytes] = {}
    url = f"/v1/models/{model}/generate"
    limits = httpx.Limits(max_connections=opts.clients, max_keepalive_connections=opts.clients)
    timeout = httpx.Timeout(opts.request_timeout_s, connect=10.0)
    start = time.perf_counter()
    deadline = start + opts.seconds

    async def client_task(client: httpx.AsyncClient, c: int) -> None:
        for i in range(opts.requests_per_client):
            if time.perf_counter() >= deadline:
                return
            seed = SEED_BASE + c * opts.requests_per_client + i
            body = {"n": opts.n_per_request, "seed": seed, "format": opts.format}
            t0 = time.perf_counter()
            try:
                r = await client.post(url, json=body)
            except httpx.HTTPError as exc:
                results.append(Result(c, i, seed, t0 - start, time.perf_counter() - t0, None,
                                      f"{type(exc).__name__}: {exc}"[:200]))
                continue
            dt = time.perf_counter() - t0
            res = Result(c, i, seed, t0 - start, dt, r.status_code, nbytes=len(r.content))
            if r.status_code == 200:
                res.shape_ok = r.headers.get("x-age-shape") == expected_shape and r.headers.get("x-age-seed") == str(seed)
                if len(kept) < keep:
                    kept[seed] = r.content
            elif r.status_code != 503:
                res.error = r.text[:200]
            results.append(res)

    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as client:
        await asyncio.gather(*(client_task(client, c) for c in range(opts.clients)))
    return results, kept, start, time.perf_counter()


# --------------------------------------------------------------------------- raw session


def raw_throughput(session, batch: int, n_per_request: int, seconds: float) -> dict:
    """images/s of ``session.decode`` on ``batch`` latents made of per-request seeded blocks."""
    blocks = [seeded_latents(n_per_request, session.latent_dim, 7 + i) for i in range(math.ceil(batch / n_per_request))]
    z = np.concatenate(blocks)[:batch]
    session.decode(z, batch_size=len(z))  # warm-up
    times, t_end = [], time.perf_counter() + seconds
    while time.perf_counter() < t_end or len(times) < 5:
        t0 = time.perf_counter()
        session.decode(z, batch_size=len(z))
        times.append(time.perf_counter() - t0)
    med = median(times)
    return {"batch": batch, "calls": len(times), "ms_per_call": med * 1e3, "images_per_s": batch / med}


# --------------------------------------------------------------------------- server


def start_server(repo: Path, port: int, opts: argparse.Namespace, log_path: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "runtime.serve", str(repo), "--host", "127.0.0.1", "--port", str(port),
           "--max-batch", str(opts.max_batch), "--max-delay-ms", f"{opts.max_delay_ms:g}", *opts.server_arg]
    log.info("starting: %s", " ".join(cmd))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as sink:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, env=env)


def wait_ready(proc: subprocess.Popen, base_url: str, timeout_s: float) -> float:
    t0 = time.perf_counter()
    with httpx.Client(base_url=base_url, timeout=5.0) as client:
        while time.perf_counter() - t0 < timeout_s:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with status {proc.returncode} before it was ready")
            try:
                if client.get("/readyz").status_code == 200:
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    raise RuntimeError(f"server not ready after {timeout_s:g} s")


def stop_server(proc: subprocess.Popen, timeout_s: float) -> tuple[int | None, float, bool]:
    """SIGTERM, wait; (exit status, seconds to exit, killed?)."""
    if proc.poll() is not None:
        return proc.returncode, 0.0, False
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout_s), time.perf_counter() - t0, False
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(), time.perf_counter() - t0, True


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------- report


def serve_environment() -> dict:
    """:func:`bench.common.environment` plus the HTTP stack's versions."""
    import fastapi
    import uvicorn

    return environment({"httpx": httpx.__version__, "fastapi": fastapi.__version__, "uvicorn": uvicorn.__version__})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/serve_load.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--export", default=None, metavar="MODEL[/VARIANT]",
                        help="model exported and served when no --repo is given (default: the first registered "
                             "model with a prior)")
    parser.add_argument("--repo", default=None, help="serve this model repository instead of exporting --export")
    parser.add_argument("--preset", default="tiny", choices=("tiny", "seed"),
                        help="preset of the --export model (default tiny: HTTP-bound; seed: session-bound)")
    parser.add_argument("--model", default=None,
                        help="model (folder) name to load (default: the exported one, or the first listed)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--requests-per-client", type=int, default=50, help="most requests per client (default 50)")
    parser.add_argument("--seconds", type=float, default=30.0, help="stop sending after this long (default 30)")
    parser.add_argument("--n-per-request", type=int, default=4, help="images per request (default 4)")
    parser.add_argument("--format", default="npy", choices=("npy", "png", "gif"), help="response format (default npy)")
    parser.add_argument("--verify", type=int, default=0, metavar="K",
                        help="compare K answered bodies byte for byte with a solo session.generate (default 0)")
    parser.add_argument("--max-batch", type=int, default=64, help="server --max-batch (default 64)")
    parser.add_argument("--max-delay-ms", type=float, default=5.0, help="server --max-delay-ms (default 5)")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="extra argument for runtime.serve, repeatable (e.g. --server-arg=--no-access-log)")
    parser.add_argument("--raw-seconds", type=float, default=4.0, help="time per raw session measurement (default 4)")
    parser.add_argument("--request-timeout-s", type=float, default=60.0, help="client-side timeout per request (default 60)")
    parser.add_argument("--ready-timeout-s", type=float, default=120.0, help="how long to wait for /readyz (default 120)")
    parser.add_argument("--seed", type=int, default=0, help="initial-weights seed of the exported model (default 0)")
    parser.add_argument("--server-log", default=None, help="keep the server's log here (default: a temporary file)")
    parser.add_argument("--out-json", default=None, help="also write every number (and per-request records) here")
    parser.add_argument("--log-level", default="INFO")
    opts = parser.parse_args(argv)
    if min(opts.clients, opts.requests_per_client, opts.n_per_request, opts.max_batch) < 1 or opts.verify < 0:
        parser.error("--clients, --requests-per-client, --n-per-request and --max-batch must be >= 1, --verify >= 0")
    if opts.seconds <= 0 or opts.raw_seconds <= 0:
        parser.error("--seconds and --raw-seconds must be > 0")
    if opts.repo and opts.export:
        parser.error("--export and --repo exclude each other")
    if not opts.repo:
        opts.export = opts.export or default_export()
        try:
            parse_export(opts.export)
        except ValueError as exc:
            parser.error(str(exc))
    setup_logging(opts.log_level, ("runtime", "httpx", "httpcore"))

    wall0 = time.perf_counter()
    env = serve_environment()
    with tempfile.TemporaryDirectory(prefix="bench_serve_") as tmp:
        tmp = Path(tmp)
        if opts.repo:
            repo = Path(opts.repo)
        else:
            t0 = time.perf_counter()
            repo, opts.exported = export_repo(tmp, opts.export, opts.seed, opts.preset)
            log.info("exported %s (%s) into %s in %.1fs", opts.export, opts.preset, repo, time.perf_counter() - t0)
        log_path = Path(opts.server_log) if opts.server_log else tmp / "server.log"
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        proc = start_server(repo, port, opts, log_path)
        try:
            return run(proc, repo, base_url, log_path, opts, env, wall0)
        finally:
            if proc.poll() is None:  # an exception on the way: do not leave the server behind
                stop_server(proc, 30.0)


def run(proc: subprocess.Popen, repo: Path, base_url: str, log_path: Path, opts: argparse.Namespace,
        env: dict, wall0: float) -> int:
    try:
        ready_s = wait_ready(proc, base_url, opts.ready_timeout_s)
    except RuntimeError as exc:
        log.error("%s; server log:\n%s", exc, tail(log_path))
        return 2
    with httpx.Client(base_url=base_url, timeout=30.0) as http:
        listing = http.get("/v1/models").json()
        names = [m["name"] for m in listing["models"]]
        exported = getattr(opts, "exported", None)
        model = opts.model or (exported if exported in names else names[0])
        if model not in names:
            log.error("model %r not served; the server has %s (unavailable: %s)", model, names, listing["unavailable"])
            stop_server(proc, 60.0)
            return 2
        desc = next(m for m in listing["models"] if m["name"] == model)
        log.info("server ready in %.1fs; model %s: %s/%s %s on %s", ready_s, model, desc["model"],
                 desc["generator_part"], "x".join(map(str, desc["image_shape"])), desc["provider"])
        before = parse_metrics(http.get("/metrics").text)

    frames = [desc["frames"]] if desc["frames"] else []
    expected_shape = ",".join(map(str, [opts.n_per_request, *frames, *desc["image_shape"]]))
    meter = CpuMeter(exclude=(proc.pid,))
    cpu0 = (time.process_time(), process_cpu_s(proc.pid))
    log.info("load: %d clients x up to %d requests of n=%d (%s), at most %gs", opts.clients,
             opts.requests_per_client, opts.n_per_request, opts.format, opts.seconds)
    results, kept, t_start, t_end = asyncio.run(run_load(base_url, model, opts, expected_shape, opts.verify))
    others = meter.others()
    client_cpu = time.process_time() - cpu0[0]
    server_now = process_cpu_s(proc.pid)
    server_cpu = server_now - cpu0[1] if server_now is not None and cpu0[1] is not None else float("nan")
    with httpx.Client(base_url=base_url, timeout=30.0) as http:
        after = parse_metrics(http.get("/metrics").text)

    # -- what the clients saw -------------------------------------------------------------
    sent = len(results)
    statuses = Counter(r.status for r in results)
    ok = [r for r in results if r.status == 200]
    refused = statuses.get(503, 0)
    bad_body = sum(1 for r in ok if not r.shape_ok)
    answered_ok = len(ok) - bad_body
    other = {str(k): v for k, v in statuses.items() if k not in (200, 503, None)}
    errors = Counter((r.error or "").split(":")[0] for r in results if r.status is None)
    lost = sent - (answered_ok + refused)
    window = t_end - t_start
    lat = [r.latency_s * 1e3 for r in ok]
    req_per_s = len(ok) / window
    img_per_s = len(ok) * opts.n_per_request / window

    # -- what the server says -------------------------------------------------------------
    sizes = histogram_delta(histogram(after, "age_batch_size", model), histogram(before, "age_batch_size", model))
    reqs = histogram_delta(histogram(after, "age_batch_requests", model), histogram(before, "age_batch_requests", model))
    dur = histogram_delta(histogram(after, "age_batch_duration_seconds", model),
                          histogram(before, "age_batch_duration_seconds", model))
    served = server_answers(after, model) - server_answers(before, model)
    calls = int(sizes["count"])
    mean_batch = sizes["sum"] / calls if calls else float("nan")
    mean_reqs = reqs["sum"] / reqs["count"] if reqs["count"] else float("nan")

    # -- raw session, server idle ---------------------------------------------------------
    model_dir = repo / model
    session = runtime.load(model_dir, providers=_provider_flag(opts.server_arg))
    full = min(opts.max_batch, opts.clients * opts.n_per_request)
    same = full if not calls else max(opts.n_per_request,
                                      min(full, opts.n_per_request * round(mean_batch / opts.n_per_request)))
    log.info("raw session (%s) with the server idle: batch %d (the server's mean) and %d (full)", session.provider, same, full)
    raw = {b: raw_throughput(session, b, opts.n_per_request, opts.raw_seconds) for b in dict.fromkeys((same, full))}

    # -- verify ---------------------------------------------------------------------------
    verified, mismatched = 0, []
    for seed, body in kept.items():
        want = core_images.encode(session.generate(opts.n_per_request, seed=seed), opts.format)
        if body == want:
            verified += 1
        else:
            mismatched.append(seed)

    # -- stop the server ------------------------------------------------------------------
    code, stop_s, killed = stop_server(proc, 90.0)
    drained = "batchers drained" in tail(log_path, 50)
    # uvicorn re-raises the SIGTERM it caught once its graceful shutdown is done, so "killed by
    # SIGTERM" is as clean as exit 0 (tests/runtime/test_serve.py accepts both)
    clean_exit = code in (0, -signal.SIGTERM) and drained and not killed

    # -- report ---------------------------------------------------------------------------
    out = [f"\nserve_load: {opts.clients} clients x up to {opts.requests_per_client} requests, n={opts.n_per_request} "
           f"per request, format {opts.format}, {opts.seconds:g}s budget; server --max-batch {opts.max_batch} "
           f"--max-delay-ms {opts.max_delay_ms:g} {' '.join(opts.server_arg)}".rstrip(),
           f"model {model} ({desc['model']}/{desc['generator_part']}, image {'x'.join(map(str, desc['image_shape']))}, "
           f"latent {desc['latent_dim']}, provider {desc['provider']}) from {repo}"]
    out.append("\nrequests")
    out.append(f"  sent {sent}   200 {answered_ok}   503 {refused}   other status {other or 0}   "
               f"transport errors {dict(errors) or 0}   200 with wrong shape/seed header {bad_body}")
    out.append(f"  lost = sent - (200 + 503) = {lost}{'' if lost == 0 else '   <-- FAIL'}")
    out.append(f"  server's own count (age_requests_total, generate): {dict(sorted(served.items())) or 0}")
    out.append("\nthroughput and latency (200s; window = first send to last answer)")
    header = f"  {'window s':>8} {'req/s':>8} {'images/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} {'mean ms':>8}"
    out += [header, "  " + "-" * (len(header) - 2)]
    out.append(f"  {window:>8.2f} {req_per_s:>8.1f} {img_per_s:>9.1f} {percentile(lat, 50):>8.1f} "
               f"{percentile(lat, 95):>8.1f} {percentile(lat, 99):>8.1f} {max(lat, default=float('nan')):>8.1f} "
               f"{(statistics.fmean(lat) if lat else float('nan')):>8.1f}")
    out.append(f"  CPU seconds in the window: client (this process) {client_cpu:.1f}, server {server_cpu:.1f} "
               f"(of {window * cpu_count():.1f} the machine's {cpu_count()} CPUs had)")
    out.append(f"\ncoalesced batches this phase (GET /metrics deltas): {calls} session calls, mean {mean_batch:.1f} "
               f"latents = {mean_reqs:.1f} requests per call, mean call {1e3 * dur['sum'] / max(1, dur['count']):.1f} ms")
    out.append("  age_batch_size   " + "   ".join(f"{rng}: {n}" for rng, n in bucket_rows(sizes)))
    out.append("  age_batch_requests " + "   ".join(f"{rng}: {n}" for rng, n in bucket_rows(reqs)))
    out.append(f"\nserver vs raw session (runtime.load(dir).decode in this process, server idle, {session.provider})")
    header = f"  {'raw batch':>9} {'what':<28} {'ms/call':>8} {'images/s':>9} {'server share':>12}"
    out += [header, "  " + "-" * (len(header) - 2)]
    for b, r in raw.items():
        what = ("server's mean batch" if b == same else "") + (" = " if b == same == full else "")
        what += "full batch" if b == full else ""
        out.append(f"  {b:>9} {what:<28} {r['ms_per_call']:>8.2f} {r['images_per_s']:>9.1f} "
                   f"{img_per_s / r['images_per_s']:>12.1%}")
    if opts.verify:
        status = "ok" if not mismatched and verified == opts.verify else "FAIL"
        out.append(f"\nverify: {verified} of {len(kept)} bodies byte-equal to a solo session.generate "
                   f"(asked {opts.verify}) {status}" + (f"; differing seeds {mismatched[:10]}" if mismatched else ""))
    how = ("exit 0" if code == 0 else "killed by the SIGTERM uvicorn re-raises after its graceful shutdown"
           if code == -signal.SIGTERM else f"exit status {code}")
    out.append(f"\nserver shutdown: SIGTERM -> {how} (returncode {code}) after {stop_s:.2f}s"
               f"{' (KILLED after timeout)' if killed else ''}; log says batchers drained: {'yes' if drained else 'no'}; "
               f"{'clean' if clean_exit else 'NOT CLEAN'}")
    out.append("CPU used by processes other than this one and the server during the load phase: "
               + busy_note(others, "numbers"))
    out.append("environment: " + ", ".join(f"{k} {v}" for k, v in env.items()))
    out.append(f"wall time {time.perf_counter() - wall0:.0f}s (export, server start, load, raw timing, shutdown); "
               f"/readyz answered 200 {ready_s:.1f}s after the server was started")
    print("\n".join(out), flush=True)

    failed = []
    if lost:
        failed.append(f"{lost} lost request(s)")
        for r in [r for r in results if r.status not in (200, 503) or not r.shape_ok][:5]:
            log.error("lost: client %d request %d seed %d status %s: %s", r.client, r.index, r.seed, r.status, r.error)
    if opts.verify and (mismatched or verified != opts.verify):
        failed.append(f"verify: {len(mismatched)} differing, {verified} of {opts.verify} checked")
    if not clean_exit:
        failed.append(f"server shutdown not clean (returncode {code}, drained {drained}, killed {killed})")
        log.error("server log tail:\n%s", tail(log_path))
    if opts.out_json:
        payload = {"environment": env, "options": vars(opts), "model": model, "sent": sent, "ok": answered_ok,
                   "refused": refused, "other": other, "errors": dict(errors), "lost": lost, "window_s": window,
                   "req_per_s": req_per_s, "images_per_s": img_per_s,
                   "latency_ms": {"p50": percentile(lat, 50), "p95": percentile(lat, 95), "p99": percentile(lat, 99)},
                   "batch_size": sizes, "batch_requests": reqs, "raw": raw, "verified": verified,
                   "mismatched": mismatched, "server_exit": code, "server_stop_s": stop_s,
                   "clean_exit": clean_exit, "cpu_s": {"client": client_cpu, "server": server_cpu},
                   "requests": [vars(r) for r in results]}
        write_json(opts.out_json, payload)
    if failed:
        log.error("FAILED: %s", "; ".join(failed))
        return 1
    return 0


def _provider_flag(server_args: list[str]) -> str | None:
    """The ``--provider`` passed to the server, so the raw session runs where the server does."""
    for i, arg in enumerate(server_args):
        if arg.startswith("--provider="):
            return arg.split("=", 1)[1]
        if arg == "--provider" and i + 1 < len(server_args):
            return server_args[i + 1]
    return None


if __name__ == "__main__":
    sys.exit(main())
