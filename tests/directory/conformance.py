"""The directory conformance suite: one behaviour set every password connector must show.

As dex runs ``storage/conformance`` against each storage, ``DirectoryConformance`` runs against
each directory backend (static, OpenLDAP slapd, Samba AD) through the one parametrised
``directory`` fixture in conftest.py. A backend hands the suite a ``DirectoryFixture``: a
connector and what its seed data holds (a known user, a disabled one, nested groups, the
immutable id read from the directory itself, a way to cause an outage). The per-backend files
keep only what is specific to one backend (AD's account flags and login forms, LDAP TLS,
referrals, paging, group strategies, hash schemes, ...).

Behaviours: a valid login; a wrong password is a value, not an exception; an unknown user, a
disabled account, an empty password, a password no directory can check and a username full of
LDAP filter metacharacters answer exactly like a wrong password (same type, code, message,
status), an unknown user for the same work; groups
with the nested ones; an immutable id that is not the username and does not change with the
spelling of the login; attributes for session tags; lookup of the current identity; an outage
raises ``DirectoryUnavailable`` (503), never ``InvalidCredentials``.

A behaviour that cannot apply to a backend is declared in ``not_applicable`` with its reason,
and its test is skipped with that reason (``-ra`` prints it): never a silent skip.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import pytest

from broker.connectors.base import InspectConnector, LookupConnector, PasswordConnector, ProbeConnector
from broker.domain import Identity
from broker.errors import DirectoryUnavailable, InvalidCredentials

GENERIC = {"code": "invalid_credentials", "message": "invalid username or password"}


@runtime_checkable
class Directory(PasswordConnector, LookupConnector, ProbeConnector, InspectConnector, Protocol):
    """What every directory connector is: password sign-in, lookup, probe and inspect."""


Work = Callable[[], Mapping[str, int]]


@dataclass(frozen=True)
class DirectoryFixture:
    """One backend's connector and what its seed data holds, for the behaviour set."""

    backend: str
    connector: Directory
    user: str
    """A known, usable user (the canonical username the directory returns)."""
    password: str
    spellings: tuple[str, ...]
    """Other ways to type ``user`` that name the same account (case, spaces, mail, UPN, DOMAIN\\user)."""
    display_name: str
    email: str
    groups: frozenset[str]
    """Every group of ``user``, nested ones included: exactly these."""
    nested_groups: frozenset[str]
    """The part of ``groups`` that ``user`` is in only through a group in a group."""
    immutable_id: str
    """``user``'s immutable id as the directory itself stores it (entryUUID, objectGUID, ``id:``)."""
    attributes: Mapping[str, tuple[str, ...]]
    """``user``'s extra attributes for session tags: exactly these."""
    other_user: str
    other_password: str
    disabled_user: str
    """An account the directory says is disabled; ``disabled_password`` is its right password."""
    disabled_password: str
    disabled_reason: str
    """The refusal's ``reason`` (audit log only) for ``disabled_user`` with its right password."""
    work: Work
    """Work done so far (directory requests, or hash checks): a refusal must cost what another does."""
    refusal_work: Mapping[str, int]
    """What one refused login costs, wrong password or unknown user alike (once connections are open)."""
    outage: Callable[[], Directory] | None
    """A connector to the same directory that cannot reach it (a dead port)."""
    not_applicable: Mapping[str, str] = field(default_factory=dict)
    """Behaviour → why it cannot apply to this backend (``nested_groups``, ``outage``)."""

    def __post_init__(self) -> None:
        if not self.nested_groups and "nested_groups" not in self.not_applicable:
            raise ValueError(f"{self.backend}: no nested groups and no reason why")
        if self.outage is None and "outage" not in self.not_applicable:
            raise ValueError(f"{self.backend}: no way to cause an outage and no reason why")

    def applies(self, behaviour: str) -> None:
        """Skip, saying why, when ``behaviour`` cannot apply to this backend."""
        reason = self.not_applicable.get(behaviour)
        if reason is not None:
            pytest.skip(f"not applicable to {self.backend}: {reason}")

    def sign_in(self) -> Identity:
        who = self.connector.login(self.user, self.password)
        assert isinstance(who, Identity), f"{self.backend}: {self.user} with the right password: {who!r}"
        return who

    def refused(self, username: str, password: str) -> InvalidCredentials:
        result = self.connector.login(username, password)
        assert isinstance(result, InvalidCredentials), f"{self.backend}: {username!r} signed in: {result!r}"
        return result

    def wrong_answer(self) -> InvalidCredentials:
        """A wrong password's refusal, to compare others with; then a good sign-in, so that no
        test brings ``user`` nearer to a lockout (AD counts failures until a success)."""
        wrong = self.refused(self.user, self.other_password)
        self.sign_in()
        return wrong

    def cost(self, username: str, password: str) -> tuple[InvalidCredentials, dict[str, int]]:
        before = self.work()
        result = self.refused(username, password)
        after = self.work()
        return result, {k: after[k] - before.get(k, 0) for k in after}


