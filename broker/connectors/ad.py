"""Active Directory: LDAP plus AD's login names, account status and bind sub-codes.

- Login as ``sAMAccountName``, ``userPrincipalName`` (user@example.com) or ``DOMAIN\\user``
  (the domain part must equal ``netbios_domain`` when that is set).
- Refused with the one generic answer, and re-checked at every lookup (issuance): disabled
  (``userAccountControl`` 0x2), locked out (``msDS-User-Account-Control-Computed`` 0x10),
  password expired (0x800000) and account expired (``accountExpires``).
- Bind sub-codes (``data 52e`` in the diagnostic message) name the reason in the audit log.
- The immutable id is ``objectGUID`` in its usual string form.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import ClassVar

from broker.connectors.config import AdDirectoryConfig
from broker.connectors.ldap import LdapConnector, plausible_login
from broker.connectors.ldap_pool import BindResult, Entry, LdapPool
from broker.state.base import StateStore

UF_ACCOUNTDISABLE = 0x2
UF_LOCKOUT = 0x10
UF_PASSWORD_EXPIRED = 0x800000
_NEVER = {0, 0x7FFFFFFFFFFFFFFF}
_FILETIME_EPOCH = 11644473600  # seconds from 1601-01-01 to 1970-01-01
_SUBCODE = re.compile(r"\bdata ([0-9a-fA-F]{3,8})\b")
# AcceptSecurityContext sub-codes: https://ldapwiki.com/wiki/Common%20Active%20Directory%20Bind%20Errors
SUBCODES = {
    "525": "unknown_user",
    "52e": "wrong_password",
    "530": "logon_hours",
    "531": "workstation_restricted",
    "532": "password_expired",
    "533": "account_disabled",
    "568": "too_many_sids",
    "701": "account_expired",
    "773": "must_change_password",
    "775": "account_locked",
}


def _int(entry: Entry, name: str) -> int:
    try:
        return int(entry.first(name, "0"))
    except ValueError:
        return 0


class AdConnector(LdapConnector):
    status_attributes: ClassVar[tuple[str, ...]] = (
        "userAccountControl",
        "msDS-User-Account-Control-Computed",
        "accountExpires",
    )

    def __init__(
        self, config: AdDirectoryConfig, *, state: StateStore | None = None, pool: LdapPool | None = None
    ) -> None:
        super().__init__(config, state=state, pool=pool)
        self._netbios = config.netbios_domain

    def _login_name(self, username: str) -> str | None:
        name = username.strip()
        if "\\" in name:
            domain, _, name = name.partition("\\")
            if self._netbios is not None and domain.casefold() != self._netbios.casefold():
                return None
            if not domain or not name or "\\" in name:
                return None
        return plausible_login(name)

    def login_key(self, username: str) -> str:
        """``CORP\\alice``, ``ANY\\alice`` (without ``netbios_domain``), ``alice@corp.example``
        and ``alice`` count as one account: the sAMAccountName, or a UPN's name part, which in
        AD is almost always the same."""
        return super().login_key(username).partition("@")[0]

    def _problems(self, entry: Entry, now: float | None = None) -> list[str]:
        problems = []
        uac = _int(entry, "userAccountControl")
        computed = _int(entry, "msDS-User-Account-Control-Computed")
        if uac & UF_ACCOUNTDISABLE:
            problems.append("account_disabled")
        if (computed | uac) & UF_LOCKOUT:
            problems.append("account_locked")
        if computed & UF_PASSWORD_EXPIRED:
            problems.append("password_expired")
        expires = _int(entry, "accountExpires")
        if expires not in _NEVER and expires / 10_000_000 - _FILETIME_EPOCH <= (
            time.time() if now is None else now
        ):
            problems.append("account_expired")
        return problems

    def _refusal(self, result: BindResult) -> str:
        m = _SUBCODE.search(result.message)
        if result.code == 49 and m:
            return SUBCODES.get(m.group(1).lower(), f"ad_subcode_{m.group(1).lower()}")
        return super()._refusal(result)

    def _user_id(self, entry: Entry) -> str:
        raw = entry.raw(self._us.id_attribute)
        if raw and len(raw[0]) == 16:
            return str(uuid.UUID(bytes_le=raw[0]))
        return entry.first(self._us.id_attribute)
