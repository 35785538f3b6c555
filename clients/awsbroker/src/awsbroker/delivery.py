"""Delivery formats for temporary credentials, as the AWS CLI and SDKs consume them.

- ``credential_process``: the JSON a ``credential_process`` command prints (Version 1,
  ``SessionToken``, RFC 3339 UTC ``Expiration``); also the broker API's credentials body.
- ``container``: the container credentials provider's JSON (``Token``, not ``SessionToken``).
- ``env``: export lines for bash/zsh, fish or PowerShell, quoted for that shell.
- ``ini``: a profile section for ``~/.aws/credentials``.

The one implementation: the CLI renders what it fetched, and the server (portal, user API),
which depends on this distribution, renders what it minted. It imports the standard library only
(no xmlsec, database, FastAPI or boto3 on a laptop) and takes any object with the four fields
(``Credentials``, e.g. the server's ``broker.domain.TemporaryCredentials``).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, get_args

Format = Literal["credential_process", "container", "env", "ini"]
Shell = Literal["bash", "fish", "powershell"]
FORMATS: tuple[Format, ...] = get_args(Format)
SHELLS: tuple[Shell, ...] = get_args(Shell)
_PROFILE = re.compile(r"^[A-Za-z0-9_.+@-]{1,64}$")
_REGION = re.compile(r"^[a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-\d$")


class Credentials(Protocol):
    """What every format needs: STS temporary credentials (``expiration`` timezone-aware UTC)."""

    @property
    def access_key_id(self) -> str: ...
    @property
    def secret_access_key(self) -> str: ...
    @property
    def session_token(self) -> str: ...
    @property
    def expiration(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class ParsedCredentials:
    """Credentials read back from credential_process JSON. The secret and the token never appear in a repr."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: datetime


def rfc3339(t: datetime) -> str:
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def credential_process(creds: Credentials) -> dict[str, Any]:
    return {
        "Version": 1,
        "AccessKeyId": creds.access_key_id,
        "SecretAccessKey": creds.secret_access_key,
        "SessionToken": creds.session_token,
        "Expiration": rfc3339(creds.expiration),
    }


def container(creds: Credentials) -> dict[str, Any]:
    return {
        "AccessKeyId": creds.access_key_id,
        "SecretAccessKey": creds.secret_access_key,
        "Token": creds.session_token,
        "Expiration": rfc3339(creds.expiration),
    }


def parse_credential_process(data: Mapping[str, Any] | str) -> ParsedCredentials:
    """The reverse of ``credential_process`` (what ``awsbroker`` reads from the broker's API)."""
    if isinstance(data, str):
        data = json.loads(data)
    if not isinstance(data, Mapping) or data.get("Version") != 1:
        raise ValueError("not credential_process JSON (Version 1)")
    try:
        expiration = datetime.strptime(str(data["Expiration"]).replace("+00:00", "Z"), "%Y-%m-%dT%H:%M:%SZ")
        return ParsedCredentials(
            access_key_id=str(data["AccessKeyId"]),
            secret_access_key=str(data["SecretAccessKey"]),
            session_token=str(data["SessionToken"]),
            expiration=expiration.replace(tzinfo=UTC),
        )
    except (KeyError, ValueError) as exc:
        raise ValueError(f"incomplete credential_process JSON ({type(exc).__name__})") from None


def _env_vars(creds: Credentials, region: str | None) -> list[tuple[str, str]]:
    pairs = [
        ("AWS_ACCESS_KEY_ID", creds.access_key_id),
        ("AWS_SECRET_ACCESS_KEY", creds.secret_access_key),
        ("AWS_SESSION_TOKEN", creds.session_token),
        ("AWS_CREDENTIAL_EXPIRATION", rfc3339(creds.expiration)),
    ]
    if region:
        if not _REGION.match(region):
            raise ValueError(f"not an AWS region: {region!r}")
        pairs += [("AWS_REGION", region), ("AWS_DEFAULT_REGION", region)]
    return pairs


def _fish_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _powershell_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def env(creds: Credentials, *, shell: Shell = "bash", region: str | None = None) -> str:
    """Lines that set the credentials in the current shell (``eval "$(awsbroker ...)"``)."""
    pairs = _env_vars(creds, region)
    if shell == "bash":
        lines = [f"export {k}={shlex.quote(v)}" for k, v in pairs]
    elif shell == "fish":
        lines = [f"set -gx {k} {_fish_quote(v)};" for k, v in pairs]
    elif shell == "powershell":
        lines = [f"$Env:{k} = {_powershell_quote(v)}" for k, v in pairs]
    else:
        raise ValueError(f"unknown shell {shell!r}; one of {', '.join(SHELLS)}")
    return "\n".join(lines) + "\n"


def ini(creds: Credentials, *, profile: str = "default", region: str | None = None) -> str:
    """A ``~/.aws/credentials`` section (values never contain newlines: checked)."""
    if not _PROFILE.match(profile):
        raise ValueError("a profile name is 1-64 of letters, digits and _ . + @ -")
    lines = [f"[{profile}]"]
    for key, value in (
        ("aws_access_key_id", creds.access_key_id),
        ("aws_secret_access_key", creds.secret_access_key),
        ("aws_session_token", creds.session_token),
    ):
        if "\n" in value or "\r" in value:
            raise ValueError(f"{key} contains a line break")
        lines.append(f"{key} = {value}")
    if region:
        if not _REGION.match(region):
            raise ValueError(f"not an AWS region: {region!r}")
        lines.append(f"region = {region}")
    return "\n".join(lines) + "\n"


def render(creds: Credentials, fmt: Format, **options: Any) -> str:
    """One format as text: JSON for credential_process/container, shell lines for env, an ini section."""
    if fmt == "credential_process":
        return json.dumps(credential_process(creds))
    if fmt == "container":
        return json.dumps(container(creds))
    if fmt == "env":
        return env(creds, **options)
    if fmt == "ini":
        return ini(creds, **options)
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
