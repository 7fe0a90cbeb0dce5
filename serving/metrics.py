"""Prometheus metrics: requests, latency, estimates (and by A/B arm), predicted prices, model
versions.

Under gunicorn every worker is its own process, so the metrics live in prometheus-client's
multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, set up by gunicorn.conf.py) and `/metrics` adds up
all live workers. Without that variable (tests, a single process) each app keeps its own registry.
"""

from __future__ import annotations

import bisect
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
PRICE_BUCKETS = (
    1_000,
    2_500,
    5_000,
    7_500,
    10_000,
    15_000,
    20_000,
    30_000,
    50_000,
    75_000,
    100_000,
    200_000,
)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def observe_many(histogram: Histogram, amounts: list[float]) -> None:
    """Observe many values with one update per bucket instead of one per value.

    Each observation takes a lock and, under gunicorn, writes shared memory: a 1,000-listing
    batch would pay that 2,000 times. The counts are the same as observing one by one.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if len(amounts) < 8 or bounds is None or buckets is None or total is None:
        for amount in amounts:
            histogram.observe(amount)
        return
    counts = [0] * len(bounds)
    for amount in amounts:
        counts[bisect.bisect_left(bounds, amount)] += 1  # first bound >= amount, as observe()
    total.inc(sum(amounts))
    for bucket, count in zip(buckets, counts, strict=True):
        if count:
            bucket.inc(count)


class Metrics:
    """The service's metrics, registered in one registry."""

    def __init__(self):
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "carprice_http_requests_total",
            "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "carprice_http_request_duration_seconds",
            "Time to answer an HTTP request, by route and status.",
            ["route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.estimates = Counter(
            "carprice_estimates_total", "Estimates returned, by status.", ["status"], registry=r
        )
        self.prices = Histogram(
            "carprice_predicted_price_euros",
            "Predicted prices of the estimates returned (EUR).",
            buckets=PRICE_BUCKETS,
            registry=r,
        )
        self.model_info = Gauge(
            "carprice_model_info",
            "The model versions being served (1 per role and version).",
            ["role", "version"],
            multiprocess_mode="livemax",
            registry=r,
        )
        self.challenger_failures = Counter(
            "carprice_challenger_failures_total",
            "Requests the shadow challenger failed to score (callers are unaffected).",
            registry=r,
        )
        self.feedback = Counter("carprice_feedback_total", "Feedback records stored.", registry=r)
        self.store_failures = Counter(
            "carprice_store_failures_total",
            "Store operations that failed (the store was unreachable or refused the write).",
            ["operation"],
            registry=r,
        )
        self.spooled = Counter(
            "carprice_spooled_rows_total",
            "Rows written to the local spool because the store failed (by kind).",
            ["kind"],
            registry=r,
        )
        self.drained = Counter(
            "carprice_spool_drained_total",
            "Spooled rows moved into the store (by kind).",
            ["kind"],
            registry=r,
        )
        self.spool_rows = Gauge(
            "carprice_spool_rows",
            "Rows waiting in the local spool for the store.",
            multiprocess_mode="livemax",
            registry=r,
        )
        self.spool_oldest_age = Gauge(
            "carprice_spool_oldest_age_seconds",
            "Age of the oldest row waiting in the local spool (0 when empty).",
            multiprocess_mode="livemax",
            registry=r,
        )
        self.spool_full = Counter(
            "carprice_spool_full_total",
            "Requests answered 503 because the spool was full.",
            registry=r,
        )
        self.arm_estimates = Counter(
            "carprice_ab_estimates_total",
            "Estimates priced in A/B mode, by arm (champion or challenger).",
            ["arm"],
            registry=r,
        )
        self._children: dict[tuple, tuple] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:  # labels() is a locked lookup: resolve each combination once
            code = str(status)
            children = (self.requests.labels(route, method, code), self.latency.labels(route, code))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_estimates(self, results: list[dict]) -> None:
        counts: dict[str, int] = {}
        prices = []
        for result in results:
            status = result["status"]
            counts[status] = counts.get(status, 0) + 1
            if status == "ok":
                prices.append(result["price"])
        for status, count in counts.items():
            self.estimates.labels(status).inc(count)
        observe_many(self.prices, prices)

    def observe_arms(self, arms: list[str]) -> None:
        """Count one A/B request's estimates by arm."""
        challenger = arms.count("challenger")
        if challenger:
            self.arm_estimates.labels("challenger").inc(challenger)
        if len(arms) > challenger:
            self.arm_estimates.labels("champion").inc(len(arms) - challenger)

    def render(self) -> tuple[bytes, str]:
        """Return the exposition text and its content type."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
