"""Identity <-> JSON, for what shared state keeps about a signed-in person (sessions, tokens)."""

from __future__ import annotations

from typing import Any

from broker.domain import Identity


def identity_to_dict(identity: Identity) -> dict[str, Any]:
    return {
        "id": identity.id,
        "username": identity.username,
        "display_name": identity.display_name,
        "email": identity.email,
        "groups": list(identity.groups),
        "attributes": [[name, list(values)] for name, values in identity.attributes],
        "source": identity.source,
        "valid_until": identity.valid_until,
        "mfa_at": identity.mfa_at,
        "mfa_methods": list(identity.mfa_methods),
    }


def identity_from_dict(data: dict[str, Any]) -> Identity:
    return Identity(
        id=str(data["id"]),
        username=str(data["username"]),
        display_name=str(data.get("display_name", "")),
        email=str(data.get("email", "")),
        groups=tuple(str(g) for g in data.get("groups", ())),
        attributes=tuple((str(n), tuple(str(v) for v in vs)) for n, vs in data.get("attributes", ())),
        source=str(data.get("source", "")),
        valid_until=None if data.get("valid_until") is None else float(data["valid_until"]),
        mfa_at=None if data.get("mfa_at") is None else float(data["mfa_at"]),
        mfa_methods=tuple(str(m) for m in data.get("mfa_methods", ())),
    )
