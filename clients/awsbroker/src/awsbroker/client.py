"""`awsbroker`'s HTTP side (httpx): the broker's device login (RFC 8628), token refresh and
revocation, and the user API. Failures become ``CliError`` with a distinct exit code and a
message that never contains a secret (no token, no credential, no console URL).
"""

from __future__ import annotations

import ipaddress
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from awsbroker import cache

CLIENT_ID = "awsbroker"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
REGION_HEADER = "X-Aws-Region"  # on a credentials answer: the account's default region
LOGIN = "run `awsbroker login`"
_ENDPOINT = re.compile(r"https?://[A-Za-z0-9.\[\]:-]+(?:/[^\s]*)?")  # one line of ~/.aws/config

# Exit codes (documented in `awsbroker --help` and the README)
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_LOGIN_REQUIRED = 3
EXIT_DENIED = 4
EXIT_UNREACHABLE = 5
EXIT_LOGIN_FAILED = 6
EXIT_BROKER = 7


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _error_text(response: httpx.Response) -> tuple[str, str]:
    """(code, message) of a broker or OAuth error body."""
    try:
        body = response.json()
    except ValueError:
        return "http_error", f"HTTP {response.status_code}"
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        return str(err.get("code", "error")), str(err.get("message", ""))
    if isinstance(body, dict) and "error" in body:
        return str(body["error"]), str(body.get("error_description", ""))
    return "http_error", f"HTTP {response.status_code}"


