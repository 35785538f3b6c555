"""A worker's shutdown as the app sees it: whether the drain has begun.

``broker.serving.DrainingServer`` begins it on SIGTERM/SIGINT; from then on ``/readyz`` answers
503 ``draining`` (so a load balancer, or Kubernetes, stops sending this replica new connections)
while every other request is still served — each response then says ``Connection: close``, so a
client or proxy holding a keep-alive connection opens its next one elsewhere instead of finding
it closed when the worker stops accepting. A request still running when the grace period ends
(uvicorn then cancels it) gets 503 ``shutting_down`` if nothing of its answer was sent yet, instead
of uvicorn's plain-text 500; one whose answer had begun (an export stream) is cut.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from broker.errors import ShuttingDown

LIFESPAN_STATE_KEY = "broker.drain"
"""The app's ``Drain`` in the ASGI lifespan state: how the server reaches the app it serves."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Drain:
    """Set once, from a signal handler (an Event: nothing but a flag, safe there)."""

    def __init__(self) -> None:
        self._started = threading.Event()

    def begin(self) -> None:
        self._started.set()

    @property
    def started(self) -> bool:
        return self._started.is_set()


class CloseWhileDraining:
    """ASGI middleware: while draining, every HTTP response carries ``Connection: close``
    (uvicorn then closes the connection after it)."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app, self.drain = app, drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = False

        async def closing(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if self.drain.started:
                    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                    message["headers"] = [*headers, (b"connection", b"close")]
            await send(message)

        try:
            await self.app(scope, receive, closing)
        except asyncio.CancelledError:
            if not self.drain.started or started:
                raise
            # uvicorn's cancel at the end of the grace period: this task's last act is the answer
            # (swallowed, not re-raised: uvicorn would log it as an application error and send a 500)
            for message in _shutting_down(scope):
                await send(message)


def _shutting_down(scope: Scope) -> list[Message]:
    """503 ``shutting_down`` in the broker's error shape, with the request id when it has one."""
    error = ShuttingDown()
    state = scope.get("state") or {}
    request_id = state.get("request_id") if isinstance(state, dict) else None
    body = json.dumps({"error": {"code": error.code, "message": error.message}, "request_id": request_id}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store"), (b"connection", b"close")]
    if isinstance(request_id, str):
        headers.append((b"x-request-id", request_id.encode()))
    return [{"type": "http.response.start", "status": error.status, "headers": headers},
            {"type": "http.response.body", "body": body}]
