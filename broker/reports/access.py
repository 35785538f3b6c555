"""The access report: who can assume each role, through which group, granted by which row or rule.

Computed from the directory (``MembersConnector.membership``: every group and every usable
account, read once per report) and the whole mapping (``MappingStore.full_snapshot``), never from
who signed in lately. What a person's groups give is ``broker.mapping.rules.resolve``, the one
implementation issuance uses; each ``GrantReason``'s group is mapped back to the person's
membership path (person → group → parent group).

One row per (person, role, reason). ``access`` says how the reason gives the role: ``standing``
(always on), ``eligible`` (the person may request it) or ``active`` (eligible, and an approved
request's grant is active now: ``grant_ends_at`` says until when). ``mfa``: the reason's step-up
MFA (empty, ``required``, or its ``mfa_max_age`` in seconds). Filters narrow it; a filter that names nothing gives no
rows, not an error. Rows are produced lazily (``rows``), so CSV and JSON are streamed.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from broker.connectors.base import Connector, MembersConnector
from broker.connectors.membership import Member, Membership
from broker.domain import GrantReason, RoleGrant
from broker.errors import BadRequest
from broker.groups import display_name, match_key
from broker.mapping.rules import resolve
from broker.mapping.snapshot import MappingSnapshot
from broker.minting.names import sts_names

DIRECTORY_SECONDS = 120.0
"""The directory reads of one report end within this (plus one directory ``timeout``)."""
PATH_SEPARATOR = " > "
COLUMNS = (
    "account_id",
    "account_alias",
    "environment",
    "role_name",
    "role_arn",
    "username",
    "user_id",
    "display_name",
    "email",
    "group",
    "path",
    "kind",
    "ref",
    "via",
    "console",
    "cli",
    "session_cap",
    "role_session_name",
    "source_identity",
    "mfa",
    "access",
    "grant_ends_at",
)
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ReportFilter:
    account: str | None = None
    """A 12-digit id or an alias (case-insensitive)."""
    role: str | None = None
    """A role name (case-insensitive) or a role ARN."""
    group: str | None = None
    """A group name or DN: rows whose membership path passes through it."""
    user: str | None = None
    """A username (case-insensitive) or an immutable id."""

    def account_ok(self, grant: RoleGrant) -> bool:
        if self.account is None:
            return True
        a = self.account.strip()
        return grant.account_id == a or (grant.account_alias or "").lower() == a.lower()

    def role_ok(self, grant: RoleGrant) -> bool:
        if self.role is None:
            return True
        r = self.role.strip()
        return grant.role_arn == r if r.startswith("arn:") else grant.role_name.lower() == r.lower()

    def user_ok(self, member: Member) -> bool:
        if self.user is None:
            return True
        u = self.user.strip()
        return member.identity.id == u or member.identity.username.casefold() == u.casefold()


def membership_of(directory: Connector | None) -> Membership:
    """One read of the directory's membership for a report, bounded by ``DIRECTORY_SECONDS``."""
    if not isinstance(directory, MembersConnector):
        raise BadRequest(
            "the access report needs a directory (static, ldap or ad) that lists its groups' members"
        )
    return directory.membership(deadline=time.monotonic() + DIRECTORY_SECONDS)


def _cap(grant: RoleGrant, reason: GrantReason) -> int:
    cap = grant.role_max_session if reason.session_duration is None else reason.session_duration
    return min(cap, grant.role_max_session)


ActiveGrants = Mapping[tuple[str, str, str], str]
"""(person's immutable id, account id, lower-cased role name) → the end of their active grant (RFC 3339)."""


