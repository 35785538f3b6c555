"""The local-redirect table (tests/redirect_cases.py) at the portal's login entries: the sign-in
form (its hidden ``next``), the sign-in POST (its 303), a signed-in visit to /login, and the
session's ``login_response`` every sign-in method ends in (upstream SAML/OIDC too)."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from starlette.requests import Request

from broker.domain import Identity
from broker.redirects import safe_next
from tests.portal.conftest import ALICE_PW, csrf_of, sign_in
from tests.redirect_cases import FOLLOWED, REFUSED, TOO_LONG

CASES = [(v, v) for v in FOLLOWED] + [(v, "/") for v in REFUSED] + [(TOO_LONG, "/")]


def _form_next(page: Any) -> str | None:
    """The ``next`` the sign-in form will post; None when the request was refused before any form."""
    if page.status_code == 422:
        return None
    m = re.search(r'name="next" value="([^"]*)"', page.text)
    assert m, page.text
    return html.unescape(m.group(1))


def _went(response: Any) -> str | None:
    if response.status_code == 422:
        return None
    assert response.status_code == 303, response.text
    return str(response.headers["location"])


def _check(value: str, expected: str, got: str | None) -> None:
    if got is None:  # refused by the HTTP layer (longer than the field allows): followed nowhere
        assert len(value) > 2048
    else:
        assert got == expected, (value, got)


@pytest.mark.parametrize(("value", "expected"), CASES)
def test_the_function(value: str, expected: str) -> None:
    assert (safe_next(value) or "/") == expected


def test_every_portal_entry(portal: Any) -> None:
    for value, expected in CASES:
        _check(value, expected, _form_next(portal.get("/login", params={"next": value})))
        page = portal.get("/login")
        r = portal.post("/login", data={"username": "alice", "password": ALICE_PW, "csrf_token": csrf_of(page.text),
                                        "next": value})
        _check(value, expected, _went(r))
        _check(value, expected, _went(portal.get("/login", params={"next": value})))  # signed in now
        portal.cookies.clear()


def test_login_response(portal: Any) -> None:
    """The session hook of the upstream sign-ins: whatever next a connector hands it."""
    sessions = portal.app.state.services.access.sessions
    request = Request({"type": "http", "method": "POST", "scheme": "http", "server": ("testserver", 80),
                       "path": "/sso/x/saml/acs", "headers": [], "query_string": b"", "app": portal.app})
    alice = Identity(username="alice", id="a1", display_name="Alice", email="", groups=(), source="people")
    for value, expected in CASES:
        response = sessions.login_response(request, alice, value)
        assert response.status_code == 303 and response.headers["location"] == expected, value


def test_the_device_page_sends_to_a_local_sign_in(portal: Any) -> None:
    r = portal.get("/device", params={"user_code": "ABCD-EFGH"})
    assert r.headers["location"] == "/login?next=/device?user_code=ABCD-EFGH"
    assert sign_in(portal, next_url="/device").headers["location"] == "/device"
