"""An HTTPS webhook destination: one POST per batch, ``{"events": [event, …]}`` as JSON.

Any 2xx means delivered. Anything else — a 4xx included, the receiver may be misconfigured for
a while — keeps the batch in the outbox and is retried with back-off (the status is logged);
events are never dropped. TLS is always verified (``ca_file`` for a private CA). Header values
come from the environment (``headers_env``) and are never logged.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from broker import __version__
from broker.audit_forward.config import WebhookDestination
from broker.audit_forward.errors import DeliveryFailed
from broker.errors import ConfigError


def missing_headers(dest: WebhookDestination, env: Mapping[str, str], *, path: str) -> list[str]:
    """A problem per ``headers_env`` variable that is not set (``broker check-config`` and start-up)."""
    return [f"{path}.headers_env.{h}: environment variable {v} is not set" for h, v in dest.headers_env.items()
            if not env.get(v)]


def header_values(dest: WebhookDestination, env: Mapping[str, str], *, path: str) -> dict[str, str]:
    """The headers named by ``headers_env``, their values from ``env`` (ConfigError names a missing one)."""
    missing = missing_headers(dest, env, path=path)
    if missing:
        raise ConfigError(missing)
    return {header: env[var] for header, var in dest.headers_env.items()}


class WebhookSender:
    def __init__(self, dest: WebhookDestination, *, headers: Mapping[str, str]) -> None:
        self.dest = dest
        self._verify: ssl.SSLContext | bool = True
        if dest.ca_file is not None:
            self._verify = ssl.create_default_context(cafile=str(dest.ca_file))
        self._headers = {"Content-Type": "application/json", "User-Agent": f"federation-broker/{__version__}",
                         **headers}
        self._client = self._new_client()

    def _new_client(self) -> httpx.Client:
        return httpx.Client(verify=self._verify, timeout=httpx.Timeout(self.dest.timeout_seconds),
                            follow_redirects=False, trust_env=False, headers=self._headers)

    def send(self, events: Sequence[dict[str, Any]]) -> None:
        body = json.dumps({"events": list(events)}, ensure_ascii=False, separators=(",", ":"), default=str)
        if self._client.is_closed:  # an app's lifespan ended, then began again (test clients)
            self._client = self._new_client()
        try:
            response = self._client.post(self.dest.url, content=body.encode("utf-8"))
        except httpx.HTTPError as exc:
            raise DeliveryFailed(type(exc).__name__) from None
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"HTTP {response.status_code}")

    def close(self) -> None:
        self._client.close()