def rows(membership: Membership, snapshot: MappingSnapshot, flt: ReportFilter,
         active: ActiveGrants | None = None) -> Iterator[dict[str, Any]]:
    """The report's rows, person by person (sorted by username), role by role; ``active``: the
    just-in-time grants active now (none given: eligible reasons say ``eligible``)."""
    active = active or {}
    giving: set[str] = set()
    for name in membership.group_names():
        grants = resolve([name], snapshot).grants
        if any(flt.account_ok(g) and flt.role_ok(g) for g in grants):
            giving.add(match_key(name))
    if not giving:
        return
    group_key = None if flt.group is None else match_key(display_name(flt.group))
    members = sorted(
        (m for m in membership.members_of(_names(membership, giving)) if flt.user_ok(m)),
        key=lambda m: (m.identity.username.casefold(), m.identity.id),
    )
    cache: dict[frozenset[str], tuple[RoleGrant, ...]] = {}
    for member in members:
        mine = [g for g in member.identity.groups if match_key(g) in giving]
        key = frozenset(match_key(g) for g in mine)
        if key not in cache:
            cache[key] = resolve(mine, snapshot).grants
        grants = cache[key]
        identity = member.identity
        names = sts_names(username=identity.username, immutable_id=identity.id)
        for grant in grants:
            if not (flt.account_ok(grant) and flt.role_ok(grant)):
                continue
            ends = active.get((identity.id, grant.account_id, grant.role_name.lower()), "")
            for reason in grant.reasons:
                path = member.path(reason.group)
                if group_key is not None and group_key not in {match_key(p) for p in path}:
                    continue
                yield {
                    "account_id": grant.account_id,
                    "account_alias": grant.account_alias or "",
                    "environment": grant.environment or "",
                    "role_name": grant.role_name,
                    "role_arn": grant.role_arn,
                    "username": identity.username,
                    "user_id": identity.id,
                    "display_name": identity.display_name,
                    "email": identity.email,
                    "group": path[-1],
                    "path": list(path),
                    "kind": reason.kind,
                    "ref": reason.ref,
                    "via": reason.via or "",
                    "console": reason.console,
                    "cli": reason.cli,
                    "session_cap": _cap(grant, reason),
                    "role_session_name": names.role_session_name,
                    "source_identity": names.source_identity,
                    "mfa": _mfa(reason),
                    "access": reason.access if reason.access == "standing" or not ends else "active",
                    "grant_ends_at": ends if reason.access == "eligible" else "",
                }


def _mfa(reason: GrantReason) -> str:
    """Step-up MFA through this reason: ``""`` none, ``required`` (``mfa.default_max_age``), or the max age in seconds."""
    if reason.mfa_max_age is not None:
        return str(reason.mfa_max_age)
    return "required" if reason.require_mfa else ""


def _names(membership: Membership, keys: set[str]) -> list[str]:
    return [n for n in membership.group_names() if match_key(n) in keys]


def safe_cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: a value starting with ``= + - @`` (a formula,
    CSV injection) or a tab / carriage return gets a leading ``'`` (OWASP's advice)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        value = PATH_SEPARATOR.join(str(v) for v in value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def csv_lines(report: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The header, then one CSV line per row (RFC 4180 quoting), each produced when asked for."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(cells: Iterable[object]) -> str:
        writer.writerow(list(cells))
        out = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return out

    yield line(COLUMNS)
    for row in report:
        yield line(safe_cell(row[c]) for c in COLUMNS)


def json_chunks(report: Iterable[dict[str, Any]]) -> Iterator[str]:
    """``{"columns": [...], "rows": [...], "count": n}``, one row per chunk."""
    yield '{"columns": ' + json.dumps(list(COLUMNS)) + ', "rows": ['
    count = 0
    for row in report:
        yield ("," if count else "") + "\n" + json.dumps(row, ensure_ascii=False)
        count += 1
    yield f'\n], "count": {count}}}\n'


def batched(chunks: Iterable[str], lines: int = 500) -> Iterator[str]:
    """``lines`` chunks at a time, joined: fewer writes (and worker-thread hops) for a large report."""
    batch: list[str] = []
    for chunk in chunks:
        batch.append(chunk)
        if len(batch) >= lines:
            yield "".join(batch)
            batch.clear()
    if batch:
        yield "".join(batch)
