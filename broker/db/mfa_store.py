"""SqlFactorStore: TOTP factors and recovery codes (``broker.mfa.store.FactorStore``).

The decisions are single conditional statements (``UPDATE ... WHERE last_step < :step``,
``UPDATE ... WHERE used_at IS NULL``): the database, not the replica, says which of two
concurrent uses wins. Times are stored in UTC; SQLite hands them back naive.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime

from sqlalchemy import Engine, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from broker.db.models import MfaRecoveryCode, MfaTotp
from broker.db.session import session_factory
from broker.db.tx import aware, transaction
from broker.errors import StorageUnavailable
from broker.mfa.store import TotpFactor


def _value(row: MfaTotp) -> TotpFactor:
    created = aware(row.created_at)
    assert created is not None
    return TotpFactor(row.person_id, row.username, row.secret, row.confirmed, created, row.last_step,
                      aware(row.last_used_at))


class SqlFactorStore:
    def __init__(self, engine: Engine) -> None:
        self._sessions = session_factory(engine)

    def _tx(self) -> AbstractContextManager[Session]:
        return transaction(self._sessions)

    def totp(self, person_id: str) -> TotpFactor | None:
        with self._tx() as s:
            row = s.get(MfaTotp, person_id)
            return None if row is None else _value(row)

    def start_totp(self, *, person_id: str, username: str, sealed_secret: str, at: datetime) -> bool:
        at = at.astimezone(UTC)
        with self._tx() as s:
            done = s.execute(update(MfaTotp).where(MfaTotp.person_id == person_id, MfaTotp.confirmed.is_(False))
                             .values(username=username, secret=sealed_secret, created_at=at, last_step=None,
                                     last_used_at=None))
            if done.rowcount:  # type: ignore[attr-defined]
                return True
            if s.get(MfaTotp, person_id) is not None:
                return False
        try:
            with self._tx() as s:
                s.add(MfaTotp(person_id=person_id, username=username, secret=sealed_secret, confirmed=False,
                              created_at=at))
        except StorageUnavailable as exc:
            if isinstance(exc.__cause__, IntegrityError):  # another replica enrolled it meanwhile
                return False
            raise
        return True

    def confirm_totp(self, person_id: str, *, step: int, at: datetime, recovery_digests: list[str]) -> bool:
        at = at.astimezone(UTC)
        with self._tx() as s:
            done = s.execute(
                update(MfaTotp).where(MfaTotp.person_id == person_id, MfaTotp.confirmed.is_(False),
                                      or_(MfaTotp.last_step.is_(None), MfaTotp.last_step < step))
                .values(confirmed=True, last_step=step, last_used_at=at))
            if not done.rowcount:  # type: ignore[attr-defined]
                return False
            self._replace(s, person_id, recovery_digests, at)
            return True

    def use_totp(self, person_id: str, *, step: int, at: datetime) -> bool:
        with self._tx() as s:
            done = s.execute(
                update(MfaTotp).where(MfaTotp.person_id == person_id, MfaTotp.confirmed.is_(True),
                                      or_(MfaTotp.last_step.is_(None), MfaTotp.last_step < step))
                .values(last_step=step, last_used_at=at.astimezone(UTC)))
            return bool(done.rowcount)  # type: ignore[attr-defined]

    def remove_totp(self, person_id: str) -> bool:
        with self._tx() as s:
            s.execute(delete(MfaRecoveryCode).where(MfaRecoveryCode.person_id == person_id))
            done = s.execute(delete(MfaTotp).where(MfaTotp.person_id == person_id))
            return bool(done.rowcount)  # type: ignore[attr-defined]

    @staticmethod
    def _replace(s: Session, person_id: str, digests: list[str], at: datetime) -> None:
        s.execute(delete(MfaRecoveryCode).where(MfaRecoveryCode.person_id == person_id))
        s.add_all(MfaRecoveryCode(person_id=person_id, code_sha256=d, created_at=at) for d in digests)

    def replace_recovery_codes(self, person_id: str, digests: list[str], *, at: datetime) -> None:
        with self._tx() as s:
            self._replace(s, person_id, digests, at.astimezone(UTC))

    def use_recovery_code(self, person_id: str, digest: str, *, at: datetime) -> bool:
        with self._tx() as s:
            done = s.execute(
                update(MfaRecoveryCode).where(MfaRecoveryCode.person_id == person_id,
                                              MfaRecoveryCode.code_sha256 == digest, MfaRecoveryCode.used_at.is_(None))
                .values(used_at=at.astimezone(UTC)))
            return bool(done.rowcount)  # type: ignore[attr-defined]

    def recovery_codes_left(self, person_id: str) -> int:
        with self._tx() as s:
            count = s.scalar(select(func.count()).select_from(MfaRecoveryCode).where(
                MfaRecoveryCode.person_id == person_id, MfaRecoveryCode.used_at.is_(None)))
            return int(count or 0)
