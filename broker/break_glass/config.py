"""The ``break_glass:`` section: when break-glass sign-in is open, whom it alerts, and the accounts.

Each account: a username, a strong password hash (argon2id with at least OWASP's minimum cost,
or bcrypt of cost 12 or more: anything weaker, plaintext or an unknown form is refused), a TOTP
secret read from an environment variable (``totp_secret_env``) or a file (``totp_secret_file``),
never the YAML itself (base32, at least 160 bits), the roles it may use (each declared in the
file's ``mapping.accounts``) and an optional cap on the AWS sessions it gets.

``load_secrets`` reads the TOTP secrets while the file is parsed (``broker.config.parse_config``);
``problems`` checks the section against the others (``broker.config.cross_problems``).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Any, Literal

from argon2 import Type, extract_parameters
from argon2.exceptions import InvalidHashError
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from broker.break_glass import BREAK_GLASS_SOURCE
from broker.config_sources import from_env, from_file
from broker.mapping.model import AccountRef, MappingDocument, RoleName, SessionSeconds

ARGON2_MIN_MEMORY_KIB = 19456
"""OWASP's minimum for argon2id: 19 MiB, 2 iterations, 1 degree of parallelism."""
ARGON2_MIN_TIME = 2
BCRYPT_MIN_COST = 12
TOTP_MIN_BYTES = 20
"""160 bits (RFC 4226's recommended secret length)."""
_BCRYPT = re.compile(r"^\$2[aby]\$(?P<cost>\d\d)\$[./A-Za-z0-9]{53}$")
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def hash_problem(value: str) -> str | None:
    """Why ``value`` is not a strong enough password hash for a break-glass account (None: it is)."""
    if value.startswith("$argon2"):
        try:
            params = extract_parameters(value)
        except (InvalidHashError, ValueError):
            return "not a well-formed argon2 hash"
        if params.type is not Type.ID:
            return "argon2 hashes must be argon2id ($argon2id$...)"
        if params.memory_cost < ARGON2_MIN_MEMORY_KIB or params.time_cost < ARGON2_MIN_TIME:
            return (f"argon2id cost too low (m={params.memory_cost}, t={params.time_cost}): at least "
                    f"m={ARGON2_MIN_MEMORY_KIB}, t={ARGON2_MIN_TIME}")
        if params.salt_len < 16 or params.hash_len < 16:
            return "argon2id salt and hash must be at least 16 bytes"
        return None
    m = _BCRYPT.match(value)
    if m is None:
        return "must be an argon2id ($argon2id$...) or bcrypt ($2b$...) hash, never the password itself"
    if int(m["cost"]) < BCRYPT_MIN_COST:
        return f"bcrypt cost {int(m['cost'])} is too low: at least {BCRYPT_MIN_COST}"
    return None


def totp_secret_problem(secret: str) -> str | None:
    """Why ``secret`` is not a usable TOTP secret (None: base32 of at least 160 bits)."""
    text = secret.strip().replace(" ", "").upper()
    try:
        raw = base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        return "the TOTP secret is not base32"
    if len(raw) < TOTP_MIN_BYTES:
        return f"the TOTP secret has {len(raw) * 8} bits: at least {TOTP_MIN_BYTES * 8}"
    return None


class BreakGlassRole(_Section):
    account: AccountRef
    """The account's 12-digit id or alias, as declared in ``mapping.accounts``."""
    role: RoleName


class BreakGlassAccount(_Section):
    username: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]
    """Lower case; typed on /break-glass only. The identity is ``break-glass-<username>``."""
    password_hash: str
    totp_secret_env: Annotated[str, Field(pattern=_ENV_NAME)] | None = None
    totp_secret_file: str | None = None
    totp_secret: SecretStr | None = None
    """Read from ``totp_secret_env`` / ``totp_secret_file`` when the file is loaded (not a YAML key)."""
    roles: list[BreakGlassRole] = Field(min_length=1, max_length=100)
    session_duration: SessionSeconds | None = None
    """A cap (seconds) on the AWS sessions this account gets, below each role's own maximum."""

    @field_validator("password_hash")
    @classmethod
    def _strong(cls, value: str) -> str:
        problem = hash_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _secret(self) -> BreakGlassAccount:
        if self.totp_secret_env is not None and self.totp_secret_file is not None:
            raise ValueError("give totp_secret_env or totp_secret_file, not both")
        if self.totp_secret is None and self.totp_secret_env is None and self.totp_secret_file is None:
            raise ValueError("a TOTP secret is required: totp_secret_env (a variable's name) or totp_secret_file")
        if self.totp_secret is not None:
            problem = totp_secret_problem(self.totp_secret.get_secret_value())
            if problem is not None:
                raise ValueError(problem)
        return self


