"""Users declared in the YAML file with bcrypt or argon2 hashes: the demo's directory.

Also fine for a handful of users. An unknown username is checked against a dummy hash of the
same scheme, so it costs what a wrong password costs.
"""

from __future__ import annotations

from dataclasses import replace

import bcrypt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from broker.connectors.base import Inspection, LoginResult, blank_password
from broker.connectors.config import StaticDirectoryConfig, StaticUser
from broker.connectors.membership import Membership, Person
from broker.domain import Identity
from broker.errors import InvalidCredentials
from broker.groups import display_name, match_key

# Hashes of a random string nobody knows, at the libraries' default costs; used for unknown users.
_DUMMY_BCRYPT = b"$2b$12$28a6RxqUBHGqeQuTQT6usuNQ7uRTcVocqlLaH74iaueWVzk9LaR6a"
_DUMMY_ARGON2 = (
    "$argon2id$v=19$m=65536,t=3,p=4$F1RPBCyrkql27629dAf66Q$V+BCFaCDrMBVmg4gAgCY4bF7CP2ZKx1nFkZyzYRPMck"
)
_ARGON2 = PasswordHasher()


def dummy_hash(hashes: list[str]) -> str:
    """The hash an unknown name is checked against: of the scheme most of ``hashes`` use, so it
    costs about what a wrong password costs."""
    argon2_users = sum(h.startswith("$argon2") for h in hashes)
    return _DUMMY_ARGON2 if argon2_users * 2 > len(hashes) else _DUMMY_BCRYPT.decode()


def verify_password(password: str, password_hash: str) -> bool:
    """bcrypt or argon2, chosen by the hash's prefix. bcrypt reads at most 72 bytes, as it always has.
    A password with no UTF-8 form (a lone surrogate, from JSON ``"\\udc80"``) matches no hash."""
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        return False
    if password_hash.startswith("$argon2"):
        try:
            return _ARGON2.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
    return bcrypt.checkpw(password.encode("utf-8")[:72], password_hash.encode("ascii"))


def _key(username: str) -> str:
    return username.strip().casefold()


class StaticConnector:
    def __init__(self, config: StaticDirectoryConfig) -> None:
        self.name = config.name
        self._users: dict[str, StaticUser] = {_key(u.username): u for u in config.users}
        self._dummy = dummy_hash([u.password_hash for u in config.users])

    def _identity(self, user: StaticUser) -> Identity:
        return Identity(
            id=user.id or f"static:{user.username}",
            username=user.username,
            display_name=user.display_name or user.username,
            email=user.email,
            groups=tuple(dict.fromkeys(user.groups)),
            attributes=tuple((k, tuple(v)) for k, v in sorted(user.attributes.items())),
            source=self.name,
        )

    def login_key(self, username: str) -> str:
        """A name as it is looked up here: stripped and casefolded."""
        return _key(username)

    def login(self, username: str, password: str) -> LoginResult:
        if blank_password(password):
            return InvalidCredentials(reason="empty_password")
        user = self._users.get(_key(username))
        if user is None:
            verify_password(password, self._dummy)
            return InvalidCredentials(reason="unknown_user")
        if not verify_password(password, user.password_hash):
            return InvalidCredentials(reason="wrong_password")
        if user.disabled:
            return InvalidCredentials(reason="account_disabled")
        return self._identity(user)

    def lookup(self, username: str, *, uncached: bool = False) -> Identity | None:  # nothing cached here
        user = self._users.get(_key(username))
        if user is None or user.disabled:
            return None
        return self._identity(user)

    def find_by(self, attribute: str, value: str) -> Identity | None:
        """The one enabled user whose ``username``, ``email``, ``id`` or declared attribute equals
        ``value`` (usernames and emails case-insensitively), for directory enrichment."""
        wanted = _key(value)
        found = []
        for user in self._users.values():
            if attribute == "username":
                hit = _key(user.username) == wanted
            elif attribute == "email":
                hit = bool(user.email) and _key(user.email) == wanted
            elif attribute == "id":
                hit = (user.id or f"static:{user.username}") == value.strip()
            else:
                hit = value.strip() in user.attributes.get(attribute, [])
            if hit:
                found.append(user)
        if len(found) != 1 or found[0].disabled:
            return None
        return self._identity(found[0])

    def inspect(self, username: str) -> Inspection | None:
        user = self._users.get(_key(username))
        if user is None:
            return None
        notes = ("account disabled in the configuration",) if user.disabled else ()
        return Inspection(self._identity(user), dn=None, notes=notes, usable=not user.disabled)

    def membership(self, *, deadline: float) -> Membership:
        """Every enabled user and their declared groups (no nesting: a static user lists every
        group). ``deadline`` is not needed: nothing leaves the process."""
        names: dict[str, str] = {}
        people = []
        for user in self._users.values():
            keys = []
            for group in user.groups:
                key = match_key(display_name(group))
                names.setdefault(key, display_name(group))
                keys.append(key)
            if not user.disabled:
                people.append(Person(replace(self._identity(user), groups=()), tuple(dict.fromkeys(keys))))
        return Membership(names=names, people=people)

    def probe(self) -> None:
        return None

    def close(self) -> None:
        return None