def _json_object(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON body, which the broker's API always makes an object."""
    body = response.json()
    if not isinstance(body, dict):
        raise CliError(f"the broker answered {response.request.url.path} with JSON that is not an object", EXIT_BROKER)
    return body


class MfaNeeded(CliError):
    """403 ``mfa_required``: the role needs a second factor of this login (``awsbroker login --mfa``)."""


def _api_error(response: httpx.Response) -> CliError:
    code, text = _error_text(response)
    status = response.status_code
    if status == 403 and code == "mfa_required":
        return MfaNeeded(f"denied ({code}): {text}", EXIT_DENIED)
    if status == 401:
        return CliError(f"login required: not signed in or the login expired ({code}): {LOGIN}", EXIT_LOGIN_REQUIRED)
    if status == 403:
        return CliError(f"denied ({code}): {text}", EXIT_DENIED)
    if status in (404, 422, 400):
        return CliError(f"refused ({code}): {text}", EXIT_DENIED if code in ("role_not_granted",) else EXIT_USAGE)
    if status == 409:
        return CliError(f"refused ({code}): {text}", EXIT_ERROR)
    if status == 429:
        return CliError(f"rate limited: {text}", EXIT_BROKER)
    return CliError(f"the broker could not do it ({code}): {text}", EXIT_BROKER)


class Broker:
    """One broker, its saved login, and the calls the CLI makes."""

    def __init__(self, url: str, *, timeout: float = 15.0, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport,
                                 headers={"User-Agent": "awsbroker"}, follow_redirects=False)

    def close(self) -> None:
        self.http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach the broker at {self.url} ({type(exc).__name__})", EXIT_UNREACHABLE) from None

    # -- RFC 8628 device login --

    def start_device_login(self, *, mfa: bool = False) -> dict[str, Any]:
        """``mfa``: a login with a second factor (the broker's approval page asks for a step-up first)."""
        data = {"client_id": CLIENT_ID} | ({"mfa": "required"} if mfa else {})
        r = self._send("POST", "/oauth/device/authorization", data=data)
        if r.status_code != 200:
            code, text = _error_text(r)
            raise CliError(f"the broker refused to start a login ({code}): {text}", EXIT_LOGIN_FAILED)
        return _json_object(r)

    def wait_for_approval(
        self,
        grant: dict[str, Any],
        *,
        sleep: Callable[[float], None] = time.sleep,
        tick: Callable[[], None] = lambda: None,
    ) -> dict[str, Any]:
        """Poll the token endpoint as RFC 8628 §3.5 says: honour ``interval``, add 5 s on ``slow_down``."""
        interval = max(1, int(grant.get("interval", 5)))
        deadline = time.monotonic() + int(grant.get("expires_in", 600))
        while time.monotonic() < deadline:
            for _ in range(interval * 10):
                sleep(0.1)
                tick()
            r = self._send("POST", "/oauth/token", data={"grant_type": DEVICE_GRANT, "device_code": grant["device_code"],
                                                         "client_id": CLIENT_ID})
            if r.status_code == 200:
                return _json_object(r)
            code, text = _error_text(r)
            if code == "authorization_pending":
                continue
            if code == "slow_down":
                interval += 5
                continue
            if code == "access_denied":
                raise CliError("the login was denied in the browser", EXIT_LOGIN_FAILED)
            if code == "expired_token":
                raise CliError("the login code expired: run `awsbroker login` again", EXIT_LOGIN_FAILED)
            raise CliError(f"the login failed ({code}): {text}", EXIT_LOGIN_FAILED)
        raise CliError("the login code expired: run `awsbroker login` again", EXIT_LOGIN_FAILED)

    def password_login(self, username: str, password: str) -> dict[str, Any]:
        r = self._send("POST", "/oauth/token", data={"grant_type": "password", "username": username,
                                                     "password": password, "client_id": CLIENT_ID})
        if r.status_code != 200:
            code, text = _error_text(r)
            if code == "unsupported_grant_type":
                raise CliError("this broker does not allow password logins: use `awsbroker login`", EXIT_LOGIN_FAILED)
            raise CliError(f"the login failed ({code}): {text}", EXIT_LOGIN_FAILED)
        return _json_object(r)

    def save_tokens(self, tokens: dict[str, Any]) -> None:
        now = time.time()
        cache.save_login({
            "url": self.url,
            "access_token": tokens["access_token"],
            "access_expires_at": now + int(tokens.get("expires_in", 0)),
            "refresh_token": tokens.get("refresh_token"),
            "refresh_expires_at": now + int(tokens.get("refresh_token_expires_in", 0) or 0),
        })

    def revoke(self, token: str) -> None:
        self._send("POST", "/oauth/revoke", data={"token": token, "client_id": CLIENT_ID})

    # -- the saved login --

    def _access_token(self, *, force_refresh: bool = False) -> str:
        login = cache.load_login()
        if not login or login.get("url") != self.url:
            raise CliError(f"login required: not logged in to {self.url}: run `awsbroker login --url {self.url}`",
                           EXIT_LOGIN_REQUIRED)
        if not login.get("access_token"):
            raise CliError(f"login required: logged out of {self.url}: {LOGIN}", EXIT_LOGIN_REQUIRED)
        if not force_refresh and login.get("access_expires_at", 0) - time.time() > 30:
            return str(login["access_token"])
        with cache.locked("login"):
            login = cache.load_login() or {}
            if not force_refresh and login.get("access_expires_at", 0) - time.time() > 30:
                return str(login["access_token"])
            refresh = login.get("refresh_token")
            if not refresh:
                raise CliError(f"login required: the login expired: {LOGIN}", EXIT_LOGIN_REQUIRED)
            r = self._send("POST", "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": refresh,
                                                         "client_id": CLIENT_ID})
            if r.status_code != 200:
                raise CliError(f"login required: the login expired or was revoked: {LOGIN}", EXIT_LOGIN_REQUIRED)
            self.save_tokens(r.json())
            return str(r.json()["access_token"])

    def call(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any) -> httpx.Response:
        """A user-API call with the saved login; one refresh-and-retry on 401. ``missing_ok``: a 404
        (a route an older broker lacks) is answered, not raised."""
        for attempt in (0, 1):
            token = self._access_token(force_refresh=attempt == 1)
            r = self._send(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)
            if r.status_code == 401 and attempt == 0:
                continue
            if r.status_code >= 400 and not (missing_ok and r.status_code == 404):
                raise _api_error(r)
            return r
        raise AssertionError("unreachable")  # pragma: no cover

    # -- what the commands need --

    def roles(self) -> list[dict[str, Any]]:
        items = self.call("GET", "/api/v1/roles").json()
        if not isinstance(items, list) or not all(isinstance(r, dict) for r in items):
            raise CliError("the broker answered /api/v1/roles with JSON that is not a list of roles", EXIT_BROKER)
        return items

    def whoami(self) -> dict[str, Any]:
        return _json_object(self.call("GET", "/api/v1/whoami"))

    def cli_config(self) -> dict[str, Any]:
        """``{"sandbox", "endpoint_url"}``: the sandbox's STS endpoint for the profiles (none for AWS)."""
        r = self.call("GET", "/api/v1/cli-config", missing_ok=True)
        body = r.json() if r.status_code == 200 else {}
        endpoint = body.get("endpoint_url") if isinstance(body, dict) else None
        if endpoint is not None and not (isinstance(endpoint, str) and _ENDPOINT.fullmatch(endpoint)):
            raise CliError(f"the broker named an unusable STS endpoint ({endpoint!r:.80})", EXIT_BROKER)
        return {"sandbox": bool(endpoint), "endpoint_url": endpoint}

    def issue(self, account: str, role: str, duration: int | None = None) -> tuple[dict[str, Any], str | None]:
        """(credential_process JSON, the account's default region as the broker says)."""
        body: dict[str, Any] = {"account": account, "role": role}
        if duration is not None:
            body["duration_seconds"] = duration
        r = self.call("POST", "/api/v1/credentials", json=body)
        return _json_object(r), r.headers.get(REGION_HEADER) or None

    def credentials(self, account: str, role: str, duration: int | None = None) -> dict[str, Any]:
        return self.issue(account, role, duration)[0]

    def cached_credentials(self, account: str, role: str, *, now: datetime | None = None) -> dict[str, Any]:
        """credential_process JSON from the cache, or fresh from the broker (then cached, 0600)."""
        path = cache.credentials_path(self.url, account, role)
        found = cache.fresh_credentials(path, now=now)
        if found is not None:
            return found
        with cache.locked("credentials"):
            found = cache.fresh_credentials(path, now=now or datetime.now(UTC))
            if found is not None:
                return found
            creds = self.credentials(account, role)
            cache.save_credentials(path, creds)
            return creds

    def request_access(self, account: str, role: str, *, reason: str, duration: str | None,
                       ticket: str | None) -> dict[str, Any]:
        """A request for an eligible role (just-in-time access): the request as the broker stored it."""
        body: dict[str, Any] = {"account": account, "role": role, "reason": reason}
        if duration is not None:
            body["duration"] = int(duration) if duration.isdigit() else duration
        if ticket is not None:
            body["ticket"] = ticket
        return _json_object(self.call("POST", "/api/v1/requests", json=body))

    def access_request(self, request_id: int) -> dict[str, Any]:
        return _json_object(self.call("GET", f"/api/v1/requests/{int(request_id)}"))

    def console(self, account: str, role: str, service: str | None, region: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"account": account, "role": role}
        if service:
            body["service"] = service
        if region:
            body["region"] = region
        return _json_object(self.call("POST", "/api/v1/console", json=body))


def broker_url(explicit: str | None) -> str:
    """--url, else $AWSBROKER_URL, else the broker of the saved login."""
    url = explicit or os.environ.get("AWSBROKER_URL")
    if not url:
        login = cache.load_login()
        url = login.get("url") if login else None
    if not url:
        raise CliError("which broker? pass --url https://broker.example.com or set AWSBROKER_URL", EXIT_USAGE)
    if "://" not in url:
        scheme = "http" if _loopback(urlsplit("//" + url).hostname or "") else "https"
        raise CliError(f"the broker URL needs a scheme: did you mean {scheme}://{url}?", EXIT_USAGE)
    if not url.startswith(("https://", "http://")):
        raise CliError("the broker URL must start with https:// (http:// only for a local broker)", EXIT_USAGE)
    return url.rstrip("/")


def _loopback(host: str) -> bool:
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
