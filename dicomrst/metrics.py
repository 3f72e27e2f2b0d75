"""Prometheus metrics, correct across gunicorn workers.

Under gunicorn each worker is its own process, so the counters live in prometheus_client's
multiprocess files (``PROMETHEUS_MULTIPROC_DIR``, set by etc/gunicorn.conf.py) and ``/metrics`` adds up
every worker's, whichever worker answers. Without that variable (tests, a single process) the
ordinary in-process registry is used.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter("dicomrst_http_requests_total", "HTTP requests answered, by route and status",
                        ["route", "status"])
HTTP_RESPONSE_BYTES = Counter("dicomrst_http_response_bytes_total", "Bytes of response bodies sent, by route",
                              ["route"])
HTTP_DURATION = Histogram("dicomrst_http_request_seconds", "Time from request to the last byte sent, by route",
                          ["route"], buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
DIMSE_OPERATIONS = Counter("dicomrst_dimse_operations_total", "DIMSE operations, by AET, operation and outcome",
                           ["aet", "operation", "outcome"])
DIMSE_DURATION = Histogram("dicomrst_dimse_operation_seconds", "Duration of DIMSE operations, by AET and operation",
                           ["aet", "operation"], buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
ASSOCIATIONS_OPEN = Gauge("dicomrst_associations_open", "Associations open to each PACS", ["aet"],
                          multiprocess_mode="livesum")
MOVES_IN_FLIGHT = Gauge("dicomrst_moves_in_flight", "C-MOVE retrievals under way, by AET", ["aet"],
                        multiprocess_mode="livesum")

CACHE_REQUESTS = Counter(
    "dicomrst_cache_requests_total",
    "WADO-RS requests through the retrieve cache, by AET and outcome: hit (served from disk), miss (started "
    "a retrieval), join (joined a retrieval in flight)", ["aet", "outcome"])
CACHE_SERVED_BYTES = Counter("dicomrst_cache_served_bytes_total", "Bytes of instances and frames read from the "
                             "retrieve cache for responses, by AET", ["aet"])
RETRIEVED_BYTES = Counter("dicomrst_retrieved_bytes_total", "Bytes of instances retrieved from each PACS into "
                          "the retrieve cache, by AET", ["aet"])
CACHE_EVICTIONS = Counter("dicomrst_cache_evictions_total", "Entries the retrieve cache evicted (size) or "
                          "expired (age), by AET", ["aet"])
CACHE_BYTES = Gauge("dicomrst_cache_bytes", "Size of the retrieve cache on disk, by AET", ["aet"],
                    multiprocess_mode="mostrecent")

ROUTE_ENVIRON = "dicomrst.route"


@contextmanager
def dimse_operation(aet: str, operation: str) -> Iterator[None]:
    """Count and time one DIMSE operation; an exception counts it as failed."""
    started = time.monotonic()
    outcome = "error"
    try:
        yield
        outcome = "success"
    except GeneratorExit:
        outcome = "cancelled"
        raise
    finally:
        DIMSE_OPERATIONS.labels(aet, operation, outcome).inc()
        DIMSE_DURATION.labels(aet, operation).observe(time.monotonic() - started)


def observe_request(environ: dict[str, Any], status: str, sent: int, duration: float) -> None:
    """A RequestLog observer: the request by the route that served it (not its path, which holds UIDs)."""
    route = environ.get(ROUTE_ENVIRON, "unmatched")
    HTTP_REQUESTS.labels(route, status).inc()
    HTTP_RESPONSE_BYTES.labels(route).inc(sent)
    HTTP_DURATION.labels(route).observe(duration)


def render() -> tuple[bytes, str]:
    """The Prometheus text exposition of every worker's metrics."""
    if os.environ.get(MULTIPROCESS_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
