"""`broker preview-assertion`: the signed SAML Response or ID token the broker would send to STS,
without calling STS — what an operator compares with the IAM provider when AWS answers
"invalid identity token".

The person's identity comes from ``--id``/``--groups``/``--attribute`` (or just the username)
until the directory lookup is wired here; the grant comes from the mapping store, as for a real
issuance, so a preview shows exactly the role values, duration and tags the broker would send.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from broker.aws.partitions import partition
from broker.aws.sts import clamp_duration
from broker.config import Config
from broker.domain import Channel, Identity, RoleGrant
from broker.errors import Forbidden, InvalidInput
from broker.minting.factory import Minting, build_minting

PreviewFormat = Literal["saml", "jwt"]


@dataclass(frozen=True)
class Preview:
    text: str
    """The base64 SAML Response or the compact JWT, exactly as STS would receive it."""
    decoded: str
    summary: dict[str, object]


def identity_from_options(
    *, username: str, immutable_id: str | None, groups: Sequence[str], attributes: Sequence[str]
) -> Identity:
    """The person as given on the command line (the directory lookup will replace this)."""
    attrs: dict[str, list[str]] = {}
    for item in attributes:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise InvalidInput(f"--attribute takes NAME=VALUE, got {item!r}")
        attrs.setdefault(name, []).append(value)
    return Identity(
        id=immutable_id or username,
        username=username,
        groups=tuple(groups),
        attributes=tuple((k, tuple(v)) for k, v in attrs.items()),
        source="command-line",
    )


def find_grant(grants: Sequence[RoleGrant], *, account: str, role: str, username: str) -> RoleGrant:
    for g in grants:
        if (account == g.account_id or (g.account_alias or "").lower() == account.lower()) and g.role_name.lower() == role.lower():
            return g
    have = ", ".join(f"{g.account_alias or g.account_id}/{g.role_name}" for g in grants) or "none"
    raise Forbidden(f"{username} has no grant for role {role} in account {account} (their grants: {have})")


def _grants(config: Config, groups: Sequence[str]) -> tuple[RoleGrant, ...]:
    from broker.db.session import make_engine
    from broker.db.store import SqlMappingStore
    from broker.flow import Flow

    engine = make_engine(config.database)
    try:
        return Flow(store=SqlMappingStore(engine)).grants_for(groups).grants
    finally:
        engine.dispose()


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
    now = now or datetime.now(UTC)
    grant = find_grant(_grants(config, identity.groups), account=account, role=role, username=identity.username)
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
        decoded = base64.b64decode(response.encoded).decode("utf-8")
        return Preview(response.encoded, decoded, summary)
    audience = grant.audience or partition(grant.partition).oidc_audience
    token = minting.oidc.id_token(identity=identity, audience=audience, now=now)
    header, payload, _ = token.split(".")
    parts = [json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in (header, payload)]
    summary |= {"issuer": minting.oidc.issuer, "audience": audience, "jwks_uri": minting.oidc.discovery()["jwks_uri"]}
    return Preview(token, json.dumps({"header": parts[0], "claims": parts[1]}, indent=2), summary)