def answer(result: InvalidCredentials) -> tuple[type, dict[str, object], str, int, object]:
    """All a client can tell of a refusal: its type, body, text, status and headers."""
    return type(result), result.to_dict(), str(result), result.status, result.headers


def filter_injections(user: str) -> list[str]:
    """Usernames an unescaped filter would widen or cut short (SECURITY.md, Directory), plus the
    blank, overlong and down-level-wildcard names nobody can have."""
    return [
        "*",
        "*)(uid=*",
        "*)(sAMAccountName=*",
        "admin)(|(uid=*",
        "admin)(|(sAMAccountName=*",
        f"{user[:-1]}*",
        f"*{user[1:]}",
        f"{user})(uid=*",
        f"{user}\x00",
        "\x00",
        "\\",
        f"{user[:2]}\\2a{user[2:]}",
        "EXAMPLE\\*",
        "",
        " ",
        "x" * 300,
        "\udc80",  # a lone surrogate (JSON "\\udc80"): no UTF-8 for it
        f"{user}\udc80",
    ]


class DirectoryConformance:
    """The behaviour set; ``test_conformance.py`` runs it against every backend."""

    def test_a_valid_login_gives_the_identity(self, directory: DirectoryFixture) -> None:
        who = directory.sign_in()
        assert who.username == directory.user
        assert who.display_name == directory.display_name
        assert who.email == directory.email
        assert who.source == directory.connector.name

    def test_a_wrong_password_is_a_value_not_an_exception(self, directory: DirectoryFixture) -> None:
        result = directory.refused(directory.user, directory.other_password)
        assert result.reason == "wrong_password"
        assert result.status == 401 and result.code == "invalid_credentials"
        assert result.to_dict() == GENERIC

    def test_an_unknown_user_answers_exactly_like_a_wrong_password_for_the_same_work(
        self, directory: DirectoryFixture
    ) -> None:
        directory.sign_in()  # connections open: compare like with like
        wrong, wrong_work = directory.cost(directory.user, "Not-The-Password-1")
        unknown, unknown_work = directory.cost("nobody-by-that-name", "Not-The-Password-1")
        assert (wrong.reason, unknown.reason) == ("wrong_password", "unknown_user")
        assert answer(unknown) == answer(wrong) and wrong.to_dict() == GENERIC
        assert unknown_work == wrong_work == {**dict.fromkeys(wrong_work, 0), **directory.refusal_work}

    def test_a_disabled_account_is_refused_alike_and_gets_nothing_at_lookup(
        self, directory: DirectoryFixture
    ) -> None:
        wrong = directory.wrong_answer()
        disabled = directory.refused(directory.disabled_user, directory.disabled_password)
        assert disabled.reason == directory.disabled_reason
        assert answer(disabled) == answer(wrong)
        assert directory.connector.lookup(directory.disabled_user) is None
        seen = directory.connector.inspect(directory.disabled_user)
        if directory.disabled_reason == "unknown_user":  # left out of the user search
            assert seen is None
        else:
            assert seen is not None and not seen.usable and seen.notes

    def test_groups_are_all_the_users_groups_each_once(self, directory: DirectoryFixture) -> None:
        who = directory.sign_in()
        assert set(who.groups) == directory.groups
        assert len(who.groups) == len(set(who.groups))

    def test_groups_reached_through_nesting_are_included(self, directory: DirectoryFixture) -> None:
        directory.applies("nested_groups")
        assert directory.nested_groups <= directory.groups
        assert directory.nested_groups <= set(directory.sign_in().groups)
        current = directory.connector.lookup(directory.user)
        assert current is not None and directory.nested_groups <= set(current.groups)

    def test_the_immutable_id_is_the_directorys_whatever_the_spelling(self, directory: DirectoryFixture) -> None:
        who = directory.sign_in()
        assert who.id == directory.immutable_id
        assert who.id not in (directory.user, who.username)
        for spelling in directory.spellings:
            again = directory.connector.login(spelling, directory.password)
            assert isinstance(again, Identity), f"{spelling!r}: {again!r}"
            assert (again.id, again.username) == (who.id, who.username), spelling
        other = directory.connector.login(directory.other_user, directory.other_password)
        assert isinstance(other, Identity) and other.id != who.id

    def test_attributes_for_session_tags(self, directory: DirectoryFixture) -> None:
        assert dict(directory.sign_in().attributes) == dict(directory.attributes)

    def test_lookup_gives_the_current_identity_as_a_login_does(self, directory: DirectoryFixture) -> None:
        who = directory.sign_in()
        assert directory.connector.lookup(directory.user) == who
        for spelling in directory.spellings:
            assert directory.connector.lookup(spelling) == who, spelling
        assert directory.connector.lookup("nobody-by-that-name") is None

    @pytest.mark.parametrize("password", ["", " ", "   ", "\t\n"], ids=repr)
    def test_an_empty_password_is_refused_before_any_work(self, directory: DirectoryFixture, password: str) -> None:
        wrong = directory.wrong_answer()
        empty, work = directory.cost(directory.user, password)
        assert empty.reason == "empty_password"
        assert answer(empty) == answer(wrong)
        assert not any(work.values()), work  # no hash check, no search, no bind, no connection

    def test_inspect_tells_operators_the_same_identity(self, directory: DirectoryFixture) -> None:
        seen = directory.connector.inspect(directory.user)
        assert seen is not None and seen.usable and not seen.notes
        assert seen.identity == directory.sign_in()
        assert directory.connector.inspect("nobody-by-that-name") is None

    @pytest.mark.parametrize(
        "password", ["a\x00b", "tab\there", "line\u2028break", "x\ue000", "\udc80", "\u00ad"], ids=repr
    )
    def test_a_password_that_cannot_be_checked_is_refused_like_a_wrong_one(
        self, directory: DirectoryFixture, password: str
    ) -> None:
        # control and private-use characters (SASLprep, RFC 4013, forbids them in a bind), a lone
        # surrogate, a soft hyphen (nothing once prepared): refused like a wrong password, never
        # an outage (503) nor a crash
        wrong = directory.wrong_answer()
        for username in (directory.user, "nobody-by-that-name"):
            assert answer(directory.refused(username, password)) == answer(wrong), repr(username)

    def test_filter_metacharacters_in_a_username_match_nobody(self, directory: DirectoryFixture) -> None:
        wrong = directory.wrong_answer()
        for username in filter_injections(directory.user):
            # with the user's real password: an unescaped `alic*` would find alice and the bind succeed
            result = directory.refused(username, directory.password)
            assert result.reason == "unknown_user", repr(username)
            assert answer(result) == answer(wrong), repr(username)
            assert directory.connector.lookup(username) is None, repr(username)
        directory.sign_in()  # still working

    def test_an_outage_is_unavailable_never_invalid_credentials(self, directory: DirectoryFixture) -> None:
        directory.applies("outage")
        assert directory.outage is not None
        down = directory.outage()
        for password in (directory.password, directory.other_password):
            with pytest.raises(DirectoryUnavailable) as err:
                down.login(directory.user, password)
            assert err.value.status == 503 and err.value.code == "directory_unavailable"
            assert not isinstance(err.value, InvalidCredentials)
        with pytest.raises(DirectoryUnavailable):
            down.lookup(directory.user)
        with pytest.raises(DirectoryUnavailable):
            down.probe()
        directory.connector.probe()  # the directory itself is fine
