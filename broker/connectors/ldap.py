"""OpenLDAP and generic LDAP: search-then-bind with a service account.

Login: refuse a blank password; find the user with the service account (filter values escaped,
RFC 4515; at most one entry, or nobody); bind as that DN with the password on a separate
connection; read the groups with the service account. An unknown user gets a bind to a DN that
does not exist, so it costs what a wrong password costs, and the same ``InvalidCredentials``.
With ``user_search.dn_template`` the bind goes straight to the DN built from the username
(escaped, RFC 4514) and the entry is read afterwards.

Lookup (every issuance): the entry again, its status, and the groups (through the cache).
"""

from __future__ import annotations

import secrets
from typing import Any, ClassVar

from ldap3.core.exceptions import LDAPSASLPrepError
from ldap3.protocol.sasl.sasl import validate_simple_password

from broker.breaker import BreakerState
from broker.connectors.base import Inspection, LoginResult, blank_password
from broker.connectors.config import AdDirectoryConfig, LdapDirectoryConfig
from broker.connectors.group_cache import GroupCache
from broker.connectors.ldap_escape import any_of, dn_value
from broker.connectors.ldap_groups import resolver_for
from broker.connectors.ldap_membership import read_membership
from broker.connectors.ldap_pool import BindResult, Entry, LdapPool, Stats
from broker.connectors.membership import Membership
from broker.domain import Identity
from broker.errors import DirectoryUnavailable, InvalidCredentials
from broker.groups import display_name, match_key
from broker.logs import get_logger
from broker.state.base import StateStore

log = get_logger("broker.directory")
MAX_USERNAME = 256


def plausible_login(name: str) -> str | None:
    """The name to search for, or None for one nobody can have: empty, too long, or carrying
    control characters (a NUL would end the value early in some servers' C code). None means
    "unknown user" — with its dummy bind, like any other unknown name."""
    if not 0 < len(name) <= MAX_USERNAME or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        return None
    if any("\ud800" <= ch <= "\udfff" for ch in name):  # a lone surrogate has no UTF-8 form
        return None
    return name


def sendable_password(password: str) -> bool:
    """False for a password no simple bind can carry: SASLprep (RFC 4013, which ldap3 applies)
    forbids control and private-use characters and lone surrogates. Refused like a wrong
    password, before any request: it is not an outage."""
    try:
        validate_simple_password(password)
    except (LDAPSASLPrepError, UnicodeError):
        return False
    return True


def dc_suffix(dn: str) -> str:
    """The trailing dc= components of a DN (``ou=people,dc=example,dc=org`` → ``dc=example,dc=org``)."""
    parts = [p.strip() for p in dn.split(",")]
    tail: list[str] = []
    for part in reversed(parts):
        if not part.lower().startswith("dc="):
            break
        tail.insert(0, part)
    return ",".join(tail) or dn


def group_names(dns: list[str]) -> tuple[str, ...]:
    """Group DNs → names by the rule in ``broker.groups`` (first RDN value), de-duplicated, sorted."""
    by_key: dict[str, str] = {}
    for dn in dns:
        name = display_name(dn)
        by_key.setdefault(match_key(name), name)
    return tuple(sorted(by_key.values(), key=match_key))


