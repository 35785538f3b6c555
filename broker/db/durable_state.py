"""A ``StateStore`` in the broker's database (table ``durable_state``, migration 0010), for what
must survive a Redis restart without persistence: CLI logins — refresh-token families and their
access and refresh tokens (``broker.oauth.tokens``), indexed by person like every login
(``broker.logins``). SQLAlchemy Core; one statement per call, atomic on SQLite and PostgreSQL
(``INSERT … ON CONFLICT``); expiries are epoch milliseconds on the caller's clock.

Expired rows are never returned; they are deleted when their key is written again, and in bulk
every ``purge_every`` writes (one ``DELETE … WHERE expires_at <= now``), so the table stays the
size of the live logins. Database errors become ``StorageUnavailable`` (503 storage_unavailable).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from typing import cast as cast_type

from sqlalchemy import Connection, Engine, Table, and_, case, cast, delete, func, literal, or_, select, update
from sqlalchemy import Integer as SqlInteger
from sqlalchemy import Text as SqlText
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from broker.db.models import DurableState
from broker.errors import StorageUnavailable
from broker.logs import get_logger
from broker.state import StateConfig, StateStore

log = get_logger("broker.db.durable_state")

T: Table = cast_type(Table, DurableState.__table__)


def _ms(ttl: float) -> int:
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    return max(1, math.ceil(ttl * 1000))


class DatabaseState:
    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time, purge_every: int = 256) -> None:
        self._engine = engine
        self._clock = clock
        self._insert: Any = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        if engine.dialect.name not in ("postgresql", "sqlite"):
            raise ValueError(f"durable state needs PostgreSQL or SQLite, not {engine.dialect.name}")
        self._purge_every = purge_every
        self._writes = 0
        self._lock = threading.Lock()

    # -- plumbing --

    def _now(self) -> int:
        return int(self._clock() * 1000)

    @staticmethod
    def _live(now: int) -> Any:
        return or_(T.c.expires_at.is_(None), T.c.expires_at > now)

    @contextmanager
    def _tx(self, *, write: bool) -> Iterator[Connection]:
        try:
            with self._engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            log.warning("durable_state_unavailable", error_type=type(exc).__name__)
            raise StorageUnavailable() from None
        if write:
            self._maybe_purge()

    def _maybe_purge(self) -> None:
        with self._lock:
            self._writes += 1
            due = self._writes % self._purge_every == 0
        if due:
            self.purge()

    def purge(self) -> int:
        """Delete every expired row; how many."""
        with self._tx(write=False) as conn:
            return int(conn.execute(delete(T).where(T.c.expires_at <= self._now())).rowcount or 0)

    def _upsert(self, key: str, value: str, expires: int | None, *, index: str | None = None,
                only_if_expired: bool = False) -> Any:
        """INSERT, or overwrite the row (an expired row's index membership ends with it)."""
        now = self._now()
        stmt = self._insert(T).values(key=key, value=value, expires_at=expires, index_name=index)
        expired = and_(T.c.expires_at.is_not(None), T.c.expires_at <= now)
        keep_index = index if index is not None else case((expired, None), else_=T.c.index_name)
        return stmt.on_conflict_do_update(
            index_elements=[T.c.key],
            set_={"value": stmt.excluded.value, "expires_at": stmt.excluded.expires_at, "index_name": keep_index},
            where=expired if only_if_expired else None,
        )

    # -- StateStore --

    def get(self, key: str) -> str | None:
        with self._tx(write=False) as conn:
            return conn.execute(select(T.c.value).where(T.c.key == key, self._live(self._now()))).scalar_one_or_none()

    def set(self, key: str, value: str, *, ttl: float | None) -> None:
        expires = None if ttl is None else self._now() + _ms(ttl)
        with self._tx(write=True) as conn:
            conn.execute(self._upsert(key, value, expires))

    def set_if_absent(self, key: str, value: str, *, ttl: float) -> bool:
        expires = self._now() + _ms(ttl)
        with self._tx(write=True) as conn:
            stmt = self._upsert(key, value, expires, only_if_expired=True).returning(T.c.key)
            return conn.execute(stmt).first() is not None  # RETURNING: rowcount is not portable here

    def increment(self, key: str, *, ttl: float, amount: int = 1) -> int:
        now = self._now()
        window = now + _ms(ttl)
        stmt = self._insert(T).values(key=key, value=str(amount), expires_at=window, index_name=None)
        fresh = or_(T.c.expires_at.is_(None), T.c.expires_at <= now)
        counted = cast(cast(T.c.value, SqlInteger) + amount, SqlText)
        stmt = stmt.on_conflict_do_update(
            index_elements=[T.c.key],
            set_={
                "value": case((and_(T.c.expires_at.is_not(None), T.c.expires_at <= now), literal(str(amount))),
                              else_=counted),
                "expires_at": case((fresh, window), else_=T.c.expires_at),
            },
        ).returning(T.c.value)
        with self._tx(write=True) as conn:
            return int(conn.execute(stmt).scalar_one())

    def delete(self, key: str) -> bool:
        now = self._now()
        with self._tx(write=True) as conn:
            rows = conn.execute(delete(T).where(T.c.key == key).returning(T.c.expires_at)).all()
        return any(exp is None or exp > now for (exp,) in rows)

    def set_indexed(self, key: str, value: str, *, ttl: float, index: str, existing_only: bool = False) -> bool:
        now = self._now()
        expires = now + _ms(ttl)
        with self._tx(write=True) as conn:
            if existing_only:
                stmt = update(T).where(T.c.key == key, self._live(now)).values(value=value, expires_at=expires,
                                                                               index_name=index)
                return bool(conn.execute(stmt).rowcount)
            conn.execute(self._upsert(key, value, expires, index=index))
            return True

    def delete_indexed(self, index: str) -> int:
        now = self._now()
        with self._tx(write=True) as conn:
            rows = conn.execute(delete(T).where(T.c.index_name == index).returning(T.c.expires_at)).all()
        return sum(1 for (exp,) in rows if exp is None or exp > now)

    def ttl(self, key: str) -> float | None:
        now = self._now()
        with self._tx(write=False) as conn:
            exp = conn.execute(select(T.c.expires_at).where(T.c.key == key, self._live(now))).scalar_one_or_none()
        return None if exp is None else (exp - now) / 1000

    def ping(self) -> None:
        with self._tx(write=False) as conn:
            conn.execute(select(func.count()).select_from(T).where(literal(False)))

    def __len__(self) -> int:
        with self._tx(write=False) as conn:
            return int(conn.execute(select(func.count()).select_from(T)).scalar_one())


def open_durable_state(config: StateConfig, engine: Engine, state: StateStore) -> StateStore:
    """The store of CLI logins ``state.durable`` names: the database (``engine``), or ``state``."""
    return DatabaseState(engine) if config.durable == "database" else state
