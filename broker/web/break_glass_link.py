"""Whether the sign-in page shows its small link to ``/break-glass`` (``broker.web.break_glass``)."""

from __future__ import annotations

from broker.connectors.base import BreakerConnector
from broker.services import Services


def break_glass_offered(services: Services, *, directory_down: bool = False) -> bool:
    """Whether the sign-in page shows the break-glass link: accounts are configured and the
    directory is unavailable (a sign-in just said so, or every server's circuit breaker is open)."""
    if services.flow.break_glass is None or not services.flow.break_glass.config.accounts:
        return False
    if directory_down:
        return True
    directory = services.directory
    states = directory.breakers() if isinstance(directory, BreakerConnector) else []
    return bool(states) and all(b.state != "closed" for b in states)
