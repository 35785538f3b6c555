"""Prometheus metrics, one registry per app (so several apps in one process never collide)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


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
        # audit forwarding (broker.audit_forward): a receiver that is down shows as a growing outbox
        self.audit_outbox_pending = Gauge(
            "broker_audit_outbox_pending", "Audit events waiting to be forwarded", ["destination"], registry=self.registry
        )
        self.audit_outbox_oldest = Gauge(
            "broker_audit_outbox_oldest_seconds", "Age of the oldest audit event waiting to be forwarded",
            ["destination"], registry=self.registry,
        )
        self.audit_forward_failures = Counter(
            "broker_audit_forward_failures_total", "Failed deliveries of an audit batch", ["destination"],
            registry=self.registry,
        )
        self.audit_forwarded = Counter(
            "broker_audit_forwarded_total", "Audit events delivered to a destination", ["destination"],
            registry=self.registry,
        )

        # break-glass (broker.break_glass): every use and refusal, by outcome (sign_in, issue, or the refusal's code)
        self.break_glass = Counter(
            "broker_break_glass_total", "Break-glass sign-ins, issuances and refusals", ["outcome"], registry=self.registry
        )

        # notifications (broker.notify): webhook deliveries, and the outbox a receiver that is down fills
        self.notifications = Counter(
            "broker_notifications_total", "Notification delivery attempts by outcome (delivered, retried, "
            "given_up: a 4xx, failed: attempts spent)", ["webhook", "outcome"], registry=self.registry,
        )
        self.notification_outbox_pending = Gauge(
            "broker_notification_outbox_pending", "Notifications waiting to be delivered", ["webhook"],
            registry=self.registry,
        )

        # readiness (broker.readiness): shared dependencies, circuit breakers, which configuration
        self.dependency_up = Gauge(
            "broker_dependency_up", "A dependency every replica shares answers (1) or not (0)", ["dependency"],
            registry=self.registry,
        )
        self.breaker_open = Gauge(
            "broker_breaker_open", "A circuit breaker refuses calls (1: open or probing) or not (0)", ["kind", "target"],
            registry=self.registry,
        )
        self.config_info = Gauge(
            "broker_config_info", "Hashes of the configuration this replica runs (compare them across replicas)",
            ["mapping_hash", "effective_config_hash"], registry=self.registry,
        )

    def observe_readiness(
        self, dependencies: Mapping[str, bool], breakers: Iterable[tuple[str, str, bool]], hashes: tuple[str, str]
    ) -> None:
        """``dependencies``: name → up; ``breakers``: (kind, target, open); ``hashes``: mapping, whole config."""
        for name, up in dependencies.items():
            self.dependency_up.labels(name).set(1 if up else 0)
        for kind, target, is_open in breakers:
            self.breaker_open.labels(kind, target).set(1 if is_open else 0)
        self.config_info.labels(*hashes).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
