"""The revocation policy ``broker revoke`` writes on a role: IAM User Guide
id_roles_use_revoke-sessions (the console's AWSRevokeOlderSessions), one Deny of everything to
sessions issued before a time, ``DateLessThan aws:TokenIssueTime`` — for the whole role, or scoped
to one person's sessions.

Pure: it builds and merges policy documents; ``broker.cli.revoke`` reads and writes them.

- One inline policy per role, always named ``POLICY_NAME``, with one statement for the whole role
  and/or one per person. Merging keeps other persons' statements, replaces the same person's, and
  a whole-role statement supersedes every person's issued no later than it; a statement this
  module did not write is kept as it is (a Deny is never weakened).
- A person is matched by what the broker put in their sessions: ``aws:SourceIdentity``
  (``broker.minting.names.source_identity`` of the immutable id), which SAML sessions carry from
  the assertion's SourceIdentity attribute and web identity sessions from the ID token's
  ``https://aws.amazon.com/source_identity`` claim (``broker.minting.oidc_issuer``). It is the
  immutable id, so a renamed account or a username typed in another case still matches.
- The time is rounded up to the next whole second: a session issued in the second of the
  revocation is revoked too; one issued later is not.
- A statement whose sessions have all expired (issued before T, T over 12 hours ago) is dropped
  at the next merge, so revocations do not pile up on a role.
- IAM limits a role's inline policies to 10,240 characters together (whitespace not counted):
  a merged document over that is refused here, before any call, with the way out (revoke the
  whole role).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from broker.errors import RevocationTooLarge
from broker.minting.names import source_identity

POLICY_NAME = "BrokerRevokeOlderSessions"
POLICY_VERSION = "2012-10-17"
ISSUE_TIME = "aws:TokenIssueTime"
INLINE_POLICY_LIMIT = 10240
"""IAM quota: the aggregate size of a role's inline policies, whitespace not counted."""
SESSION_LIFETIME = timedelta(seconds=43200)
"""The longest an STS session lives (DurationSeconds at most 12 hours): a statement denying the
sessions issued before T denies nothing once T is that long ago."""
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_WHOLE_ROLE_SID = "RevokeAllOlderSessions"


@dataclass(frozen=True)
class Person:
    """One person, as the broker names them in the sessions it issues."""

    username: str
    immutable_id: str
    """What their sessions' SourceIdentity is made of."""

    def match(self) -> tuple[str, str, str]:
        """(condition operator, key, value) matching this person's sessions, on either path."""
        return "StringEquals", "aws:SourceIdentity", source_identity(self.immutable_id)


def revocation_time(now: datetime) -> datetime:
    """``now`` rounded up to the whole second (aws:TokenIssueTime is compared in seconds)."""
    now = now.astimezone(UTC)
    return datetime.fromtimestamp(math.ceil(now.timestamp()), UTC)


def _stamp(before: datetime) -> str:
    return before.astimezone(UTC).strftime(_TIME_FORMAT)


def statement(before: datetime, match: tuple[str, str, str] | None = None) -> dict[str, Any]:
    """Deny everything to the sessions issued before ``before``: of the whole role (``match``
    None), or only those matching ``match`` (``Person.match``)."""
    condition: dict[str, Any] = {"DateLessThan": {ISSUE_TIME: _stamp(before)}}
    sid = _WHOLE_ROLE_SID
    if match is not None:
        operator, key, value = match
        condition[operator] = {key: value}
        sid = "RevokeOlderSessionsOf" + hashlib.sha256(f"{key}={value}".encode()).hexdigest()[:16]
    return {"Sid": sid, "Effect": "Deny", "Action": "*", "Resource": "*", "Condition": condition}


@dataclass(frozen=True)
class _Parsed:
    before: datetime
    match: tuple[str, str, str] | None


def _parse(item: object) -> _Parsed | None:
    """A statement ``statement`` wrote, read back; None for any other statement."""
    if not isinstance(item, Mapping) or item.get("Effect") != "Deny" or item.get("Action") != "*":
        return None
    condition = item.get("Condition")
    if not isinstance(condition, Mapping) or item.get("Resource") != "*":
        return None
    try:
        stamp = condition["DateLessThan"][ISSUE_TIME]
        before = datetime.strptime(stamp, _TIME_FORMAT).replace(tzinfo=UTC)
    except (KeyError, TypeError, ValueError):
        return None
    if len(condition["DateLessThan"]) != 1:
        return None
    rest = {k: v for k, v in condition.items() if k != "DateLessThan"}
    if not rest:
        return _Parsed(before, None)
    if len(rest) != 1:
        return None
    operator, keys = next(iter(rest.items()))
    if not isinstance(keys, Mapping) or len(keys) != 1:
        return None
    key, value = next(iter(keys.items()))
    if not isinstance(value, str):
        return None
    return _Parsed(before, (operator, key, value))


def _statements(document: Mapping[str, Any] | None) -> list[Any]:
    if document is None:
        return []
    found = document.get("Statement", [])
    return list(found) if isinstance(found, list) else [found]


def size(document: Mapping[str, Any]) -> int:
    """The size IAM counts: the JSON without whitespace."""
    return len(json.dumps(document, separators=(",", ":")))


def merge(existing: Mapping[str, Any] | None, before: datetime,
          match: tuple[str, str, str] | None = None, *, role: str = "the role") -> dict[str, Any]:
    """The role's revocation policy after revoking (``existing``: the policy it has now, or None).

    Raises ``RevocationTooLarge`` when the result exceeds IAM's inline-policy limit."""
    kept: list[Any] = []
    whole: datetime | None = None
    persons: dict[tuple[str, str, str], datetime] = {}
    for item in _statements(existing):
        parsed = _parse(item)
        if parsed is None:
            kept.append(item)
        elif parsed.before <= before - SESSION_LIFETIME:
            continue  # every session it denies has expired by now: dropped, so the policy stays small
        elif parsed.match is None:
            whole = max(whole or parsed.before, parsed.before)
        else:
            persons[parsed.match] = max(persons.get(parsed.match, parsed.before), parsed.before)
    if match is None:
        whole = max(whole or before, before)
    else:
        persons[match] = max(persons.get(match, before), before)  # the same person's statement, replaced
    statements = [statement(whole)] if whole is not None else []
    statements += [statement(t, m) for m, t in persons.items() if whole is None or t > whole]
    document = {"Version": POLICY_VERSION, "Statement": statements + kept}
    if size(document) > INLINE_POLICY_LIMIT:
        raise RevocationTooLarge(
            f"{POLICY_NAME} on {role} would be {size(document)} characters, over IAM's {INLINE_POLICY_LIMIT} "
            "for a role's inline policies: revoke the whole role instead (broker revoke --role ARN)"
        )
    return document
