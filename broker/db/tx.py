"""The stores' one transaction frame and their one way of reading a time back.

``transaction``: a session in a transaction, committed when the block ends well; a database error
becomes ``StorageUnavailable`` (503 ``storage_unavailable``), a ``BrokerError`` raised inside (and
any exception type in ``passing``, e.g. an ``IntegrityError`` the caller turns into an answer)
passes as it is. ``aware``: a stored time as an aware UTC datetime (SQLite gives them back naive).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import overload

from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from broker.errors import BrokerError, StorageUnavailable


@contextmanager
def transaction(sessions: sessionmaker[Session], *,
                passing: tuple[type[Exception], ...] = ()) -> Iterator[Session]:
    let_through: tuple[type[Exception], ...] = (BrokerError, *passing)
    try:
        with sessions.begin() as s:
            yield s
    except let_through:
        raise
    except OperationalError as exc:
        raise StorageUnavailable() from exc
    except SQLAlchemyError as exc:
        raise StorageUnavailable(f"database error: {type(exc).__name__}") from exc


@overload
def aware(at: datetime) -> datetime: ...
@overload
def aware(at: None) -> None: ...
def aware(at: datetime | None) -> datetime | None:
    if at is None:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
