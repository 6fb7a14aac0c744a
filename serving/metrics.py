"""Prometheus metrics: requests and latency by route, the model served, the scores returned.

Recorded by a plain ASGI middleware (no ``BaseHTTPMiddleware``: it costs more than a lookup). The
route label is the path template (``/customers/{customer_id}/explanation``), never the raw path,
so ids cannot blow up the label set. With several workers, ``serving.server`` sets
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` sums all workers.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
HEALTH_BUCKETS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)


class ServingMetrics:
    """The service's metrics on their own registry (one per app, so tests can build many)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "churn_http_requests", "HTTP requests by route, method and status.",
            ["route", "method", "status"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "churn_http_request_seconds", "Server-side latency by route.", ["route"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.health = Histogram(
            "churn_health_score", "Health scores returned (0-100), by source (store / live).",
            ["source"], buckets=HEALTH_BUCKETS, registry=r,
        )  # fmt: skip
        self.tiers = Counter(
            "churn_scores_by_tier", "Scores returned by tier.", ["tier"], registry=r
        )
        self.model = Gauge(
            "churn_model_info", "1 for the model version being served.",
            ["name", "version", "alias"], registry=r, multiprocess_mode="liveall",
        )  # fmt: skip
        self.customers = Gauge(
            "churn_store_customers", "Customers in the served snapshot.",
            registry=r, multiprocess_mode="liveall",
        )  # fmt: skip
        self.reloads = Counter(
            "churn_reloads", "Reload attempts by outcome.", ["outcome"], registry=r
        )
        self.auth_failures = Counter(
            "churn_auth_failures", "Failed authentications by surface (api: X-API-Key, ui: "
            "sign-in).", ["surface"], registry=r,
        )  # fmt: skip
        self.auth_throttled = Counter(
            "churn_auth_throttled", "Attempts refused with 429 while the client backs off.",
            ["surface"], registry=r,
        )  # fmt: skip

        self.monitoring_alarms = Gauge(
            "churn_monitoring_alarms", "Alarms of the latest monitoring run, by kind.", ["kind"],
            registry=r, multiprocess_mode="liveall",
        )  # fmt: skip
        self.feature_psi = Gauge(
            "churn_monitoring_feature_psi", "PSI of each model feature, reference vs snapshot.",
            ["feature"], registry=r, multiprocess_mode="liveall",
        )  # fmt: skip
        self.feature_drifted = Gauge(
            "churn_monitoring_feature_drifted", "1 when the feature drifted significantly.",
            ["feature"], registry=r, multiprocess_mode="liveall",
        )  # fmt: skip
        self.roc_auc = Gauge(
            "churn_monitoring_roc_auc", "ROC-AUC: promised (model card), estimated (CBPE on the "
            "current scores), realised (latest closed scoring).", ["kind"], registry=r,
            multiprocess_mode="liveall",
        )  # fmt: skip
        self.silent_days = Gauge(
            "churn_monitoring_source_silent_days", "Days since each source's last record.",
            ["source"], registry=r, multiprocess_mode="liveall",
        )  # fmt: skip

    def monitored(self, report: Any) -> None:
        """Publish one :class:`training.monitoring.report.MonitoringReport`."""
        from training.monitoring.report import ALARM_KINDS

        counts = {kind: 0 for kind in ALARM_KINDS}
        for alarm in report.alarms:
            counts[alarm.kind] = counts.get(alarm.kind, 0) + 1
        for kind, count in counts.items():
            self.monitoring_alarms.labels(kind).set(count)
        self.feature_psi.clear()
        self.feature_drifted.clear()
        for row in report.features.itertuples():
            self.feature_psi.labels(str(row.feature)).set(float(row.psi))
            self.feature_drifted.labels(str(row.feature)).set(float(bool(row.significant)))
        self.roc_auc.clear()
        if "roc_auc" in report.promised:
            self.roc_auc.labels("promised").set(report.promised["roc_auc"])
        if report.estimate is not None:
            self.roc_auc.labels("estimated").set(report.estimate.roc_auc)
        if len(report.realised):
            latest = report.realised.sort_values("as_of").iloc[-1]
            self.roc_auc.labels("realised").set(float(latest["roc_auc"]))
        self.silent_days.clear()
        for row in report.freshness.itertuples():
            if row.silent_days is not None:
                self.silent_days.labels(str(row.source)).set(float(row.silent_days))

    def served(self, name: str, version: str, alias: str, customers: int) -> None:
        self.model.clear()
        self.model.labels(name, version, alias).set(1)
        self.customers.set(customers)

    def scores(self, source: str, health: np.ndarray | list[float], tiers: list[str]) -> None:
        histogram = self.health.labels(source)
        for value in np.asarray(health, dtype=float).tolist():
            histogram.observe(value)
        for tier in tiers:
            self.tiers.labels(tier).inc()

    def exposition(self) -> tuple[bytes, str]:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path_format", None) or getattr(route, "path", None)
            template = template or "unmatched"
            self.metrics.requests.labels(template, scope["method"], str(status)).inc()
            self.metrics.latency.labels(template).observe(time.perf_counter() - started)
