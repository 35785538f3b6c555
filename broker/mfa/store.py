"""Where second factors are kept: ``FactorStore`` (the SQL one: ``broker.db.mfa_store``).

Every change that decides something is conditional, so that many replicas agree: a TOTP code is
accepted by ``use_totp`` only while the stored ``last_step`` is below its time step (one code
used twice, even by two replicas at the same moment, is accepted once), and a recovery code is
used by setting ``used_at`` only where it is still null.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class TotpFactor:
    person_id: str
    username: str
    sealed_secret: str = field(repr=False)
    """The secret as stored (``broker.mfa.secrets``: encrypted, or ``plain:``)."""
    confirmed: bool
    created_at: datetime
    last_step: int | None
    last_used_at: datetime | None


class FactorStore(Protocol):
    def totp(self, person_id: str) -> TotpFactor | None:
        """The person's TOTP factor, confirmed or not."""
        ...

    def start_totp(self, *, person_id: str, username: str, sealed_secret: str, at: datetime) -> bool:
        """A new unconfirmed secret (replacing an unconfirmed one); False when a confirmed one exists."""
        ...

    def confirm_totp(self, person_id: str, *, step: int, at: datetime, recovery_digests: list[str]) -> bool:
        """Confirm the unconfirmed factor with the code of ``step`` (its first use) and store the
        recovery codes; False when it was confirmed meanwhile or ``step`` is not new."""
        ...

    def use_totp(self, person_id: str, *, step: int, at: datetime) -> bool:
        """Accept a code of ``step``: only while the confirmed factor's ``last_step`` is below it."""
        ...

    def remove_totp(self, person_id: str) -> bool:
        """Remove the TOTP factor and the recovery codes; False when there was none."""
        ...

    def replace_recovery_codes(self, person_id: str, digests: list[str], *, at: datetime) -> None:
        """The person's recovery codes are now exactly these (earlier ones stop working)."""
        ...

    def use_recovery_code(self, person_id: str, digest: str, *, at: datetime) -> bool:
        """Use one unused code of this digest: True once."""
        ...

    def recovery_codes_left(self, person_id: str) -> int:
        ...
