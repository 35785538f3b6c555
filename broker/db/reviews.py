"""Access reviews on the database: snapshots of the access report, what changed since one, and
attestations. Functions taking the session explicitly; the store (``SqlMappingStore``) runs each
in one transaction. Creating a snapshot and attesting one each write their audit event
(``review.snapshot``, ``review.attest``) in the same transaction.

The directory is read by the caller (``broker.reports.access.membership_of``), before the
transaction: a membership read may take long and must not hold the database.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer

from broker.audit import AuditContext, rfc3339
from broker.connectors.membership import Membership
from broker.db import audit, history, queries
from broker.db.models import AccessRequest, MappingVersion, ReviewAttestation, ReviewSnapshot, utcnow
from broker.errors import InvalidInput, UnknownSnapshot
from broker.jit.requests import rfc3339 as grant_time
from broker.mapping import versions
from broker.mapping.versions import State
from broker.reports import review_diff
from broker.reports.access import ReportFilter, rows
from broker.reports.review_snapshot import (
    DECISIONS,
    MAX_COMMENT,
    filter_dict,
    filter_of,
    pack_people,
    pack_rows,
    people_of,
    unpack_people,
    unpack_rows,
)

MAX_VERSIONS_NAMED = 2000
"""A diff names the versions that changed an object when at most this many lie between its sides."""
_BLOBS = (defer(ReviewSnapshot.rows), defer(ReviewSnapshot.csv), defer(ReviewSnapshot.people))


def _current_version(s: Session) -> int | None:
    return s.scalar(select(func.max(MappingVersion.number)))


def mapping_state(s: Session, version: int | None) -> State:
    """The mapping at ``version``; None (no version yet when the snapshot was taken): the baseline,
    when the history began since with one, else the mapping now (no change since), else empty."""
    if version is not None:
        return history.state_at(s, version)
    first = s.get(MappingVersion, 1)
    if first is None:
        return history.read_state(s)
    return history.state_at(s, 1) if first.via == "baseline" else versions.empty()


def meta(row: ReviewSnapshot) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": rfc3339(row.at),
        "actor": row.actor,
        "request_id": row.request_id,
        "title": row.title,
        "filter": row.filter,
        "mapping_version": row.mapping_version,
        "rows": row.row_count,
        "people": row.people_count,
        "hash": row.sha256,
        "csv_bytes": row.csv_size,
    }


def _snapshot(s: Session, number: int, *, blobs: bool = False) -> ReviewSnapshot:
    q = select(ReviewSnapshot).where(ReviewSnapshot.id == number)
    row = s.scalar(q if blobs else q.options(*_BLOBS))
    if row is None:
        raise UnknownSnapshot(f"no access-review snapshot {number}")
    return row


def active_grants(s: Session) -> dict[tuple[str, str, str], str]:
    """The just-in-time grants active now, as the access report takes them (``reports.access.ActiveGrants``)."""
    now = utcnow()
    q = (select(AccessRequest.requester_id, AccessRequest.account_id, AccessRequest.role_key, AccessRequest.ends_at)
         .where(AccessRequest.state == "approved", AccessRequest.ends_at > now).order_by(AccessRequest.ends_at))
    return {(person, account, role): grant_time(ends if ends.tzinfo else ends.replace(tzinfo=UTC)) or ""
            for person, account, role, ends in s.execute(q) if ends is not None}


def create_snapshot(
    s: Session, *, membership: Membership, flt: ReportFilter, ctx: AuditContext, title: str | None
) -> dict[str, Any]:
    """The access report now (``flt`` applied), saved with its hash, membership and mapping version."""
    for _ in range(3):  # the mapping version and the mapping read must belong together
        version = _current_version(s)
        mapping = queries.full_snapshot(s)
        if _current_version(s) == version:
            break
    packed = pack_rows(rows(membership, mapping, flt, active_grants(s)))
    people = people_of(membership)
    row = ReviewSnapshot(
        actor=ctx.actor,
        request_id=ctx.request_id,
        title=title,
        filter=filter_dict(flt),
        mapping_version=version,
        row_count=packed.count,
        people_count=len(people),
        sha256=packed.sha256,
        csv_size=packed.csv_size,
        rows=packed.rows,
        csv=packed.csv,
        people=pack_people(people),
    )
    s.add(row)
    s.flush()
    audit.record(
        s,
        ctx,
        "review.snapshot",
        target_type="review_snapshot",
        target_id=str(row.id),
        details={"hash": row.sha256, "rows": row.row_count, "mapping_version": version, "filter": row.filter,
                 "title": title},
    )
    return meta(row)


def list_snapshots(s: Session, *, limit: int, before: int | None) -> list[dict[str, Any]]:
    """Newest first; ``before`` is the keyset cursor (the last id of the previous page)."""
    q = select(ReviewSnapshot).options(*_BLOBS).order_by(ReviewSnapshot.id.desc()).limit(limit)
    if before is not None:
        q = q.where(ReviewSnapshot.id < before)
    found = list(s.scalars(q))
    counts: dict[int, int] = {}
    if found:
        q_counts = (
            select(ReviewAttestation.snapshot_id, func.count())
            .where(ReviewAttestation.snapshot_id.in_([r.id for r in found]))
            .group_by(ReviewAttestation.snapshot_id)
        )
        counts = {snapshot_id: n for snapshot_id, n in s.execute(q_counts)}
    return [meta(r) | {"attestations": int(counts.get(r.id, 0))} for r in found]


def _attestation(a: ReviewAttestation) -> dict[str, Any]:
    return {
        "id": a.id,
        "snapshot": a.snapshot_id,
        "at": rfc3339(a.at),
        "actor": a.actor,
        "request_id": a.request_id,
        "decision": a.decision,
        "comment": a.comment,
    }


def latest_attestations(s: Session, *, numbers: list[int]) -> dict[int, dict[str, Any]]:
    """Snapshot number → its newest attestation, for the snapshots of ``numbers`` that have one."""
    if not numbers:
        return {}
    newest = (
        select(func.max(ReviewAttestation.id))
        .where(ReviewAttestation.snapshot_id.in_(numbers))
        .group_by(ReviewAttestation.snapshot_id)
    )
    found = s.scalars(select(ReviewAttestation).where(ReviewAttestation.id.in_(newest)))
    return {a.snapshot_id: _attestation(a) for a in found}


def get_snapshot(s: Session, *, number: int) -> dict[str, Any]:
    """A snapshot's metadata and every attestation of it (oldest first)."""
    row = _snapshot(s, number)
    found = s.scalars(
        select(ReviewAttestation).where(ReviewAttestation.snapshot_id == number).order_by(ReviewAttestation.id)
    )
    return meta(row) | {"attestations": [_attestation(a) for a in found]}