class LdapConnector:
    status_attributes: ClassVar[tuple[str, ...]] = ()
    """Attributes the account checks read (Active Directory adds its own)."""

    def __init__(
        self,
        config: LdapDirectoryConfig | AdDirectoryConfig,
        *,
        state: StateStore | None = None,
        pool: LdapPool | None = None,
    ) -> None:
        self.name = config.name
        self._config = config
        self._us = config.user_search
        self._pool = pool or LdapPool(config)
        self._groups = resolver_for(config.groups, dc_suffix(self._us.base))
        ttl = config.cache.ttl_seconds
        self._cache = GroupCache(state, ttl=ttl, namespace=config.name) if ttl and state is not None else None
        us = self._us
        wanted = [us.id_attribute, us.username_attribute, us.display_name_attribute, us.email_attribute]
        wanted += [*us.attributes, *self._groups.user_attributes, *self.status_attributes]
        self._attributes = list(dict.fromkeys(wanted))
        self._dummy_dn = f"cn=broker-no-such-user-{secrets.token_hex(8)},{us.base}"
        self._dummy_password = secrets.token_urlsafe(24)

    @property
    def stats(self) -> Stats:
        """Requests sent so far (searches, binds): what a login or a lookup costs."""
        return self._pool.stats

    # ---- hooks (Active Directory overrides these) ----

    def _login_name(self, username: str) -> str | None:
        return plausible_login(username.strip())

    def login_key(self, username: str) -> str:
        """The account a typed login name stands for, as the rate limits count it: the name this
        directory would search for, casefolded (LDAP matching ignores case). Each of the
        ``login_attributes`` (uid, mail, ...) is still a name of its own."""
        return (self._login_name(username) or username.strip()).casefold()

    def _problems(self, entry: Entry) -> list[str]:
        """Why this account may not get credentials (reasons for the audit log); [] if it may."""
        return []

    def _refusal(self, result: BindResult) -> str:
        return "wrong_password" if result.code == 49 else f"bind_refused_{result.code}"

    def _user_id(self, entry: Entry) -> str:
        return entry.first(self._us.id_attribute)

    # ---- entries ----

    def _find(self, login: str) -> Entry | None:
        """The one entry whose login attributes match; None for nobody, or for more than one."""
        flt = f"(&{self._us.filter}{any_of(self._us.login_attributes, [login])})"
        entries = self._pool.search(self._us.base, flt, attributes=self._attributes, size_limit=2)
        if len(entries) > 1:
            log.warning("directory_ambiguous_login", directory=self.name, matches=len(entries))
            return None
        return entries[0] if entries else None

    def _read(self, dn: str) -> Entry | None:
        entries = self._pool.search(dn, self._us.filter, attributes=self._attributes, scope="base")
        return entries[0] if entries else None

    def _template_dn(self, login: str) -> str | None:
        template = getattr(self._us, "dn_template", None)
        return None if template is None else template.replace("{username}", dn_value(login))

    def _locate(self, login: str) -> Entry | None:
        dn = self._template_dn(login)
        return self._find(login) if dn is None else self._read(dn)

    # ---- identity ----

    def _resolve_groups(self, entry: Entry) -> list[str]:
        return self._groups.group_dns(self._pool, entry)

    def _identity(self, entry: Entry, groups: tuple[str, ...], login: str) -> Identity:
        us = self._us
        user_id = self._user_id(entry)
        if not user_id:
            log.error("directory_entry_without_id", directory=self.name, attribute=us.id_attribute)
            raise DirectoryUnavailable(
                f"the user entry has no {us.id_attribute}: check user_search.id_attribute"
            )
        return Identity(
            id=user_id,
            username=entry.first(us.username_attribute, login),
            display_name=entry.first(us.display_name_attribute),
            email=entry.first(us.email_attribute),
            groups=groups,
            attributes=tuple((a, tuple(entry.text(a))) for a in us.attributes if entry.text(a)),
            source=self.name,
        )

    def _groups_fresh(self, entry: Entry, user_id: str) -> tuple[str, ...]:
        names = group_names(self._resolve_groups(entry))
        if self._cache is not None:
            self._cache.put(user_id, names)
        return names

    # ---- PasswordConnector / LookupConnector / InspectConnector ----

    def login(self, username: str, password: str) -> LoginResult:
        if blank_password(password):
            return InvalidCredentials(reason="empty_password")
        if not sendable_password(password):
            return InvalidCredentials(reason="unsendable_password")
        login = self._login_name(username)
        template_dn = None if login is None else self._template_dn(login)
        if template_dn is not None:
            result = self._pool.bind(template_dn, password)
            if not result.ok:
                return self._refused(result)
            entry = self._read(template_dn)
            if entry is None:
                return InvalidCredentials(reason="not_in_scope")
        else:
            entry = None if login is None else self._find(login)
            if entry is None:
                self._refused(self._pool.bind(self._dummy_dn, self._dummy_password))
                return InvalidCredentials(reason="unknown_user")
            result = self._pool.bind(entry.dn, password)
            if not result.ok:
                return self._refused(result)
        problems = self._problems(entry)
        if problems:
            return InvalidCredentials(reason=problems[0])
        user_id = self._user_id(entry)
        return self._identity(entry, self._groups_fresh(entry, user_id), login or username)

    def _refused(self, result: BindResult) -> InvalidCredentials:
        if not result.refused:
            log.warning("directory_bind_failed", directory=self.name, code=result.code)
            raise DirectoryUnavailable()
        return InvalidCredentials(reason=self._refusal(result))

    def _groups_of(self, entry: Entry, user_id: str, *, uncached: bool = False) -> tuple[str, ...]:
        """The groups through the cache, or (``uncached``) read now, which refreshes the cache."""
        cached = self._cache.get(user_id) if self._cache is not None and user_id and not uncached else None
        return cached if cached is not None else self._groups_fresh(entry, user_id)

    def lookup(self, username: str, *, uncached: bool = False) -> Identity | None:
        login = self._login_name(username)
        entry = None if login is None else self._locate(login)
        if entry is None or self._problems(entry):
            return None
        return self._identity(entry, self._groups_of(entry, self._user_id(entry), uncached=uncached), login or username)

    def find_by(self, attribute: str, value: str) -> Identity | None:
        """The one usable account whose ``attribute`` equals ``value`` (the value escaped, RFC 4515),
        for directory enrichment of an upstream sign-in; None for nobody, several, or unusable."""
        login = plausible_login(value.strip())
        if login is None:
            return None
        flt = f"(&{self._us.filter}{any_of([attribute], [login])})"
        entries = self._pool.search(self._us.base, flt, attributes=self._attributes, size_limit=2)
        if len(entries) != 1:
            if entries:
                log.warning("directory_ambiguous_lookup", directory=self.name, attribute=attribute, matches=len(entries))
            return None
        entry = entries[0]
        if self._problems(entry):
            return None
        return self._identity(entry, self._groups_of(entry, self._user_id(entry)), login)

    def inspect(self, username: str) -> Inspection | None:
        login = self._login_name(username)
        entry = None if login is None else self._locate(login)
        if entry is None:
            return None
        dns = self._resolve_groups(entry)
        problems = self._problems(entry)
        identity = self._identity(entry, group_names(dns), login or username)
        return Inspection(
            identity, dn=entry.dn, group_dns=tuple(dns), notes=tuple(problems), usable=not problems
        )

    def membership(self, *, deadline: float) -> Membership:
        """Every group and every usable account (``broker.connectors.ldap_membership``): two paged
        searches, none started after ``deadline``. An account ``lookup`` would refuse (disabled,
        locked, expired, outside the user filter) is not in it; one without an id is skipped."""

        def person(entry: Entry) -> Identity | None:
            if self._problems(entry) or not self._user_id(entry):
                return None
            return self._identity(entry, (), entry.first(self._us.username_attribute))

        return read_membership(
            self._pool,
            groups=self._config.groups,
            default_base=dc_suffix(self._us.base),
            user_base=self._us.base,
            user_filter=self._us.filter,
            user_attributes=self._attributes,
            person=person,
            deadline=deadline,
        )

    def probe(self) -> None:
        self._pool.probe()

    def breakers(self) -> list[BreakerState]:
        return self._pool.breakers()

    def close(self) -> None:
        self._pool.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, servers={self._config.servers!r})"

    def __getstate__(self) -> Any:  # never pickled with its secrets
        raise TypeError("a directory connector cannot be pickled")
