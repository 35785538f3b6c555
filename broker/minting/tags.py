"""IAM User Guide, id_session-tags: session tags from directory attributes, AWS limits enforced.

At most 50 tags, keys 1-128 and values 0-256 characters of letters, spaces, digits and
``_ . : / = + - @``; keys are case-insensitive within a session. The tag set comes from the
configuration (``session_tags``) and the person's directory attributes only. A value AWS would
refuse is refused here with a message naming the attribute, rather than truncated or rewritten:
an ABAC tag that silently changes could match another team's resources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broker.domain import Identity
from broker.errors import SessionTagInvalid
from broker.minting.config import MAX_TAG_KEY, MAX_TAG_VALUE, MAX_TAGS, SessionTagsConfig, is_tag_text

AWS_TAGS_CLAIM = "https://aws.amazon.com/tags"


@dataclass(frozen=True, slots=True)
class SessionTags:
    tags: tuple[tuple[str, str], ...] = ()
    """(key, value) pairs, in configuration order."""
    transitive: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.tags) > MAX_TAGS:
            raise SessionTagInvalid(f"{len(self.tags)} session tags; AWS accepts at most {MAX_TAGS}")
        keys = set()
        for key, value in self.tags:
            if not (1 <= len(key) <= MAX_TAG_KEY) or not is_tag_text(key):
                raise SessionTagInvalid(f"session tag key {key[:MAX_TAG_KEY]!r} is not a valid AWS tag key")
            if len(value) > MAX_TAG_VALUE:
                raise SessionTagInvalid(f"session tag {key!r} has a value longer than {MAX_TAG_VALUE} characters")
            if not is_tag_text(value):
                raise SessionTagInvalid(f"session tag {key!r} has characters AWS does not accept in a tag value")
            if key.lower() in keys:
                raise SessionTagInvalid(f"session tag key {key!r} appears twice (keys are case-insensitive)")
            keys.add(key.lower())
        if not {k.lower() for k in self.transitive} <= keys:
            raise SessionTagInvalid("a transitive tag key is not one of the session tags")

    def claim(self) -> dict[str, Any]:
        """The ID token claim AWS reads: principal_tags values are one-element lists."""
        return {
            "principal_tags": {k: [v] for k, v in self.tags},
            "transitive_tag_keys": list(self.transitive),
        }


class TagPolicy:
    """Builds a person's session tags from the configured attribute mapping."""

    def __init__(self, config: SessionTagsConfig) -> None:
        self._tags = tuple(config.tags)
        self._mfa_tag = config.mfa_tag

    def tags_for(self, identity: Identity) -> SessionTags:
        if not self._tags and self._mfa_tag is None:
            return SessionTags()
        attributes = {name.lower(): values for name, values in identity.attributes}
        pairs: list[tuple[str, str]] = []
        transitive: list[str] = []
        for tag in self._tags:
            values = attributes.get(tag.attribute.lower())
            if not values:
                continue  # no attribute, no tag: absence is not an empty value
            value = ":".join(sorted(set(values)))
            if len(value) > MAX_TAG_VALUE or not is_tag_text(value):
                raise SessionTagInvalid(
                    f"the directory attribute {tag.attribute!r} cannot become session tag {tag.key!r}: "
                    f"AWS accepts at most {MAX_TAG_VALUE} characters of letters, digits, spaces and _ . : / = + - @"
                )
            pairs.append((tag.key, value))
            if tag.transitive:
                transitive.append(tag.key)
        if self._mfa_tag is not None:  # step-up MFA: did this sign-in prove a second factor
            pairs.append((self._mfa_tag, "true" if identity.mfa_at is not None else "false"))
        return SessionTags(tuple(pairs), tuple(transitive))
