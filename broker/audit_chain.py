"""The audit log's hash chain: the canonical form of an event, its hash, and the walk that checks
a chain (pure: no database; ``broker.db.chain`` writes and reads the rows).

Every audit row carries ``prev_hash`` (the ``hash`` of the row before it in id order; the first
row of a database: ``GENESIS``, sixty-four zeros) and ``hash``::

    hash = hex(SHA-256(canonical(event)))

where ``event`` is the row as the export answers it (``id``, ``at``, ``actor``, ``action``,
``outcome``, ``target_type``, ``target_id``, ``request_id``, ``source_ip``, ``before``,
``after``, ``details``, ``prev_hash``) without ``hash``: ``at`` in RFC 3339 UTC with microseconds
(``2026-12-02T03:07:23.123456Z``), and ``canonical`` is JSON with sorted keys, no whitespace
(separators ``,`` and ``:``), non-ASCII characters as themselves, in UTF-8. A third party
recomputes it from an exported line: drop ``hash``, dump, hash, compare (README "Audit trail").

Ids are dense (allocated under the chain lock), so a missing id is a deleted row. A purge
deletes the oldest rows and keeps an anchor (the id and hash of the last purged row): the walk
starts from it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from broker.audit import rfc3339

GENESIS = "0" * 64
"""The ``prev_hash`` of a database's first audit row."""

FIELDS = (
    "id",
    "at",
    "actor",
    "action",
    "outcome",
    "target_type",
    "target_id",
    "request_id",
    "source_ip",
    "before",
    "after",
    "details",
)
"""The event's fields that are hashed, with ``prev_hash``."""

JSON_FIELDS = ("before", "after", "details")

BreakKind = Literal["edited", "deleted", "reordered", "inserted", "anchor"]
"""How a chain is broken: ``edited`` (a row's hash is not that of its content), ``deleted`` (ids
missing, the break's id is the first of them: the next row's ``prev_hash`` or the chain head names
what is gone), ``reordered`` (a row
whose hash is right but linked to another predecessor), ``inserted`` (a row past the chain's
recorded head), ``anchor`` (the purge anchor is not the one the last purge event recorded)."""


def as_stored(value: Any) -> Any:
    """A JSON column's value as the database hands it back (tuples → lists, keys → strings):
    what is written, and what is hashed, is this."""
    return None if value is None else json.loads(json.dumps(value, allow_nan=False))


def canonical(event: Mapping[str, Any]) -> bytes:
    """The bytes that are hashed: the event's ``FIELDS`` and ``prev_hash``, ``at`` in RFC 3339
    UTC (a datetime is converted; a string is taken as it is), as canonical JSON in UTF-8."""
    doc = {name: event[name] for name in FIELDS}
    doc["prev_hash"] = event["prev_hash"]
    if not isinstance(doc["at"], str):
        doc["at"] = rfc3339(doc["at"])
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def event_hash(event: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(event)).hexdigest()


def export_line(event: Mapping[str, Any]) -> str:
    """One line of the JSON Lines export (the event with ``prev_hash`` and ``hash``)."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n"


@dataclass(frozen=True)
class Anchor:
    """Where the walk starts (the last purged row; id 0 and GENESIS before any purge) and where
    the chain's head says it ends."""

    anchor_id: int = 0
    anchor_hash: str = GENESIS
    head_id: int = 0
    head_hash: str = GENESIS


@dataclass(frozen=True)
class Break:
    id: int
    kind: BreakKind
    expected: str | None
    found: str | None
    message: str


@dataclass
class Report:
    checked: int = 0
    first_id: int | None = None
    last_id: int | None = None
    last_hash: str | None = None
    """The hash of the last row checked: keep it elsewhere, and a rewrite of the whole chain shows."""
    broken: Break | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "checked": self.checked, "first_id": self.first_id,
                               "last_id": self.last_id, "last_hash": self.last_hash, "broken": None}
        if self.broken is not None:
            b = self.broken
            out["broken"] = {"id": b.id, "kind": b.kind, "expected": b.expected, "found": b.found, "message": b.message}
        return out


PURGE_ACTION = "audit.purge"

_CURSOR_PREFIX = "ac1."
MAX_ID = 2**63 - 1


def encode_cursor(last_id: int) -> str:
    """The export's opaque cursor: where the next page starts (after ``last_id``)."""
    return _CURSOR_PREFIX + base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    """The id a cursor continues after; None: not a cursor ``encode_cursor`` made."""
    if not cursor.startswith(_CURSOR_PREFIX) or len(cursor) > 64:
        return None
    body = cursor[len(_CURSOR_PREFIX):]
    try:
        text = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    if not text.isdigit() or not text.isascii() or encode_cursor(int(text)) != cursor or int(text) > MAX_ID:
        return None
    return int(text)


def verify(rows: Iterable[Mapping[str, Any]], anchor: Anchor) -> Report:
    """Walk ``rows`` (id order, each with ``prev_hash`` and ``hash``) from ``anchor``; stop at the
    first broken link. Memory stays flat: only the previous row is kept."""
    report = Report()
    prev_id, prev_hash = anchor.anchor_id, anchor.anchor_hash
    last_purge: Mapping[str, Any] | None = None
    for row in rows:
        row_id = int(row["id"])
        found = row["hash"]
        expected = event_hash(row)
        if found is None or expected != found:
            report.broken = Break(row_id, "edited", expected, found, f"row {row_id} is not what was written")
            return report
        if row_id > anchor.head_id:
            report.broken = Break(row_id, "inserted", None, found, f"row {row_id} is past the chain head {anchor.head_id}")
            return report
        if row_id != prev_id + 1:
            gap = f"{prev_id + 1}" if row_id == prev_id + 2 else f"{prev_id + 1}..{row_id - 1}"
            report.broken = Break(prev_id + 1, "deleted", prev_hash, row["prev_hash"],
                                  f"row(s) {gap} deleted: row {row_id} follows row {prev_id}")
            return report
        if row["prev_hash"] != prev_hash:
            report.broken = Break(row_id, "reordered", prev_hash, row["prev_hash"],
                                  f"row {row_id} is not linked to row {prev_id}")
            return report
        if row["action"] == PURGE_ACTION:
            last_purge = row["details"] or {}
        report.checked += 1
        report.first_id = report.first_id or row_id
        report.last_id, report.last_hash = row_id, found
        prev_id, prev_hash = row_id, found
    if prev_id < anchor.head_id:
        gap = f"{prev_id + 1}" if anchor.head_id == prev_id + 1 else f"{prev_id + 1}..{anchor.head_id}"
        report.broken = Break(prev_id + 1, "deleted", anchor.head_hash, None, f"row(s) {gap} deleted from the end")
    elif prev_hash != anchor.head_hash:
        report.broken = Break(prev_id, "reordered", anchor.head_hash, prev_hash,
                              f"row {prev_id} is not the one the chain head recorded")
    elif anchor.anchor_id and not _anchor_recorded(last_purge, anchor):
        report.broken = Break(anchor.anchor_id, "anchor", None, anchor.anchor_hash,
                              f"the purge anchor (row {anchor.anchor_id}) is not the one the last audit.purge recorded")
    return report


def _anchor_recorded(purge: Mapping[str, Any] | None, anchor: Anchor) -> bool:
    return (
        purge is not None
        and purge.get("through_id") == anchor.anchor_id
        and purge.get("anchor_hash") == anchor.anchor_hash
    )
