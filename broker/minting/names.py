"""IAM User Guide, id_roles_providers_create_saml_assertions: RoleSessionName and SourceIdentity.

Both are 2-64 characters of ``[\\w+=,.@-]`` (ASCII ``\\w``), and a SourceIdentity must not
start with ``aws:``. A value that already fits is kept as it is. Anything else is made to fit
deterministically: accents are dropped (NFKD), every other character outside the set becomes
``-``, and a short hash of the original is appended, so two different people never end up
with the same name (``josé`` → ``jose.1f0c6a2b``, ``DOMAIN\\bob`` → ``DOMAIN-bob.<hash>``).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import NamedTuple

ALLOWED = re.compile(r"^[A-Za-z0-9_+=,.@-]{2,64}$")
_DISALLOWED = re.compile(r"[^A-Za-z0-9_+=,.@-]+")
_HASH_LEN = 8
MAX_LEN = 64


def _fit(value: str) -> str:
    if ALLOWED.match(value):
        return value
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    base = _DISALLOWED.sub("-", ascii_text).strip("-")
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_LEN]
    base = base[: MAX_LEN - _HASH_LEN - 1] or "u"
    return f"{base}.{digest}"


def role_session_name(value: str) -> str:
    """The RoleSessionName for a person (usually the username): CloudTrail shows it."""
    return _fit(value)


def source_identity(value: str) -> str:
    """The SourceIdentity (the immutable id): fits the charset and never starts with ``aws:``."""
    fitted = _fit(value)
    if fitted.lower().startswith("aws:"):  # unreachable while ':' is outside the set; kept as the rule
        fitted = _fit("id-" + value)
    return fitted


class StsNames(NamedTuple):
    """What the broker sends STS for one person, on both federation paths: the RoleSessionName
    (SAML attribute ``RoleSessionName`` / AssumeRoleWithWebIdentity's parameter) and the
    SourceIdentity (SAML attribute ``SourceIdentity`` / the ID token's source_identity claim).
    CloudTrail records them as ``requestParameters.roleSessionName`` and ``sourceIdentity``."""

    role_session_name: str
    source_identity: str


def sts_names(*, username: str, immutable_id: str) -> StsNames:
    """The RoleSessionName (from the username) and SourceIdentity (from the immutable id) of a person."""
    return StsNames(role_session_name(username), source_identity(immutable_id))
