"""`awsbroker serve-credentials`: the container credentials endpoint on loopback, for
``AWS_CONTAINER_CREDENTIALS_FULL_URI`` + ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` (what the AWS
SDKs read in ECS; handy for tools that cannot run credential_process, or a dev container).

Only 127.0.0.1; every request must carry the token in ``Authorization`` (compared in constant
time), else 403. Answers the container provider's JSON (``Token``, not ``SessionToken``).
Standard library only.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from awsbroker import delivery

PATH = "/credentials"


def make_server(port: int, token: str, fetch: Callable[[], dict[str, Any]],
                on_error: Callable[[Exception], str]) -> ThreadingHTTPServer:
    """``fetch`` returns credential_process JSON (cached); ``on_error`` turns a failure into a safe message."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "awsbroker"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:  # never log requests (headers hold the token)
            return

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                self._answer(403, {"code": "forbidden", "message": "missing or wrong authorization token"})
                return
            if self.path.split("?")[0] != PATH:
                self._answer(404, {"code": "not_found", "message": f"the credentials are at {PATH}"})
                return
            try:
                creds = delivery.parse_credential_process(fetch())
            except Exception as exc:  # noqa: BLE001 - reported to the SDK as a clean 500
                self._answer(500, {"code": "unavailable", "message": on_error(exc)})
                return
            self._answer(200, delivery.container(creds))

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)
