"""`broker preview-assertion`: the signed SAML Response or ID token the broker would send to STS,
without calling STS — what an operator compares with the IAM provider when AWS answers
"invalid identity token".

The person is read from the directory as an issuance reads them (``LookupConnector.lookup``:
groups, immutable id, attributes for session tags); ``--id``/``--groups``/``--attribute``
replace what the directory says, and are the only source when there is no directory or it
cannot be reached (a note says so). The grant and the duration clamp come from the mapping
store, as for a real issuance, so a preview shows exactly the role values, duration and tags
the broker would send.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from broker.aws.partitions import partition
from broker.aws.sts import clamp_duration
from broker.config import Config
from broker.connectors.base import LookupConnector
from broker.connectors.registry import build_connector
from broker.domain import Channel, Identity, RoleGrant
from broker.errors import DirectoryUnavailable, Forbidden, InvalidInput, NotFound
from broker.minting.factory import Minting, build_minting

PreviewFormat = Literal["saml", "jwt"]


@dataclass(frozen=True)
class Preview:
    text: str
    """The base64 SAML Response or the compact JWT, exactly as STS would receive it."""
    decoded: str
    summary: dict[str, object]
    notes: tuple[str, ...] = ()
    """Where the grants came from when not from the database."""


@dataclass(frozen=True)
class Overrides:
    """What ``--id``, ``--groups`` and ``--attribute`` say (None / empty: not given)."""

    immutable_id: str | None = None
    groups: tuple[str, ...] | None = None
    attributes: tuple[str, ...] = ()

    @property
    def given(self) -> bool:
        return self.immutable_id is not None or self.groups is not None or bool(self.attributes)

    def parsed_attributes(self) -> dict[str, tuple[str, ...]]:
        attrs: dict[str, list[str]] = {}
        for item in self.attributes:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise InvalidInput(f"--attribute takes NAME=VALUE, got {item!r}")
            attrs.setdefault(name, []).append(value)
        return {k: tuple(v) for k, v in attrs.items()}

    def apply(self, identity: Identity) -> Identity:
        """The directory's identity with the given options replacing its id, groups and (per
        name) attributes."""
        attrs = dict(identity.attributes) | self.parsed_attributes()
        return replace(
            identity,
            id=self.immutable_id if self.immutable_id is not None else identity.id,
            groups=self.groups if self.groups is not None else identity.groups,
            attributes=tuple(attrs.items()),
        )


@dataclass(frozen=True)
class Person:
    identity: Identity
    notes: list[str] = field(default_factory=list)


def read_person(config: Config, username: str, overrides: Overrides = Overrides()) -> Person:
    """The person as an issuance reads them from the directory, with the overrides applied.

    Without a directory, or when it cannot be reached or has no usable account of that name,
    the overrides are the only source (a note says so); without overrides that is an error.
    """
    alone = Overrides(overrides.immutable_id, overrides.groups or (), overrides.attributes).apply(
        Identity(id=username, username=username, source="command-line")
    )
    d = config.directory
    if d is None:
        return Person(alone, ["no directory: section: the person is what --id/--groups/--attribute say"])
    with contextlib.redirect_stdout(sys.stderr):  # the connector's log lines must not mix with the assertion
        return _read(d, username, overrides, alone)


def _read(d: Any, username: str, overrides: Overrides, alone: Identity) -> Person:
    try:
        connector = build_connector(d)
    except DirectoryUnavailable as exc:
        return _unreadable(username, d.name, exc.message, overrides, alone)
    try:
        if not isinstance(connector, LookupConnector):
            return Person(alone, [f"the {d.type} directory cannot look people up: the person is what the options say"])
        found = connector.lookup(username)
    except DirectoryUnavailable as exc:
        return _unreadable(username, d.name, exc.message, overrides, alone)
    finally:
        connector.close()
    if found is None:
        if not overrides.given:
            raise NotFound(
                f"the directory {d.name!r} has no usable account {username!r} (`broker check-directory --user "
                f"{username} --no-bind` says why); give --groups/--id to preview for someone it does not know"
            )
        return Person(alone, [(f"the directory {d.name!r} has no usable account {username!r}: "
                              "the person is what --id/--groups/--attribute say")])
    notes = [f"read {username!r} from the directory {d.name!r} ({d.type})"]
    replaced = [opt for opt, given in (("--id", overrides.immutable_id is not None), ("--groups", overrides.groups is not None),
                                       ("--attribute", bool(overrides.attributes))) if given]
    if replaced:
        notes.append(f"{', '.join(replaced)} replace what the directory says")
    return Person(overrides.apply(found), notes)


def _unreadable(username: str, name: str, why: str, overrides: Overrides, alone: Identity) -> Person:
    if not overrides.given:
        raise DirectoryUnavailable(
            f"cannot read {username!r} from the directory {name!r} ({why}); give --groups and --id "
            "(and --attribute for session tags) to preview without it"
        )
    return Person(alone, [(f"the directory {name!r} cannot be reached ({why}): "
                          "the person is what --id/--groups/--attribute say")])


def find_grant(grants: Sequence[RoleGrant], *, account: str, role: str, username: str) -> RoleGrant:
    for g in grants:
        if (account == g.account_id or (g.account_alias or "").lower() == account.lower()) and g.role_name.lower() == role.lower():
            return g
    have = ", ".join(f"{g.account_alias or g.account_id}/{g.role_name}" for g in grants) or "none"
    raise Forbidden(f"{username} has no grant for role {role} in account {account} (their grants: {have})")


def _minting(config: Config) -> Minting:
    with contextlib.redirect_stdout(sys.stderr):  # start-up log lines must not mix with the assertion
        return build_minting(
            public_url=config.server.public_url,
            keys=config.keys,
            saml_idp=config.saml_idp,
            oidc=config.oidc,
            session_tags=config.session_tags,
        )


def preview(
    config: Config,
    *,
    identity: Identity,
    account: str,
    role: str,
    fmt: PreviewFormat | None = None,
    channel: Channel = "cli",
    duration: int | None = None,
    now: datetime | None = None,
) -> Preview:
    from broker.cli.check_directory import grants_or_file

    now = now or datetime.now(UTC)
    grants, note = grants_or_file(config, identity.groups)
    notes = (note,) if note else ()
    grant = find_grant(grants, account=account, role=role, username=identity.username)
    seconds = clamp_duration(grant=grant, channel=channel, requested=duration)
    minting = _minting(config)
    fmt = fmt or ("saml" if grant.federation_path == "saml" else "jwt")
    summary: dict[str, object] = {
        "role_arn": grant.role_arn,
        "federation_path": grant.federation_path,
        "duration_seconds": seconds,
        "signing_key": minting.keys.current.kid + (" (EPHEMERAL: AWS does not know this key)" if minting.keys.ephemeral else ""),
    }
    if fmt == "saml":
        response = minting.saml.aws_response(identity=identity, grants=[grant], session_duration=seconds, now=now)
        summary |= {
            "principal_arn": grant.saml_provider_arn,
            "issuer": minting.saml.entity_id,
            "recipient": response.destination,
            "audience": partition(grant.partition).saml_audience,
            "role_session_name": response.session_name,
            "source_identity": response.source_identity,
            "not_on_or_after": response.not_on_or_after.isoformat(),
        }
        if grant.assertion_encryption is not None:  # the decoded Response then shows only ciphertext
            summary["assertion_encryption"] = (f"{grant.assertion_encryption.mode}: the Assertion is encrypted "
                                               "(AES-256-GCM, RSA-OAEP) to the account's certificate")
        decoded = base64.b64decode(response.encoded).decode("utf-8")
        return Preview(response.encoded, decoded, summary, notes)
    audience = grant.audience or partition(grant.partition).oidc_audience
    token = minting.oidc.id_token(identity=identity, audience=audience, now=now)
    header, payload, _ = token.split(".")
    parts = [json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in (header, payload)]
    summary |= {"issuer": minting.oidc.issuer, "audience": audience, "jwks_uri": minting.oidc.discovery()["jwks_uri"]}
    return Preview(token, json.dumps({"header": parts[0], "claims": parts[1]}, indent=2), summary, notes)