class BreakGlassConfig(_Section):
    when: Literal["directory_unavailable", "always"] = "directory_unavailable"
    """``directory_unavailable``: only while the directory does not answer (every server's circuit
    breaker open, or its bind check failing now). ``always``: rehearsals, or no directory to wait for."""
    alert: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list)
    """The webhooks (``notifications.webhooks``) each use alerts."""
    session_seconds: Annotated[int, Field(ge=300, le=43200)] = 3600
    """How long a break-glass portal session lasts (no renewal: sign in again)."""
    accounts: list[BreakGlassAccount] = Field(default_factory=list, max_length=50)

    @field_validator("accounts")
    @classmethod
    def _unique(cls, accounts: list[BreakGlassAccount]) -> list[BreakGlassAccount]:
        seen: set[str] = set()
        for a in accounts:
            if a.username in seen:
                raise ValueError(f"username {a.username!r} is declared twice")
            seen.add(a.username)
        return accounts


def load_secrets(data: dict[str, Any], env: dict[str, str], problems: list[str], *, base: Path | None = None) -> None:
    """Each account's ``totp_secret`` read from its ``totp_secret_env`` or ``totp_secret_file``
    (in the parsed YAML, before validation; a relative file name is relative to ``base``, the
    configuration file's directory); a ``totp_secret`` written in the file is refused."""
    section = data.get("break_glass")
    accounts = section.get("accounts") if isinstance(section, dict) else None
    for i, account in enumerate(accounts if isinstance(accounts, list) else []):
        if not isinstance(account, dict):
            continue
        path = f"break_glass.accounts[{i}]"
        if "totp_secret" in account:
            account.pop("totp_secret")
            problems.append(f"{path}.totp_secret: not a key of the file: give totp_secret_env or totp_secret_file")
        name, file = account.get("totp_secret_env"), account.get("totp_secret_file")
        secret = None
        if isinstance(name, str) and file is None:
            secret = from_env(f"{path}.totp_secret_env", name, env, problems)
        elif isinstance(file, str) and name is None:
            secret = from_file(f"{path}.totp_secret_file", file, problems, base=base)
        if secret is not None:
            account["totp_secret"] = secret.strip()


def problems(config: BreakGlassConfig, *, mapping: MappingDocument | None, directory: Any,
             upstream: Any = None, webhooks: Collection[str] | None = None) -> list[tuple[str, str]]:
    """The section against the others: each role declared in ``mapping.accounts``, each alert one
    of ``webhooks`` (the names ``notifications.webhooks`` declares; None: that section did not
    validate, its own problems are reported), no directory user of a
    break-glass username, no connector named ``break_glass``, and a directory to be unavailable."""
    found: list[tuple[str, str]] = []
    if config.when == "directory_unavailable" and config.accounts and directory is None:
        found.append(("break_glass.when", "directory_unavailable needs a directory: section (or when: always)"))
    names = None if webhooks is None else set(webhooks)
    for i, hook in enumerate(config.alert):
        if names is not None and hook not in names:
            found.append((f"break_glass.alert[{i}]", (f"no webhook {hook!r} in notifications.webhooks "
                          f"({', '.join(sorted(names)) or 'none is declared'})")))
    connectors = [getattr(directory, "name", None), *(getattr(u, "name", None) for u in (upstream or []))]
    if BREAK_GLASS_SOURCE in connectors:
        found.append(("break_glass", (f"a directory or upstream named {BREAK_GLASS_SOURCE!r} would pass for "
                      "break-glass sign-ins: rename it")))
    static_names = {u.username.casefold() for u in getattr(directory, "users", None) or []}
    accounts = {a.id: a for a in (mapping.accounts if mapping is not None else []) if a is not None}
    aliases = {a.alias.lower(): a for a in accounts.values() if a.alias}
    for i, account in enumerate(config.accounts):
        path = f"break_glass.accounts[{i}]"
        if account.username.casefold() in static_names:
            found.append((f"{path}.username", f"{account.username!r} is also a directory user: choose another name"))
        for j, ref in enumerate(account.roles):
            spec = accounts.get(ref.account) or aliases.get(ref.account.lower())
            if spec is None:
                found.append((f"{path}.roles[{j}].account",
                              f"no account {ref.account!r} in mapping.accounts (break-glass roles are declared in the file)"))
            elif not any(r.name.lower() == ref.role.lower() for r in spec.roles):
                found.append((f"{path}.roles[{j}].role",
                              f"account {ref.account!r} declares no role {ref.role!r} in mapping.accounts"))
    return found
