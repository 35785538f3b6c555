"""What the SAML SP (``saml_sp``) and the OIDC RP (``oidc_rp``) connectors share.

- ``PendingRequests``: started sign-ins (AuthnRequest ID, or OIDC state) in shared state, each
  single-use, with a TTL, and bound to the browser that started it.
- ``Fetcher``: bounded HTTP GETs to an IdP (metadata, discovery, JWKS); httpx exceptions become
  ``UpstreamUnavailable`` here and nowhere else.
- ``claim``: a claim by name or by path into nested objects.
- ``enrich``: directory enrichment (the account, groups and status from ``directory:``).

Nothing secret (assertions, codes, tokens, the PKCE verifier) is ever passed to a logger.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import httpx

from broker.connectors.base import AttributeLookupConnector, Connector
from broker.connectors.config import DirectoryEnrichment
from broker.domain import Identity
from broker.errors import SsoRequestInvalid, UpstreamRejected, UpstreamUnavailable, UpstreamUserUnknown
from broker.logs import get_logger
from broker.state.base import StateStore

log = get_logger("broker.upstream")

MAX_NAME = 256
MAX_GROUPS = 5000
MAX_ATTRIBUTES = 64
MAX_VALUES = 64


def binding_of(cookie: str | None) -> str | None:
    """What a pending request stores about its browser: a hash of the browser's cookie, never the cookie."""
    if not cookie or len(cookie) > 256:
        return None
    return hashlib.sha256(cookie.encode("utf-8", "replace")).hexdigest()


def clean_text(value: Any, *, limit: int = MAX_NAME) -> str | None:
    """A usable single-line string (username, email, group), or None."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > limit or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        return None
    return text


class PendingRequests:
    """Started sign-ins in shared state: ``put`` once (set-if-absent, with a TTL), ``take`` once."""

    def __init__(self, state: StateStore, namespace: str) -> None:
        self._state = state
        self._ns = namespace

    def _key(self, request_id: str) -> str:
        # The id comes from the network on the way back: hash it into a bounded key.
        return f"{self._ns}:{hashlib.sha256(request_id.encode('utf-8', 'replace')).hexdigest()}"

    def put(self, request_id: str, record: Mapping[str, Any], *, ttl: float) -> None:
        if not self._state.set_if_absent(self._key(request_id), json.dumps(dict(record)), ttl=ttl):
            raise SsoRequestInvalid(reason="request_id_collision")  # 128+ random bits: not expected, never reused

    def take(self, request_id: str, *, binding: str | None) -> dict[str, Any]:
        """The pending request, consumed; ``SsoRequestInvalid`` when unknown, expired, already
        used (only one of two concurrent takers wins the delete), or started by another browser."""
        key = self._key(request_id)
        raw = self._state.get(key)
        if raw is None or not self._state.delete(key):
            raise SsoRequestInvalid(reason="unknown_or_used_request")
        record: dict[str, Any] = json.loads(raw)  # put() stored a JSON object
        expected = record.get("binding")
        if not binding or not isinstance(expected, str) or not hmac.compare_digest(expected, binding):
            raise SsoRequestInvalid(reason="other_browser")
        return record


class Fetcher:
    """Bounded GETs to an identity provider. ``transport`` lets tests own the network."""

    def __init__(self, *, timeout: float, transport: httpx.BaseTransport | None = None) -> None:
        self.client = httpx.Client(timeout=timeout, transport=transport, follow_redirects=False)

    def get(self, url: str, *, max_bytes: int, what: str, idp: str) -> bytes:
        try:
            with self.client.stream("GET", url, headers={"Accept": "application/json, application/xml"}) as r:
                if r.status_code != 200:
                    log.warning("upstream_fetch_failed", idp=idp, what=what, status=r.status_code)
                    raise UpstreamUnavailable(f"the identity provider's {what} answered HTTP {r.status_code}")
                body = bytearray()
                for chunk in r.iter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        log.warning("upstream_fetch_too_large", idp=idp, what=what, limit=max_bytes)
                        raise UpstreamUnavailable(f"the identity provider's {what} is larger than {max_bytes} bytes")
                return bytes(body)
        except httpx.HTTPError as exc:
            log.warning("upstream_unreachable", idp=idp, what=what, error_type=type(exc).__name__)
            raise UpstreamUnavailable(f"the identity provider's {what} cannot be fetched") from None

    def get_json(self, url: str, *, max_bytes: int, what: str, idp: str) -> dict[str, Any]:
        body = self.get(url, max_bytes=max_bytes, what=what, idp=idp)
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            log.warning("upstream_bad_document", idp=idp, what=what)
            raise UpstreamUnavailable(f"the identity provider's {what} is not a JSON object")
        return data

    def close(self) -> None:
        self.client.close()


_MISSING = object()


def claim(claims: Mapping[str, Any], path: str | list[str]) -> Any:
    """``claims[path]`` when a string names a top-level claim (``https://example.com/groups``),
    else the dotted path (``realm_access.roles``); a list is always a path. None when absent."""
    if isinstance(path, str):
        if path in claims:
            return claims[path]
        path = path.split(".")
    node: Any = claims
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part, _MISSING)
        if node is _MISSING:
            return None
    return node


def group_list(value: Any) -> tuple[str, ...]:
    """Groups from a claim or an attribute: a list of strings (or one string), de-duplicated in order."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value if isinstance(value, (list, tuple)) else None
    if items is None:
        raise UpstreamRejected(reason="groups_not_a_list")
    if len(items) > MAX_GROUPS:
        raise UpstreamRejected(reason="too_many_groups")
    groups = [g for g in (clean_text(i, limit=1024) for i in items) if g is not None]
    return tuple(dict.fromkeys(groups))


def enrich(
    identity: Identity, rule: DirectoryEnrichment, directory: Connector | None, *, subject: str, idp: str
) -> Identity:
    """The directory's account for an upstream sign-in.

    Its groups, status and immutable id replace the upstream ones, and ``source`` is the
    directory's name, so ``Flow.current_identity`` re-reads the account at every issuance.
    """
    if not isinstance(directory, AttributeLookupConnector):
        raise UpstreamUserUnknown(reason="no_directory")
    value = {"username": identity.username, "email": identity.email, "subject": subject}[rule.value]
    if not value:
        raise UpstreamUserUnknown(reason=f"no_{rule.value}")
    found = directory.find_by(rule.attribute, value)
    if found is None:
        log.info("upstream_user_not_in_directory", idp=idp, attribute=rule.attribute)
        raise UpstreamUserUnknown(reason="not_in_directory")
    return found
