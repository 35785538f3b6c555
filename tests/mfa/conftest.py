"""Step-up MFA: the portal's people (tests/portal) with alice's sandbox-dev Admin needing a second
factor (``require_mfa: true``) and bob's sandbox-prod ReadOnly one of the last hour
(``mfa_max_age: 3600``); helpers to enrol and step up through the real forms."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pyotp
import pytest

from tests.conftest import ADMIN_TOKEN
from tests.portal.conftest import csrf_of, sections, sign_in


def mfa_sections() -> dict[str, Any]:
    data = sections()
    mappings = data["mapping"]["mappings"]
    for m in mappings:
        if m["group"] == "aws-admins" and m["account"] == "sandbox-dev":
            m["require_mfa"] = True
        if m["group"] == "developers" and m["account"] == "sandbox-prod":
            m["mfa_max_age"] = 3600
    return data


def code_at(secret: str, at: float | None = None) -> str:
    return pyotp.TOTP(secret).at(time.time() if at is None else at)


def earlier_code(secret: str) -> str:
    """The previous time step's code: still accepted (one step either side), leaving the current
    step's for a step-up. Never taken in the last 2 s of a step, where the broker might already
    be one step further when it checks (the previous code then out of its window)."""
    left = 30 - time.time() % 30
    if left < 2:
        time.sleep(left + 0.05)
    return pyotp.TOTP(secret).at(time.time() - 30)


class Portal:
    def __init__(self, client: Any) -> None:
        self.client = client

    @property
    def services(self) -> Any:
        return self.client.app.state.services

    def csrf(self, path: str = "/") -> str:
        return csrf_of(self.client.get(path).text)

    def post(self, path: str, **data: Any) -> Any:
        return self.client.post(path, data={"csrf_token": self.csrf("/mfa"), **data})

    def enrol(self, next_url: str = "") -> str:
        """Start the enrolment and read the secret from the page, as a person would type it."""
        started = self.post("/mfa/totp/enrol", next=next_url)
        assert started.status_code == 303, started.text
        m = re.search(r'id="totp-secret">([A-Z2-7]+)<', self.client.get(started.headers["location"]).text)
        assert m, "no secret on the page"
        return m.group(1)

    def confirm(self, code: str, next_url: str = "") -> Any:
        return self.post("/mfa/totp/confirm", code=code, next=next_url)

    def step_up(self, code: str, *, method: str = "totp", next_url: str = "/") -> Any:
        return self.post("/mfa/step-up", code=code, method=method, next=next_url)

    def console(self, account: str = "sandbox-dev", role: str = "Admin") -> Any:
        return self.client.post("/console", data={"csrf_token": self.csrf(), "account": account, "role": role})

    def audit(self, action: str) -> list[dict[str, Any]]:
        page = self.client.get("/api/v1/admin/audit", params={"action": action, "limit": 100},
                               headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert page.status_code == 200, page.text
        return list(page.json()["items"])


@pytest.fixture
def mfa_portal(app_factory: Callable[..., Any]) -> Callable[..., Portal]:
    def make(who: str = "alice", password: str | None = None, **extra: Any) -> Portal:
        data = mfa_sections()
        data.update(extra)
        client = app_factory(**data)
        client.follow_redirects = False
        if password is None:
            signed = sign_in(client)
        else:
            signed = sign_in(client, who, password)
        assert signed.status_code == 303, signed.text
        return Portal(client)

    return make
