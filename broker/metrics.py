"""Prometheus metrics, one registry per app (so several apps in one process never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "broker_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "broker_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.admin_writes = Counter(
            "broker_admin_writes_total", "Admin API writes", ["action", "outcome"], registry=self.registry
        )
        self.errors = Counter("broker_errors_total", "Errors answered, by stable code", ["code"], registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
