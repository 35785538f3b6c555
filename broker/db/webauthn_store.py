"""SqlWebAuthnStore: the WebAuthn credentials people registered (``broker.mfa.credentials``).

The counter moves only by a conditional UPDATE (``WHERE id = :id AND sign_count = :seen``): two
assertions verified at once against the same stored counter record one. Times are stored in
UTC; SQLite hands them back naive, so every read makes them aware.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from broker.db.models import WebAuthnCredential as Row
from broker.db.session import session_factory
from broker.db.tx import aware, transaction
from broker.mfa.credentials import NewStoredCredential, StoredCredential


def _value(row: Row) -> StoredCredential:
    return StoredCredential(
        id=row.id, person_id=row.person_id, username=row.username, credential_id=bytes(row.credential_id),
        public_key=bytes(row.public_key), sign_count=row.sign_count, transports=tuple(row.transports or ()),
        aaguid=row.aaguid, label=row.label, created_at=aware(row.created_at),
        last_used_at=aware(row.last_used_at))


class SqlWebAuthnStore:
    def __init__(self, engine: Engine) -> None:
        self._sessions = session_factory(engine)

    def _tx(self) -> AbstractContextManager[Session]:
        return transaction(self._sessions, passing=(IntegrityError,))

    def add(self, new: NewStoredCredential) -> StoredCredential | None:
        try:
            with self._tx() as s:
                row = Row(person_id=new.person_id, username=new.username, credential_id=new.credential_id,
                          public_key=new.public_key, sign_count=new.sign_count, transports=list(new.transports),
                          aaguid=new.aaguid, label=new.label, created_at=new.created_at.astimezone(UTC))
                s.add(row)
                s.flush()
                return _value(row)
        except IntegrityError:
            return None

    def of_person(self, person_id: str) -> list[StoredCredential]:
        with self._tx() as s:
            rows = s.scalars(select(Row).where(Row.person_id == person_id).order_by(Row.id)).all()
            return [_value(r) for r in rows]

    def by_credential_id(self, credential_id: bytes) -> StoredCredential | None:
        with self._tx() as s:
            row = s.scalars(select(Row).where(Row.credential_id == credential_id)).first()
            return None if row is None else _value(row)

    def used(self, credential: StoredCredential, *, sign_count: int, at: datetime) -> bool:
        with self._tx() as s:
            done = s.execute(update(Row).where(Row.id == credential.id, Row.sign_count == credential.sign_count)
                             .values(sign_count=sign_count, last_used_at=at.astimezone(UTC)))
            return bool(done.rowcount)  # type: ignore[attr-defined]

    def remove(self, person_id: str, id: int) -> StoredCredential | None:
        with self._tx() as s:
            row = s.scalars(select(Row).where(Row.id == id, Row.person_id == person_id)).first()
            if row is None:
                return None
            gone = _value(row)
            s.execute(delete(Row).where(Row.id == id))
            return gone
