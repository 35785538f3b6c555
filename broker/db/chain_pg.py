"""The audit chain's append on PostgreSQL in a transaction of its own, in two round trips:
psycopg's pipeline mode on the connection's driver connection (the issuance path's decisions,
``SqlMappingStore.record_events``; ``broker.db.chain.append`` writes in a caller's transaction).

The same transaction as ``chain.append``'s, statement for statement: the first flush sends BEGIN
and the chain head's ``UPDATE … RETURNING`` (the chain lock: its row lock, held to COMMIT; the
ids; the previous hash), the hashes are computed here (``chain.link``: the hash of each row
needs the one before it, so the head is read before any row is sent), and the second flush sends
the rows, the new head, the outbox rows and COMMIT. A failure anywhere rolls the whole
transaction back (no id is used, the head is unchanged); a broken connection is invalidated,
never handed back to the pool. psycopg's errors come out as SQLAlchemy's (``DBAPIError.instance``),
so the store translates them as any other.

Plain psycopg instead of SQLAlchemy Core, and two round trips instead of four: the write's CPU
about halved, measured with bench/audit_write.py (README, "Issuance through the running broker").
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.types.json import Json
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from broker.audit_chain import JSON_FIELDS
from broker.db.chain import HEAD_ID, link
from broker.db.models import AuditChainHead, AuditEvent, AuditOutbox, Base, utcnow

_EVENTS = Base.metadata.tables[AuditEvent.__tablename__]
_HEAD = Base.metadata.tables[AuditChainHead.__tablename__]
_OUTBOX = Base.metadata.tables[AuditOutbox.__tablename__]

_LOCK_HEAD = f"UPDATE {_HEAD.name} SET last_id = last_id + %s WHERE id = {HEAD_ID} RETURNING last_id, last_hash"
_SET_HEAD = f"UPDATE {_HEAD.name} SET last_hash = %s WHERE id = {HEAD_ID}"
_COLUMNS = tuple(c.name for c in _EVENTS.columns)
_JSON = frozenset(JSON_FIELDS)
_INSERT_OUTBOX = (
    f"INSERT INTO {_OUTBOX.name} (event_id, destination, created_at, next_attempt_at, attempts) "
    "VALUES (%s, %s, %s, %s, 0)"
)


@functools.cache
def _insert_rows(n: int, *, with_head: bool) -> str:
    """One INSERT of ``n`` rows (its ids grow in the order of its rows); ``with_head``: in a
    statement that also records the new head (its last parameter)."""
    one = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
    sql = f"INSERT INTO {_EVENTS.name} ({', '.join(_COLUMNS)}) VALUES {', '.join([one] * n)}"
    return f"WITH chained AS ({sql}) {_SET_HEAD}" if with_head else sql


_MAX_ONE_STATEMENT = 16
"""Up to this many rows in one INSERT (with the head); more: one INSERT per row (all in the same flush)."""


def _param(name: str, value: Any) -> Any:
    # SQLAlchemy's JSON type stores None as JSON null (none_as_null=False), serialised by json.dumps:
    # the same text here, so a row reads back the same whichever path wrote it
    return Json(value, dumps=json.dumps) if name in _JSON else value


def supported() -> bool:
    """Pipeline mode needs libpq 14 or newer (psycopg-binary bundles one); else the store keeps
    ``chain.append`` in a SQLAlchemy transaction."""
    return psycopg.Pipeline.is_supported()


def append_committed(conn: Connection, rows: list[dict[str, Any]], *, destinations: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Chain ``rows`` (the event columns, without id) after the head, insert them with their
    outbox rows (one per destination) and COMMIT, on ``conn``'s driver connection (``conn`` has no
    transaction open); returns them as written, with ``id``, ``prev_hash`` and ``hash``."""
    if not rows:
        return rows
    pg = conn.connection.driver_connection
    if not isinstance(pg, psycopg.Connection) or pg.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise RuntimeError("chain_pg.append_committed needs an idle psycopg connection")
    pg.autocommit = True  # BEGIN and COMMIT are sent as statements: psycopg would Sync after each
    try:
        with pg.pipeline(), pg.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute(_LOCK_HEAD, (len(rows),))
            head = cur.fetchone()  # the first round trip: BEGIN, the head locked and moved
            assert head is not None
            new_hash = link(rows, last_id=head[0], prev_hash=head[1])
            if len(rows) <= _MAX_ONE_STATEMENT:  # the rows and the new head: one statement
                cur.execute(_insert_rows(len(rows), with_head=True),
                            [*(_param(c, row[c]) for row in rows for c in _COLUMNS), new_hash])
            else:
                cur.executemany(_insert_rows(1, with_head=False), [[_param(c, row[c]) for c in _COLUMNS] for row in rows])
                cur.execute(_SET_HEAD, (new_hash,))
            if destinations:
                now = utcnow()
                cur.executemany(_INSERT_OUTBOX, [(row["id"], d, now, now) for row in rows for d in destinations])
            cur.execute("COMMIT")
        # the second round trip (the pipeline's Sync at its end): the rows, the head, the outbox rows, COMMIT
        if pg.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            raise RuntimeError("the audit chain's transaction did not commit")
    except BaseException as exc:
        _abandon(conn, pg)
        if isinstance(exc, psycopg.Error):
            raise DBAPIError.instance(None, None, exc, psycopg.Error, hide_parameters=True,
                                      dialect=conn.dialect) from exc
        raise
    pg.autocommit = False
    return rows


def _abandon(conn: Connection, pg: psycopg.Connection[Any]) -> None:
    """After a failure: roll back what the transaction did (the connection back as the pool
    lent it), or drop a connection that cannot."""
    if pg.closed or pg.broken:
        conn.invalidate()
        return
    try:
        pg.rollback()
        pg.autocommit = False
    except psycopg.Error:
        conn.invalidate()