def snapshot_csv(s: Session, *, number: int) -> bytes:
    """The stored CSV (zlib): ``broker.reports.review_snapshot.csv_bytes`` inflates it."""
    return _snapshot(s, number, blobs=True).csv


def snapshot_rows(s: Session, *, number: int) -> bytes:
    """The stored rows (zlib JSON lines): ``broker.reports.review_snapshot.unpack_rows`` reads them."""
    return _snapshot(s, number, blobs=True).rows


def attest(
    s: Session, *, number: int, ctx: AuditContext, decision: str | None, comment: str
) -> dict[str, Any]:
    """One attestation of snapshot ``number`` by ``ctx.actor``, audited in the same transaction."""
    if decision is not None and decision not in DECISIONS:
        raise InvalidInput(f"a decision is one of {', '.join(DECISIONS)}", details=[{"field": "decision", "message": "unknown decision"}])
    if len(comment) > MAX_COMMENT:
        raise InvalidInput(f"a comment is at most {MAX_COMMENT} characters", details=[{"field": "comment", "message": "too long"}])
    row = _snapshot(s, number)
    a = ReviewAttestation(snapshot_id=row.id, actor=ctx.actor, request_id=ctx.request_id, decision=decision,
                          comment=comment)
    s.add(a)
    s.flush()
    audit.record(
        s,
        ctx,
        "review.attest",
        target_type="review_snapshot",
        target_id=str(row.id),
        details={"attestation": a.id, "decision": decision, "comment": comment, "hash": row.sha256},
    )
    return _attestation(a)


def _touched(s: Session, a: int | None, b: int | None) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(kind, key) → the versions between ``a`` and ``b`` (either order) that changed the object."""
    lo, hi = sorted((a or 0, b or 0))
    if hi <= lo or hi - lo > MAX_VERSIONS_NAMED:
        return {}
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    found = s.execute(
        select(MappingVersion.number, MappingVersion.actor, MappingVersion.at, MappingVersion.via, MappingVersion.diff)
        .where(MappingVersion.number > lo, MappingVersion.number <= hi)
        .order_by(MappingVersion.number)
    )
    for number, actor, at, via, blob in found:
        ref = {"number": number, "actor": actor, "at": rfc3339(at), "via": via}
        for kind, part in versions.unpack(blob).items():
            for op, items in part.items():
                for item in items:
                    out.setdefault((kind, item["key"]), []).append(ref | {"op": op})
    return out


def _side_of(s: Session, row: ReviewSnapshot) -> tuple[review_diff.Side, dict[str, Any]]:
    side = review_diff.Side(
        rows=unpack_rows(row.rows), people=unpack_people(row.people), mapping=mapping_state(s, row.mapping_version)
    )
    return side, {"snapshot": row.id, "at": rfc3339(row.at), "mapping_version": row.mapping_version}


def changes(s: Session, *, number: int, against: int | None, membership: Membership | None) -> dict[str, Any]:
    """What changed from snapshot ``number`` to snapshot ``against`` (same filter), or to the
    access report now (``against`` None: computed with the snapshot's filter from ``membership``)."""
    old_row = _snapshot(s, number, blobs=True)
    old, old_meta = _side_of(s, old_row)
    if against is None:
        if membership is None:
            raise InvalidInput("a diff against now needs the directory's membership")
        version = _current_version(s)
        mapping = queries.full_snapshot(s)
        new = review_diff.Side(
            rows=rows(membership, mapping, filter_of(old_row.filter)),
            people=people_of(membership),
            mapping=history.read_state(s),
        )
        new_meta: dict[str, Any] = {"snapshot": None, "at": None, "mapping_version": version}
    else:
        new_row = _snapshot(s, against, blobs=True)
        if (new_row.filter or {}) != (old_row.filter or {}):
            raise InvalidInput(
                "the two snapshots were taken with different filters: compare snapshots of the same filter",
                details=[{"field": "against", "message": f"snapshot {number}: {old_row.filter}, "
                                                         f"snapshot {against}: {new_row.filter}"}],
            )
        new, new_meta = _side_of(s, new_row)
    touched = _touched(s, old_meta["mapping_version"], new_meta["mapping_version"])
    result = review_diff.changes(old, new, touched=touched)
    return {"from": old_meta, "to": new_meta, "filter": old_row.filter, **result}
