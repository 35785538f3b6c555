"""An access-review snapshot as values (pure): the access report's rows packed for storage, the
SHA-256 that identifies them, and the directory membership they were computed from.

What the hash covers: the bytes of the report's CSV (``broker.reports.access.csv_lines``, UTF-8,
CRLF line ends, the header line first), exactly what ``GET .../reviews/snapshots/{n}?format=csv``
answers and ``broker review show N --csv`` prints. A reviewer who keeps the CSV file beside the
review checks it with ``sha256sum``. The CSV is stored as produced (zlib), so the bytes, and
their hash, never depend on a later version of the report's code.

The rows are also stored as JSON lines (zlib; the columns, then each row's values), for the JSON download
and for the diff (``broker.reports.review_diff``). The membership is every usable person's
effective groups (nested included), so a diff can say that someone who had no role before
joined a group. Everything is produced and read in a stream: memory stays flat with the size.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from broker.connectors.membership import Membership
from broker.reports.access import COLUMNS, ReportFilter, csv_lines

People = dict[str, dict[str, Any]]
"""Immutable id → ``{"username", "groups": [names]}``: each usable person and their effective groups."""

_CHUNK = 1 << 16
DECISIONS = ("approved", "changes_requested", "rejected", "noted")
"""What an attestation may decide (or nothing: a comment alone)."""
MAX_COMMENT = 4000


@dataclass(frozen=True)
class PackedRows:
    rows: bytes
    """zlib of JSON lines: the columns, then one list of values per row."""
    csv: bytes
    """zlib of the CSV bytes the hash covers."""
    sha256: str
    count: int
    csv_size: int
    """Bytes of the CSV, uncompressed."""


def filter_dict(flt: ReportFilter) -> dict[str, str]:
    """The filter as stored and answered: only the fields it sets."""
    return {k: v for k, v in (("account", flt.account), ("role", flt.role), ("group", flt.group), ("user", flt.user)) if v}


def filter_of(stored: dict[str, Any] | None) -> ReportFilter:
    stored = stored or {}
    return ReportFilter(**{k: stored.get(k) for k in ("account", "role", "group", "user")})


class _Deflate:
    """zlib in large steps: a compress call per row costs more than the compression itself."""

    def __init__(self) -> None:
        self._z = zlib.compressobj(6)
        self._pending: list[bytes] = []
        self._size = 0
        self.out: list[bytes] = []

    def add(self, data: bytes) -> None:
        self._pending.append(data)
        self._size += len(data)
        if self._size >= _CHUNK * 4:
            self._step()

    def _step(self) -> None:
        self.out.append(self._z.compress(b"".join(self._pending)))
        self._pending.clear()
        self._size = 0

    def done(self) -> bytes:
        self._step()
        self.out.append(self._z.flush())
        return b"".join(self.out)


def pack_rows(report: Iterable[dict[str, Any]]) -> PackedRows:
    """The rows (as ``broker.reports.access.rows`` yields them) packed, hashed and counted, in one
    pass. The rows are stored as JSON lines: the columns first, then each row's values in that order."""
    digest = hashlib.sha256()
    csv_z, rows_z = _Deflate(), _Deflate()
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    rows_z.add(encode(list(COLUMNS)).encode() + b"\n")
    count = size = 0

    def counted(rs: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        nonlocal count
        for row in rs:
            count += 1
            rows_z.add(encode([row[c] for c in COLUMNS]).encode() + b"\n")
            yield row

    for line in csv_lines(counted(report)):
        data = line.encode()
        size += len(data)
        digest.update(data)
        csv_z.add(data)
    return PackedRows(rows_z.done(), csv_z.done(), digest.hexdigest(), count, size)


def _inflate(blob: bytes) -> Iterator[bytes]:
    z = zlib.decompressobj()
    for start in range(0, len(blob), _CHUNK):
        out = z.decompress(blob[start : start + _CHUNK])
        if out:
            yield out
    tail = z.flush()
    if tail:
        yield tail


def csv_bytes(blob: bytes) -> Iterator[bytes]:
    """The stored CSV, chunk by chunk: the bytes the hash covers."""
    return _inflate(blob)


def unpack_rows(blob: bytes) -> Iterator[dict[str, Any]]:
    """The stored rows, one by one (objects with the columns they were stored with)."""
    pending = b""
    columns: list[str] | None = None
    for chunk in _inflate(blob):
        *lines, pending = (pending + chunk).split(b"\n")
        if not lines:
            continue
        batch = json.loads(b"[" + b",".join(line for line in lines if line) + b"]")  # one parse per chunk
        if columns is None and batch:
            columns, batch = batch[0], batch[1:]
        for values in batch:
            yield dict(zip(columns or (), values, strict=True))


def people_of(membership: Membership) -> People:
    """Every usable person the directory listed, with their effective groups (nested included)."""
    out: People = {}
    for person in membership.people:
        identity = membership.member(person).identity
        out[identity.id] = {"username": identity.username, "groups": list(identity.groups)}
    return out


def pack_people(people: People) -> bytes:
    return zlib.compress(json.dumps(people, ensure_ascii=False, separators=(",", ":")).encode(), 6)


def unpack_people(blob: bytes) -> People:
    people: People = json.loads(zlib.decompress(blob))
    return people
