"""The mapping's numbered versions on the database, written in the transaction of the change.

Every write to the mapping (an admin write, an import, a restore, the config sync) tells this
module what it is about to change (``before``), what it changed (``after``) and what it deleted
(``gone``), row by row; ``commit`` then writes one version for the whole transaction with its
diff (nothing when nothing ended up different). The writer holds the mapping lock
(``broker.db.sync.lock_mapping``) from before its first read, so version numbers are dense and
unique with concurrent writers, and each diff is from the version before it.

A version row holds its diff; every ``CHECKPOINT_EVERY``-th (and the first) also holds the whole
state then, so a version is rebuilt from the checkpoint before it and at most that many diffs
(``state_at``). A database that had a mapping before its history began gets a ``baseline``
version (the mapping as found) at its first change.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from broker.audit import AuditContext, rfc3339
from broker.db import rows
from broker.db.models import Account, Mapping, MappingVersion, NamingRule, OrgMapping, Role
from broker.errors import NotFound
from broker.mapping import versions
from broker.mapping.versions import Diff, Entry, State

CHECKPOINT_EVERY = 50
BASELINE_ACTOR = AuditContext(actor="history")
_PENDING = "mapping_history.pending"
_TRACKED = "mapping_history.tracked"

Row = Account | Role | Mapping | NamingRule | OrgMapping


# ---- rows as entries ----


def entry_of(row: Row) -> tuple[str, str, Entry]:
    """(kind, key, entry) of a row, as ``broker.mapping.versions`` keeps it."""
    if isinstance(row, Account):
        spec = rows.account_spec(row).model_dump(mode="json")
        spec.pop("roles", None)
        return "accounts", versions.account_key(row.id), spec | {"source": row.source}
    if isinstance(row, Role):
        spec = rows.role_spec(row).model_dump(mode="json")
        return (
            "roles",
            versions.role_key(row.account_id, row.name),
            spec | {"account": row.account_id, "source": row.source},
        )
    if isinstance(row, Mapping):
        m = rows.mapping_spec(row).model_dump(mode="json")
        return (
            "mappings",
            versions.mapping_key(m["group"], m["account"], m["role"]),
            m | {"source": row.source},
        )
    if isinstance(row, OrgMapping):
        m = rows.org_mapping_spec(row).model_dump(mode="json")
        return "org_mappings", versions.org_mapping_key(m["group"], row.target, m["role"]), m | {"source": row.source}
    spec = rows.rule_spec(row).model_dump(mode="json")
    return "rules", versions.rule_key(row.name), spec | {"source": row.source}


def read_state(s: Session) -> State:
    """The mapping in the database now, as a state."""
    state = versions.empty()
    found: list[Row] = [
        *s.scalars(select(Account)),
        *s.scalars(select(Role)),
        *s.scalars(select(NamingRule)),
        *s.scalars(select(Mapping).join(Role)),
        *s.scalars(select(OrgMapping)),
    ]
    for row in found:
        kind, key, entry = entry_of(row)
        state[kind][key] = entry
    return state


# ---- what a transaction changes ----


def _pending(s: Session) -> dict[str, dict[str, list[Entry | None]]]:
    pending: dict[str, dict[str, list[Entry | None]]] = s.info.setdefault(_PENDING, {})
    return pending


def _tracked(s: Session) -> dict[Row, tuple[str, str, list[Mapping]]]:
    tracked: dict[Row, tuple[str, str, list[Mapping]]] = s.info.setdefault(_TRACKED, {})
    return tracked


def before(s: Session, row: Row) -> None:
    """``row`` is about to change (or be deleted): its fields now are the version's "before".
    A role takes its mappings along: they name it, so renaming it changes them."""
    tracked = _tracked(s)
    if row in tracked:
        return
    kind, key, entry = entry_of(row)
    _pending(s).setdefault(kind, {}).setdefault(key, [entry, entry])
    dependents: list[Mapping] = []
    if isinstance(row, Role) and row.id is not None:
        dependents = list(s.scalars(select(Mapping).where(Mapping.role_id == row.id)))
        for m in dependents:
            before(s, m)
    tracked[row] = (kind, key, dependents)


def after(s: Session, row: Row) -> None:
    """``row`` was created or changed (its fields now are the version's "after")."""
    kind, key, entry = entry_of(row)
    pending, tracked = _pending(s).setdefault(kind, {}), _tracked(s)
    old = tracked.get(row)
    if old is not None and old[1] != key:  # its identity changed (a role renamed, a mapping moved)
        pending[old[1]][1] = None
    pending.setdefault(key, [None, None])[1] = entry
    dependents = old[2] if old else []
    tracked[row] = (kind, key, dependents)
    for m in dependents:
        after(s, m)


def gone(s: Session, row: Row) -> None:
    """``row`` is being deleted."""
    before(s, row)
    kind, key, _ = _tracked(s)[row]
    _pending(s)[kind][key][1] = None


# ---- versions ----


def _last(s: Session) -> int | None:
    return s.scalar(select(func.max(MappingVersion.number)))


def begin(s: Session) -> None:
    """Called under the mapping lock before a change: the first change of a database whose
    mapping predates its history writes that mapping first, as the baseline version."""
    if _last(s) is not None:
        return
    state = read_state(s)
    d = versions.diff(versions.empty(), state)
    if versions.count(d):
        _write(
            s,
            number=1,
            ctx=BASELINE_ACTOR,
            via="baseline",
            d=d,
            checkpoint=state,
            details={"note": "the mapping as found when its history began"},
        )


def commit(s: Session, *, ctx: AuditContext, via: str, details: dict[str, Any] | None = None) -> int | None:
    """The transaction's version, if it changed anything (its number; None: no change)."""
    pending = s.info.pop(_PENDING, {})
    s.info.pop(_TRACKED, None)
    d = versions.changes_of(
        {kind: {k: (b, a) for k, (b, a) in objs.items()} for kind, objs in pending.items()}
    )
    if not versions.count(d):
        return None
    last = _last(s)
    number = (last or 0) + 1
    checkpoint = None
    if last is None or number % CHECKPOINT_EVERY == 0:
        checkpoint = versions.apply(state_at(s, last) if last else versions.empty(), d)
    _write(s, number=number, ctx=ctx, via=via, d=d, checkpoint=checkpoint, details=details)
    return number


def _write(
    s: Session,
    *,
    number: int,
    ctx: AuditContext,
    via: str,
    d: Diff,
    checkpoint: State | None,
    details: dict[str, Any] | None,
) -> None:
    s.add(
        MappingVersion(
            number=number,
            actor=ctx.actor,
            via=via,
            request_id=ctx.request_id,
            details=details,
            summary=versions.summary(d),
            diff=versions.pack(d),
            checkpoint=versions.pack(checkpoint) if checkpoint is not None else None,
        )
    )
    s.flush()


def _version(s: Session, number: int) -> MappingVersion:
    row = s.get(MappingVersion, number)
    if row is None:
        raise NotFound(f"no mapping version {number}")
    return row


def state_at(s: Session, number: int) -> State:
    """The mapping as it was at version ``number`` (0: before the first version, empty)."""
    if number == 0:
        return versions.empty()
    _version(s, number)
    cp = s.execute(
        select(MappingVersion.number, MappingVersion.checkpoint)
        .where(MappingVersion.number <= number, MappingVersion.checkpoint.is_not(None))
        .order_by(MappingVersion.number.desc())
        .limit(1)
    ).first()
    state, start = (versions.unpack(cp.checkpoint), cp.number) if cp is not None else (versions.empty(), 0)
    diffs = s.scalars(
        select(MappingVersion.diff)
        .where(MappingVersion.number > start, MappingVersion.number <= number)
        .order_by(MappingVersion.number)
    )
    for blob in diffs:
        state = versions.apply(state, versions.unpack(blob))
    return state


def meta(row: MappingVersion) -> dict[str, Any]:
    return {
        "number": row.number,
        "at": rfc3339(row.at),
        "actor": row.actor,
        "via": row.via,
        "request_id": row.request_id,
        "details": row.details,
        "summary": row.summary,
        "changes": sum(sum(ops.values()) for ops in row.summary.values()),
    }


def list_versions(s: Session, *, limit: int, before_number: int | None) -> list[dict[str, Any]]:
    """Newest first; ``before_number`` is the keyset cursor (the last number of the previous page)."""
    q = select(MappingVersion).order_by(MappingVersion.number.desc()).limit(limit)
    if before_number is not None:
        q = q.where(MappingVersion.number < before_number)
    return [meta(row) for row in s.scalars(q)]


def get_version(s: Session, *, number: int) -> dict[str, Any]:
    """A version: who, when, its diff from the version before, and the whole document then."""
    row = _version(s, number)
    return meta(row) | {"diff": versions.unpack(row.diff), "document": document_at(s, number=number)}


def document_at(s: Session, *, number: int) -> dict[str, Any]:
    return versions.document(state_at(s, number))


def diff_versions(s: Session, *, old: int, new: int) -> dict[str, Any]:
    d = versions.diff(state_at(s, old), state_at(s, new))
    return {"from": old, "to": new, "changes": versions.count(d), "summary": versions.summary(d), "diff": d}
