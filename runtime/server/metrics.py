"""Prometheus metrics written by hand (text exposition format 0.0.4), no client library.

Only what the server needs: counters, gauges and histograms with labels, a registry that renders
them, and an ASGI middleware that counts and times every HTTP request.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from bisect import bisect_left
from typing import Any, Callable, Iterable

from .disconnect import ClientGone

log = logging.getLogger("runtime.serve")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LabelValues = tuple[str, ...]


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: Iterable[str], values: Iterable[str]) -> str:
    pairs = [f'{n}="{_escape(str(v))}"' for n, v in zip(names, values, strict=True)]
    return "{" + ",".join(pairs) + "}" if pairs else ""


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help_text: str, labelnames: tuple[str, ...] = ()):
        self.name = name
        self.help = help_text
        self.labelnames = tuple(labelnames)
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, Any]) -> LabelValues:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name}: labels {sorted(labels)} != {sorted(self.labelnames)}")
        return tuple(str(labels[n]) for n in self.labelnames)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def render(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str, labelnames: tuple[str, ...] = ()):
        super().__init__(name, help_text, labelnames)
        self._values: dict[LabelValues, float] = {}

    def inc(self, amount: float = 1.0, **labels: Any) -> None:
        if amount < 0:
            raise ValueError(f"{self.name}: a counter only goes up")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_labels(self.labelnames, k)} {_fmt(v)}" for k, v in items]


class Gauge(Counter):
    kind = "gauge"

    def inc(self, amount: float = 1.0, **labels: Any) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def dec(self, amount: float = 1.0, **labels: Any) -> None:
        self.inc(-amount, **labels)

    def set(self, value: float, **labels: Any) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_text: str, labelnames: tuple[str, ...], buckets: Iterable[float]):
        super().__init__(name, help_text, labelnames)
        self.buckets = tuple(sorted(float(b) for b in buckets))
        if "le" in self.labelnames or not self.buckets:
            raise ValueError(f"{self.name}: needs buckets and no label named 'le'")
        # per label set: [count per finite bucket (non-cumulative) ..., +Inf overflow], sum
        self._data: dict[LabelValues, tuple[list[int], list[float]]] = {}

    def observe(self, value: float, **labels: Any) -> None:
        key = self._key(labels)
        index = bisect_left(self.buckets, value)  # first bucket with le >= value
        with self._lock:
            counts, total = self._data.setdefault(key, ([0] * (len(self.buckets) + 1), [0.0]))
            counts[index] += 1
            total[0] += value

    def render(self) -> list[str]:
        with self._lock:
            items = sorted((k, (list(c), t[0])) for k, (c, t) in self._data.items())
        lines = []
        for key, (counts, total) in items:
            running = 0
            for le, c in zip((*self.buckets, math.inf), counts, strict=True):
                running += c
                names, values = (*self.labelnames, "le"), (*key, _fmt(le))
                lines.append(f"{self.name}_bucket{_labels(names, values)} {running}")
            lines.append(f"{self.name}_sum{_labels(self.labelnames, key)} {_fmt(total)}")
            lines.append(f"{self.name}_count{_labels(self.labelnames, key)} {running}")
        return lines


class Registry:
    def __init__(self) -> None:
        self._metrics: list[_Metric] = []

    def add(self, metric: _Metric) -> Any:
        if any(m.name == metric.name for m in self._metrics):
            raise ValueError(f"metric {metric.name} registered twice")
        self._metrics.append(metric)
        return metric

    def render(self) -> str:
        lines: list[str] = []
        for metric in self._metrics:
            lines += metric.header() + metric.render()
        return "\n".join(lines) + "\n"


LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServerMetrics:
    """Every metric the server exports, on one registry."""

    def __init__(self) -> None:
        r = self.registry = Registry()
        self.requests = r.add(Counter("age_requests_total", "HTTP requests by model, endpoint and status code.", ("model", "endpoint", "status")))
        self.latency = r.add(Histogram("age_request_duration_seconds", "HTTP request latency in seconds.", ("model", "endpoint"), LATENCY_BUCKETS))
        self.in_flight = r.add(Gauge("age_requests_in_flight", "HTTP requests being handled now."))
        self.queue_depth = r.add(Gauge("age_queue_depth", "Requests waiting for a batch, per model.", ("model",)))
        self.queue_latents = r.add(Gauge("age_queue_latents", "Latents waiting for a batch, per model.", ("model",)))
        self.batch_size = r.add(Histogram("age_batch_size", "Latents decoded per coalesced session call.", ("model",), SIZE_BUCKETS))
        self.batch_requests = r.add(Histogram("age_batch_requests", "Requests coalesced into one session call.", ("model",), SIZE_BUCKETS))
        self.batch_duration = r.add(Histogram("age_batch_duration_seconds", "Seconds one coalesced session call took.", ("model",), LATENCY_BUCKETS))
        self.rejected = r.add(Counter("age_queue_rejected_total", "Requests refused because the model's queue was full.", ("model",)))
        self.ready = r.add(Gauge("age_model_ready", "1 once the model answered its warm-up call, else 0.", ("model",)))
        self.disconnects = r.add(Counter(
            "age_client_disconnects_total",
            "Requests whose client went away before its response was complete (dropped, not in age_requests_total).",
            ("model", "endpoint")))
        self.connection_errors = r.add(Counter(
            "age_connection_errors_total",
            "Connections the HTTP layer answered itself and closed: bad_request (malformed HTTP), "
            "header_timeout (--header-timeout-s), too_many_connections (--max-connections).", ("reason",)))

    def render(self) -> str:
        return self.registry.render()


class MetricsMiddleware:
    """ASGI middleware: count and time every HTTP request (outermost, so refusals are counted too).

    ``classify(path) -> (model, endpoint)`` keeps label values bounded (unknown models and paths
    collapse to fixed values). A request whose client went away (:class:`ClientGone`, raised by
    :class:`~runtime.server.disconnect.DisconnectMiddleware`) is a normal event: one info line,
    ``age_client_disconnects_total``, no status code, no traceback.
    """

    def __init__(self, app: Any, metrics: ServerMetrics, classify: Callable[[str], tuple[str, str]]):
        self.app = app
        self.metrics = metrics
        self.classify = classify

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        model, endpoint = self.classify(scope.get("path", ""))
        status = 500
        start = time.perf_counter()

        async def send_and_watch(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        gone = False
        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_and_watch)
        except ClientGone as exc:
            gone = True
            log.info("client %s went away before the response to %s %s was complete (%s); dropped",
                     _client(scope), scope.get("method"), scope.get("path"), exc)
        finally:
            self.metrics.in_flight.dec()
            if gone:
                self.metrics.disconnects.inc(model=model, endpoint=endpoint)
            else:
                self.metrics.requests.inc(model=model, endpoint=endpoint, status=str(status))
                self.metrics.latency.observe(time.perf_counter() - start, model=model, endpoint=endpoint)


def _client(scope: dict) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "?"
