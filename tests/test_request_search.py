"""``SqlRequestStore.search`` (the admin requests listing) on SQLite and on PostgreSQL: filters,
the state as a person reads it (an approved request past its end is expired), newest first, pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from broker.audit import AuditContext
from broker.db.requests_store import SqlRequestStore
from broker.jit.requests import NewRequest, RequestFilter
from broker.mapping.model import AccountSpec

CTX = AuditContext(actor="admin:test", request_id="req-1", source_ip="127.0.0.1")
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _new(requester: str, role: str, account: str = "111122223333") -> NewRequest:
    return NewRequest(requester_id=f"id-{requester}", requester=requester, account_id=account, role_name=role,
                      policy="p", reason="r", ticket=None, duration=3600, approvals_needed=1,
                      created_at=NOW - timedelta(hours=3))


def test_search_filters_reads_states_as_of_now_and_pages_newest_first(engine: Any, store: Any) -> None:
    store.create_account(AccountSpec.model_validate({"id": "111122223333", "alias": "prod"}), CTX)
    requests = SqlRequestStore(engine)
    pending = requests.create(_new("Bob", "ReadOnly"))
    lapsed = requests.create(_new("bob", "ReadOnly"))
    lapsed = requests.update(lapsed, state="approved", starts_at=NOW - timedelta(hours=2),
                             ends_at=NOW - timedelta(hours=1))
    active = requests.create(_new("carol", "Admin"))
    active = requests.update(active, state="approved", starts_at=NOW, ends_at=NOW + timedelta(hours=1))
    other = requests.create(_new("dave", "ReadOnly", account="444455556666"))
    assert lapsed is not None and active is not None

    def ids(**flt: Any) -> list[int]:
        return [r.id for r in requests.search(RequestFilter(**flt), now=NOW, limit=10)]

    assert ids() == [other.id, active.id, lapsed.id, pending.id]
    assert ids(state="approved") == [active.id]
    assert ids(state="expired") == [lapsed.id]
    assert ids(state="pending") == [other.id, pending.id]
    assert ids(requester="BOB") == [lapsed.id, pending.id]
    assert ids(account="PROD") == [active.id, lapsed.id, pending.id] == ids(account="111122223333")
    assert ids(account="444455556666", role="readonly") == [other.id]
    assert ids(account="nowhere") == []
    page = requests.search(RequestFilter(), now=NOW, limit=2)
    assert [r.id for r in page] == [other.id, active.id]
    assert [r.id for r in requests.search(RequestFilter(), now=NOW, limit=2, before_id=page[-1].id)] == [
        lapsed.id, pending.id]
