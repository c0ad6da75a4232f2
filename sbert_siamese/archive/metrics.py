"""Prometheus metrics of the service (``GET /metrics``): requests by endpoint and status, latency
histograms, batch sizes, and the archive's size, in a registry of the app's own (two apps in one process
do not mix their counts)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
ENDPOINTS = (
    "/",
    "/health",
    "/metrics",
    "/duplicates",
    "/questions",
    "/similarity",
    "/encode",
    "/docs",
    "/openapi.json",
)


def endpoint_of(path: str) -> str:
    """The route template of a path (a bounded label set: ids and unknown paths do not multiply it)."""
    if path.startswith("/questions/"):
        return "/questions/{id}"
    return path if path in ENDPOINTS else "other"


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, archive):
        self.archive = archive
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "sbert_siamese_requests",
            "HTTP requests answered",
            ["method", "endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "sbert_siamese_request_seconds",
            "time from request to response",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_texts = Histogram(
            "sbert_siamese_batch_texts",
            "texts encoded per model batch",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_jobs = Histogram(
            "sbert_siamese_batch_requests",
            "requests served per batch",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "sbert_siamese_batch_seconds",
            "time to process one batch",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._size = len(archive)
        Gauge(
            "sbert_siamese_archive_questions", "live questions in the archive", registry=self.registry
        ).set_function(lambda: self._size)

    def size(self) -> int:
        return self._size

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        endpoint = endpoint_of(path)
        self.requests.labels(method, endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def batch(self, jobs: int, texts: int, seconds: float) -> None:
        """Called by the worker after each batch (the archive's size is read there, not on scrape)."""
        self.batch_jobs.observe(jobs)
        self.batch_texts.observe(texts)
        self.batch_seconds.observe(seconds)
        self._size = len(self.archive.index)

    def render(self) -> bytes:
        return generate_latest(self.registry)
