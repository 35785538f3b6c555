"""Just-in-time access: the portal's people (alice approves, bob is eligible to ReadOnly in
sandbox-prod, carol is in no group) with an access policy, on a real app and SQLite file."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.portal.conftest import ALICE_PW, BOB_PW, CAROL_PW, sections

PASSWORDS = {"alice": ALICE_PW, "bob": BOB_PW, "carol": CAROL_PW}
POLICY = {"approver_groups": ["aws-admins"], "max_duration": "2h", "reason_required": True}


def jit_sections(**policy: Any) -> dict[str, Any]:
    data = sections()
    data["mapping"]["mappings"] = [
        m for m in data["mapping"]["mappings"] if not (m["group"] == "developers" and m["role"] == "ReadOnly")
    ] + [{"group": "developers", "account": "sandbox-prod", "role": "ReadOnly", "access": "eligible",
          "policy": "prod-readonly"}]
    data["jit"] = {"policies": {"prod-readonly": {**POLICY, **policy}}}
    data["api"] = {"password_login": True}
    data["admin"] = {"directory_groups": ["aws-admins"]}
    return data


class Clock:
    """The flow's clock (grants start and end by it)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Jit:
    def __init__(self, client: Any, clock: Clock) -> None:
        self.client = client
        self.clock = clock

    def call(self, who: str, method: str, path: str, **kw: Any) -> Any:
        return self.client.request(method, path, auth=(who, PASSWORDS[who]), **kw)

    def request(self, who: str = "bob", **body: Any) -> Any:
        body = {"account": "sandbox-prod", "role": "ReadOnly", "reason": "incident INC-1", "duration": "1h"} | body
        return self.call(who, "POST", "/api/v1/requests", json={k: v for k, v in body.items() if v is not None})

    def decide(self, who: str, request_id: int, choice: str) -> Any:
        return self.call(who, "POST", f"/api/v1/requests/{request_id}/{choice}")

    def credentials(self, who: str = "bob", **body: Any) -> Any:
        return self.call(who, "POST", "/api/v1/credentials", json={"account": "sandbox-prod", "role": "ReadOnly"} | body)

    def audit(self, action: str) -> list[dict[str, Any]]:
        from tests.conftest import ADMIN_TOKEN

        page = self.client.get("/api/v1/admin/audit", params={"action": action, "limit": 100},
                               headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert page.status_code == 200, page.text
        return page.json()["items"]

    def set_groups(self, username: str, groups: list[str]) -> None:
        """The directory changes: the static directory's entry for ``username`` now has ``groups``."""
        directory = self.client.app.state.services.directory
        key = next(k for k, u in directory._users.items() if u.username == username)
        directory._users[key] = directory._users[key].model_copy(update={"groups": groups})


@pytest.fixture
def jit(app_factory: Callable[..., Any]) -> Callable[..., Jit]:
    def make(**policy: Any) -> Jit:
        client = app_factory(**jit_sections(**policy))
        clock = Clock()
        client.app.state.services.flow.clock = clock
        return Jit(client, clock)

    return make
