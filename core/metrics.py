"""Prometheus metrics, the part every process shares: registries, serving `/metrics`, who may read it.

Plain prometheus-client, one style everywhere (no django-prometheus): the web process's metrics
live in prometheus-client's default registry and are served by its `/metrics` view; the relay and
each watch process get a registry of their own (`process_registry()`), served on a 127.0.0.1 port
of their own (`serve()`). Each app defines its metrics in its own `metrics.py`.

Hot paths count per batch, not per message: a prometheus-client `observe()` costs ~1 µs and a
`.labels(...)` look-up ~0.9 µs (measured here), so counts kept in plain integers are read at scrape
time by a collector, label children are looked up once and cached, and per-message times go
through `BatchHistogram` (a bisect per value, one lock per batch).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from bisect import bisect_left
from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

log = logging.getLogger(__name__)

# Seconds, for latencies from a fraction of a millisecond (a log write) to tens of seconds (an outage).
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def process_registry() -> CollectorRegistry:
    """A registry for one long-running process: its own metrics plus CPU, memory and file descriptors."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def serve(registry: CollectorRegistry, port: int, what: str) -> bool:
    """Serve `registry` at http://127.0.0.1:`port`/metrics from a daemon thread; False (logged) if
    the port is taken: metrics never stop the process they describe."""
    try:
        start_http_server(port, addr="127.0.0.1", registry=registry)
    except OSError as exc:
        log.error("%s: metrics not served, 127.0.0.1:%d is not free (%s)", what, port, exc)
        return False
    log.info("%s: metrics at http://127.0.0.1:%d/metrics", what, port)
    return True


class BatchHistogram(Collector):
    """A histogram observed a batch of values at a time (e.g. every message's latency in a batch).

    Exposed like prometheus-client's Histogram (`_bucket`, `_sum`, `_count`), at a tenth of its
    cost per value: prometheus-client takes a lock and walks the buckets for every observation.
    """

    def __init__(self, name: str, documentation: str, buckets: Iterable[float], registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self.bounds = sorted(buckets)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0
        self.lock = threading.Lock()
        registry.register(self)

    def observe_many(self, values: Iterable[float]) -> None:
        counts, bounds, total = [0] * len(self.counts), self.bounds, 0.0
        for value in values:
            counts[bisect_left(bounds, value)] += 1  # the first bound >= value: Prometheus's `le`
            total += value
        with self.lock:
            self.counts = [mine + new for mine, new in zip(self.counts, counts, strict=True)]
            self.sum += total

    def collect(self):
        with self.lock:
            counts, total = list(self.counts), self.sum
        cumulative, buckets = 0, []
        for bound, count in zip([*map(floatToGoString, self.bounds), "+Inf"], counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=total)


# --- the web process ------------------------------------------------------------------------
REQUEST_SECONDS = Histogram(
    "labbook_web_request_seconds",
    "Time the web process took to answer an HTTP request, by view (the URL pattern's name) and method.",
    ["view", "method"],
    buckets=LATENCY_BUCKETS,
)
WEBSOCKET_CLIENTS = Gauge(
    "labbook_web_websocket_clients", "Open (accepted) websocket connections, by consumer.", ["consumer"]
)
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}  # others are counted as "other"


class RequestLatencyMiddleware:
    """Times every request by view name: a label from the URL patterns (bounded), never the path."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = match.view_name if match else "unmatched"  # a pattern's name, else its view's dotted path
        method = request.method if request.method in METHODS else "other"
        REQUEST_SECONDS.labels(view, method).observe(time.perf_counter() - started)
        return response


class CountedWebsocket:
    """Mixin for a Channels consumer: counts its accepted connections in `labbook_web_websocket_clients`
    (a connection refused in `connect`, e.g. without login, is not a client)."""

    counted = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        WEBSOCKET_CLIENTS.labels(cls.__name__)  # 0 until a client connects, rather than no series at all

    async def accept(self, *args, **kwargs) -> None:
        await super().accept(*args, **kwargs)
        self.counted = WEBSOCKET_CLIENTS.labels(type(self).__name__)
        self.counted.inc()

    async def websocket_disconnect(self, message) -> None:
        if self.counted is not None:
            self.counted.dec()
            self.counted = None
        await super().websocket_disconnect(message)


def address_allowed(address: str | None) -> bool:
    """Whether `address` lies in settings.LABBOOK_METRICS_ALLOWED_ADDRESSES (networks, default loopback)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(
        ip in ipaddress.ip_network(network, strict=False) for network in settings.LABBOOK_METRICS_ALLOWED_ADDRESSES
    )


@login_not_required
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The web process's metrics, for Prometheus: without login, from the allowed addresses only
    (anyone else gets 404, as if there were nothing here); a staff user logged in reads them anywhere."""
    if not (address_allowed(request.META.get("REMOTE_ADDR")) or request.user.is_staff):
        raise Http404("no such page")
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
