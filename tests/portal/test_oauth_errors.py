"""RFC 6749 §5.2 / RFC 8628 §3.5 errors (broker.oauth.errors): each class's ``error`` code and
status, and the device-login endpoints answering every case with exactly that body."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

import broker.oauth.errors as oauth_errors
from broker.domain import Identity
from broker.oauth.errors import (
    AccessDenied,
    AuthorizationPending,
    DeviceStartsLimited,
    ExpiredToken,
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    OAuthError,
    PasswordGrantLimited,
    SlowDown,
    UnsupportedGrantType,
)
from tests.portal.conftest import ALICE_PW, DEVICE_GRANT

pytestmark = pytest.mark.sts

TABLE: dict[type[OAuthError], tuple[str, int]] = {
    OAuthError: ("server_error", 400),
    InvalidRequest: ("invalid_request", 400),  # RFC 6749 §5.2
    InvalidClient: ("invalid_client", 400),
    InvalidGrant: ("invalid_grant", 400),
    UnsupportedGrantType: ("unsupported_grant_type", 400),
    AccessDenied: ("access_denied", 400),  # RFC 8628 §3.5
    AuthorizationPending: ("authorization_pending", 400),
    SlowDown: ("slow_down", 400),
    ExpiredToken: ("expired_token", 400),
    DeviceStartsLimited: ("slow_down", 429),  # the broker's rate limits, as answered before these classes
    PasswordGrantLimited: ("rate_limited", 429),
}


@pytest.mark.parametrize(("cls", "error", "status"), [(c, e, s) for c, (e, s) in TABLE.items()],
                         ids=lambda v: v.__name__ if inspect.isclass(v) else str(v))
def test_each_oauth_error_has_its_rfc_code_and_status(cls: type[OAuthError], error: str, status: int) -> None:
    assert (cls.error, cls.status) == (error, status)
    exc = cls("polling too fast")
    assert exc.body() == {"error": error, "error_description": "polling too fast"}
    assert cls().body() == {"error": error}  # no description, no error_description
    assert exc.headers() == {"Cache-Control": "no-store", "Pragma": "no-cache"}
    assert cls("x", retry_after=7).headers()["Retry-After"] == "7"


def test_the_table_has_every_class() -> None:
    classes = {c for c in vars(oauth_errors).values() if inspect.isclass(c) and issubclass(c, OAuthError)}
    assert classes == set(TABLE)


def test_a_description_keeps_to_the_rfc_characters() -> None:
    assert InvalidGrant('the "code" \\ … expired').body()["error_description"] == "the ?code? ? ? expired"


# ---- the live endpoints answer each case with that body ----


def _start(client: Any) -> dict[str, Any]:
    r = client.post("/oauth/device/authorization", data={"client_id": "awsbroker"})
    assert r.status_code == 200
    return dict(r.json())


def _poll(client: Any, grant: dict[str, Any]) -> Any:
    return client.post("/oauth/token", data={"grant_type": DEVICE_GRANT, "device_code": grant["device_code"],
                                              "client_id": "awsbroker"})


def _token(client: Any, **data: str) -> Any:
    return client.post("/oauth/token", data=data)


def _pending(build: Callable[..., Any], clock: Any) -> Any:
    portal = build()
    return _poll(portal, _start(portal))


def _slow_down(build: Callable[..., Any], clock: Any) -> Any:
    portal = build()
    grant = _start(portal)
    _poll(portal, grant)
    return _poll(portal, grant)  # the same instant


def _denied(build: Callable[..., Any], clock: Any) -> Any:
    portal = build()
    grant = _start(portal)
    alice = Identity(source="people", id="id-alice", username="alice")
    assert portal.app.state.services.access.devices.decide(grant["user_code"], identity=alice, approve=False)
    return _poll(portal, grant)


def _expired(build: Callable[..., Any], clock: Any) -> Any:
    portal = build()
    grant = _start(portal)
    clock.advance(601)
    return _poll(portal, grant)


def _password_limited(build: Callable[..., Any], clock: Any) -> Any:
    headless = build(api={"password_login": True}, rate_limits={"login_failures_per_user": 1, "known_address_days": 0})
    data = {"grant_type": "password", "username": "alice", "password": "guess", "client_id": "awsbroker"}
    assert _token(headless, **data).json()["error"] == "invalid_grant"
    return _token(headless, **data | {"password": ALICE_PW})  # even the right password waits


def _starts_limited(build: Callable[..., Any], clock: Any) -> Any:
    portal = build(rate_limits={"device_authorizations_per_address": 1, "known_address_days": 0})
    _start(portal)
    return portal.post("/oauth/device/authorization", data={"client_id": "awsbroker"})


CASES: list[tuple[str, Callable[[Callable[..., Any], Any], Any], type[OAuthError]]] = [
    ("token: no grant_type", lambda b, c: _token(b()), InvalidRequest),
    ("token: another client", lambda b, c: _token(b(), grant_type=DEVICE_GRANT, client_id="someone-else"),
     InvalidClient),
    ("token: authorization_code", lambda b, c: _token(b(), grant_type="authorization_code", client_id="awsbroker"),
     UnsupportedGrantType),
    ("token: password grant off", lambda b, c: _token(b(), grant_type="password", username="alice",
                                                      password=ALICE_PW, client_id="awsbroker"), UnsupportedGrantType),
    ("token: malformed device code", lambda b, c: _token(b(), grant_type=DEVICE_GRANT, client_id="awsbroker",
                                                         device_code="x" * 300), InvalidGrant),
    ("token: unknown device code", lambda b, c: _token(b(), grant_type=DEVICE_GRANT, client_id="awsbroker",
                                                       device_code="x"), ExpiredToken),
    ("token: unknown refresh token", lambda b, c: _token(b(), grant_type="refresh_token", client_id="awsbroker",
                                                         refresh_token="brt_x"), InvalidGrant),
    ("token: wrong password", lambda b, c: _token(b(api={"password_login": True}), grant_type="password",
                                                  username="alice", password="guess", client_id="awsbroker"),
     InvalidGrant),
    ("token: password grant without password", lambda b, c: _token(b(api={"password_login": True}),
                                                                   grant_type="password", username="alice",
                                                                   client_id="awsbroker"), InvalidRequest),
    ("token: pending", _pending, AuthorizationPending),
    ("token: too fast", _slow_down, SlowDown),
    ("token: denied", _denied, AccessDenied),
    ("token: expired", _expired, ExpiredToken),
    ("token: password guessing", _password_limited, PasswordGrantLimited),
    ("device authorization: no client_id", lambda b, c: b().post("/oauth/device/authorization", data={}),
     InvalidRequest),
    ("device authorization: another client",
     lambda b, c: b().post("/oauth/device/authorization", data={"client_id": "someone-else"}), InvalidClient),
    ("device authorization: too many starts", _starts_limited, DeviceStartsLimited),
]


@pytest.mark.parametrize(("case", "cls"), [(name, cls) for name, _, cls in CASES], ids=[name for name, *_ in CASES])
def test_the_endpoints_answer_each_case_with_its_rfc_body(build: Callable[..., Any], clock: Any, case: str,
                                                         cls: type[OAuthError]) -> None:
    act = next(a for name, a, _ in CASES if name == case)
    r = act(build, clock)
    body = r.json()
    assert r.status_code == cls.status, body
    assert set(body) == {"error", "error_description"} and body["error"] == cls.error, body
    assert isinstance(body["error_description"], str) and body["error_description"]
    assert r.headers["cache-control"] == "no-store" and r.headers["pragma"] == "no-cache"
    if cls.status == 429:
        assert int(r.headers["retry-after"]) > 0
    else:
        assert "retry-after" not in r.headers


def test_an_unsupported_grant_type_is_named_in_rfc_characters(portal: Any) -> None:
    r = _token(portal, grant_type='x"y\\z…' + "a" * 100, client_id="awsbroker")
    assert r.status_code == 400
    assert r.json() == {"error": "unsupported_grant_type",
                        "error_description": "unsupported grant_type x?y?z?" + "a" * 58}
