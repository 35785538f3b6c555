"""Configuration of what the broker signs: `keys:`, `saml_idp:`, `oidc:` and `session_tags:`.

Plain pydantic models; ``broker.config.Config`` holds one field per section. Nothing here
reads a file: ``broker.minting.keys.load_keyring`` does, once, at start-up.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

# AWS session tags (IAM User Guide, id_session-tags): at most 50 per session, keys 1-128 and
# values 0-256 characters of letters, spaces, digits and _ . : / = + - @.
MAX_TAGS, MAX_TAG_KEY, MAX_TAG_VALUE = 50, 128, 256
TAG_PUNCTUATION = frozenset("_.:/=+-@")


def is_tag_text(value: str) -> bool:
    """AWS's tag character class ``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]``."""
    return all(c in TAG_PUNCTUATION or unicodedata.category(c)[0] in "LZN" for c in value)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeyFiles(_Section):
    key: Path
    """PEM private key (RSA, at least 2048 bits), file mode 0600 or stricter."""
    cert: Path
    """PEM certificate of that key (self-signed is fine): it goes into the SAML metadata."""


class KeysConfig(_Section):
    current: KeyFiles
    """The key that signs every SAML Response and ID token."""
    next: KeyFiles | None = None
    """Optional rotation key: published in the SAML metadata and the JWKS, not used to sign yet."""


class SamlIdpConfig(_Section):
    entity_id: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    """The IdP's entity id (the Issuer of every Response); default <server.public_url>/saml/metadata."""
    assertion_lifetime: Annotated[int, Field(ge=60, le=600)] = 300
    """Seconds an assertion is usable (SubjectConfirmationData and Conditions NotOnOrAfter)."""
    recipient: Literal["global", "regional"] = "global"
    """global: https://signin.aws.amazon.com/saml; regional: https://<account region>.signin.aws.amazon.com/saml
    (commercial partition only). The role trust policies' saml:aud must name the same URL."""


class OidcConfig(_Section):
    token_lifetime: Annotated[int, Field(ge=30, le=300)] = 300
    """Seconds an ID token is valid (exp - iat); AWS wants it short, at most 5 minutes."""


class SessionTag(_Section):
    key: Annotated[str, Field(min_length=1, max_length=MAX_TAG_KEY)]
    """The AWS tag key (PrincipalTag:<key>)."""
    attribute: Annotated[str, Field(min_length=1, max_length=256)]
    """The directory attribute whose value becomes the tag value (several values: sorted, joined by ':')."""
    transitive: bool = False
    """Also listed in TransitiveTagKeys (the tag survives role chaining)."""

    @field_validator("key")
    @classmethod
    def _aws_key(cls, value: str) -> str:
        return aws_tag_key(value)


def aws_tag_key(value: str) -> str:
    """A tag key AWS accepts (ValueError otherwise)."""
    if not is_tag_text(value):
        raise ValueError("a tag key is letters, digits, spaces and _ . : / = + - @")
    if value.lower().startswith("aws:"):
        raise ValueError("tag keys starting with 'aws:' are reserved by AWS")
    return value


class SessionTagsConfig(_Section):
    tags: Annotated[list[SessionTag], Field(max_length=MAX_TAGS)] = Field(default_factory=list)
    """Session tags taken from directory attributes, sent in SAML assertions and ID tokens alike."""
    mfa_tag: Annotated[str, Field(min_length=1, max_length=MAX_TAG_KEY), AfterValidator(aws_tag_key)] | None = None
    """Step-up MFA: this tag key (e.g. ``mfa``) is added to every session, ``true`` when the sign-in
    proved a second factor (``broker.mfa``), else ``false``; for ABAC (``aws:PrincipalTag/mfa``).
    It counts toward AWS's 50 tags."""

    @model_validator(mode="after")
    def _unique_keys(self) -> SessionTagsConfig:
        seen: set[str] = set()
        for key in [t.key for t in self.tags] + ([self.mfa_tag] if self.mfa_tag is not None else []):
            if key.lower() in seen:  # AWS tag keys are case-insensitive within a session
                raise ValueError(f"tag key {key!r} is listed twice (keys are case-insensitive)")
            seen.add(key.lower())
        if len(seen) > MAX_TAGS:
            raise ValueError(f"{len(seen)} session tags with mfa_tag; AWS accepts at most {MAX_TAGS}")
        return self


def key_problems(*, keys: KeysConfig | None, sts_mode: str, workers: int) -> list[tuple[str, str]]:
    """Cross-section rules, as (path, message): production needs key files; ephemeral keys only
    fit one process."""
    if keys is not None:
        return []
    problems = []
    if sts_mode == "aws":
        problems.append(
            ("keys.current", "key files are required when sts.mode is aws (make them with `broker keys generate`)")
        )
    if workers > 1:
        problems.append(
            ("keys.current", (f"without key files every worker (server.workers: {workers}) would sign with its own "
                             "ephemeral key; configure key files"))
        )
    return problems
