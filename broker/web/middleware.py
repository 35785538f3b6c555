"""Pure ASGI middleware: the client address behind trusted proxies, request id + access log +
metrics, and the request body limit."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.errors import PayloadTooLarge
from broker.logs import get_logger
from broker.metrics import Metrics
from broker.web.client_address import TrustedProxies

log = get_logger("broker.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def _error_body(code: str, message: str, request_id: str | None) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}, "request_id": request_id}).encode()


class ClientAddress:
    """The one place that decides a request's client address (``scope["client"]``, which
    ``request.client``, rate limits, audit events and the access log read): the peer's address,
    or — only when the peer is one of ``server.trusted_proxies`` — the address its X-Forwarded-For
    or RFC 7239 Forwarded header names (broker.web.client_address). The scheme follows the
    trusted proxy's X-Forwarded-Proto / ``proto=`` the same way (cookies' Secure flag).
    uvicorn's own proxy-header handling is off (`broker serve`), so no other rule applies."""

    def __init__(self, app: ASGIApp, trusted: TrustedProxies) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if self.trusted and scope["type"] in ("http", "websocket") and client:
            headers = scope.get("headers") or ()
            address = self.trusted.client(client[0], headers)
            scheme = self.trusted.scheme(client[0], headers)
            if address != client[0] or scheme:
                scope = dict(scope)
                if address != client[0]:
                    scope["client"] = (address, 0)
                if scheme:
                    scope["scheme"] = scheme if scope["type"] == "http" else {"http": "ws", "https": "wss"}[scheme]
        await self.app(scope, receive, send)


class RequestContext:
    """Gives each request an id (a sane incoming X-Request-ID is kept), binds it to the logs,
    echoes it in the response, writes one access-log line (path without query) and metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or ()).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], template, str(status)).inc()
            self.metrics.latency.labels(scope["method"], template).observe(elapsed)
            if self.access_log and template not in ("/healthz", "/metrics"):
                client = scope.get("client")
                log.info(
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    ms=round(elapsed * 1000, 2),
                    client=client[0] if client else None,
                )
            structlog.contextvars.clear_contextvars()


class BodyLimit:
    """413 ``body_too_large`` for a body over ``max_bytes``, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = scope.get("state", {}).get("request_id")
        headers = dict(scope.get("headers") or ())
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_bytes
            except ValueError:
                await self._reject(send, 400, "bad_request", "invalid Content-Length", request_id)
                return
            if too_big:
                await self._reject(send, PayloadTooLarge.status, PayloadTooLarge.code, f"the request body exceeds {self.max_bytes} bytes", request_id)
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send, PayloadTooLarge.status, PayloadTooLarge.code, f"the request body exceeds {self.max_bytes} bytes", request_id)

    @staticmethod
    async def _reject(send: Send, status: int, code: str, message: str, request_id: Any) -> None:
        body = _error_body(code, message, request_id)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(HTTPException):
    """An HTTPException, so FastAPI's body parsing re-raises it and the JSON handler answers 413."""

    def __init__(self) -> None:
        super().__init__(413, "the request body is too large")


class SecurityHeaders:
    """Headers every response gets unless its route chose its own (SECURITY.md, caching and script rows):

    - ``X-Content-Type-Options: nosniff`` everywhere;
    - ``Cache-Control: no-store`` and ``Pragma: no-cache`` (RFC 6749 §5.1, RFC 9111): credentials,
      console sign-in URLs, tokens, device codes and portal pages are never kept by a browser or a
      proxy. Only what is public says otherwise itself (SAML metadata, OIDC discovery and JWKS,
      static assets); under /api/ and /oauth/ no-store holds whatever a route set;
    - on an HTML page without a policy of its own, the portal's strict Content-Security-Policy
      (scripts and styles from this origin only, never framed).
    """

    CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
           "frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
    _ALWAYS_NO_STORE = ("/api/", "/oauth/")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        force = scope["path"].startswith(self._ALWAYS_NO_STORE)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                have = {k.lower() for k, _ in headers}
                if force:
                    headers = [(k, v) for k, v in headers if k.lower() not in (b"cache-control", b"pragma")]
                if force or b"cache-control" not in have:
                    headers.append((b"cache-control", b"no-store"))
                    if force or b"pragma" not in have:
                        headers.append((b"pragma", b"no-cache"))
                if b"x-content-type-options" not in have:
                    headers.append((b"x-content-type-options", b"nosniff"))
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if content_type.startswith(b"text/html") and b"content-security-policy" not in have:
                    headers.append((b"content-security-policy", self.CSP.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_wrapper)
