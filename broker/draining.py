"""A worker's shutdown as the app sees it: whether the drain has begun.

``broker.serving.DrainingServer`` begins it on SIGTERM/SIGINT; from then on ``/readyz`` answers
503 ``draining`` (so a load balancer, or Kubernetes, stops sending this replica new connections)
while every other request is still served — each response then says ``Connection: close``, so a
client or proxy holding a keep-alive connection opens its next one elsewhere instead of finding
it closed when the worker stops accepting.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

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

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start" and self.drain.started:
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message["headers"] = [*headers, (b"connection", b"close")]
            await send(message)

        await self.app(scope, receive, closing)
