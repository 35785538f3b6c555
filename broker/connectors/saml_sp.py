"""The broker as a SAML 2.0 service provider (Web Browser SSO profile), on python3-saml in strict mode.

One ``SamlServiceProvider`` per configured IdP (``upstream: [{type: saml, ...}]``):

- ``login_url``: an AuthnRequest by HTTP-Redirect to the IdP's SSO URL from its metadata; the
  request ID is kept in shared state (single use, TTL, bound to the browser) for InResponseTo.
- ``handle_post``: the ACS. In this order, and nothing is read from the response before the end:
  size and base64; a DTD or an entity declaration anywhere refuses the bytes before any XML
  parser sees them; python3-saml strict validation (schema, exactly one assertion, signatures by
  the metadata's certificates only — never a KeyInfo certificate or a fingerprint —,
  ``wantAssertionsSigned`` always, ``wantMessagesSigned`` per IdP, SHA-1 refused, issuer,
  audience, conditions); then the broker's own stricter checks against its clock (``now``):
  Destination and Recipient equal to the ACS URL, an Audience required, the validity window with
  ``clock_skew_seconds``; the assertion ID into the replay cache until NotOnOrAfter (shared
  state: Redis when configured); then InResponseTo must name a pending request of this browser
  (or the IdP allows unsolicited responses). Identity fields come only from the assertion the
  signature covers.

python3-saml, lxml and xmlsec exceptions become ``UpstreamRejected`` in ``_translate`` only.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, NamedTuple
from urllib.parse import urlencode, urlsplit

import httpx
from onelogin.saml2.authn_request import OneLogin_Saml2_Authn_Request
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.errors import OneLogin_Saml2_Error, OneLogin_Saml2_ValidationError
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.metadata import OneLogin_Saml2_Metadata
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

from broker.connectors.base import Connector, SignIn
from broker.connectors.config import SamlUpstreamConfig
from broker.connectors.upstream import (
    MAX_ATTRIBUTES,
    MAX_VALUES,
    Fetcher,
    PendingRequests,
    clean_text,
    enrich,
    group_list,
)
from broker.domain import Identity
from broker.errors import (
    ConfigError,
    SsoRequestInvalid,
    UpstreamDenied,
    UpstreamRejected,
    UpstreamReplay,
    UpstreamUnavailable,
)
from broker.logs import get_logger
from broker.mfa import stepped_up
from broker.redirects import safe_next
from broker.state.base import StateStore
from broker.xml_safety import refuse_unsafe_xml

log = get_logger("broker.upstream.saml")

MAX_RESPONSE_B64 = 512 * 1024
MAX_METADATA = 1024 * 1024
NAMEID = "NameID"
_REASONS = {
    value: name.lower()
    for name, value in vars(OneLogin_Saml2_ValidationError).items()
    if name.isupper() and isinstance(value, int)
}
_SAML = {"saml": C.NS_SAML, "samlp": C.NS_SAMLP}


def _epoch(value: str | None) -> float | None:
    """An xs:dateTime (UTC, as SAML requires) as epoch seconds; UpstreamRejected if malformed."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise UpstreamRejected(reason="bad_timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # SAML times are UTC, even without a zone
    return calendar.timegm(parsed.astimezone(UTC).utctimetuple()) + parsed.microsecond / 1e6


@contextmanager
def _translate() -> Iterator[None]:
    """python3-saml / lxml / xmlsec exceptions → the broker's errors (the one place)."""
    try:
        yield
    except (UpstreamRejected, UpstreamUnavailable, SsoRequestInvalid):
        raise
    except OneLogin_Saml2_ValidationError as exc:
        reason = _REASONS.get(exc.code, "invalid_response")
        if exc.code == OneLogin_Saml2_ValidationError.STATUS_CODE_IS_NOT_SUCCESS:
            raise UpstreamDenied(reason="status_not_success") from None
        raise UpstreamRejected(reason=reason) from None
    except OneLogin_Saml2_Error as exc:
        raise UpstreamRejected(reason=f"saml_error_{exc.code}") from None
    except Exception as exc:  # noqa: BLE001 - lxml XMLSyntaxError, DTDForbidden, xmlsec.Error, ValueError, ...
        log.info("saml_response_unparsable", error_type=type(exc).__name__)
        raise UpstreamRejected(reason="malformed_response") from None


class _Facts(NamedTuple):
    """What ``_check`` established about the one signed assertion."""

    assertion_id: str
    in_response_to: str | None
    """The signed SubjectConfirmationData's, which must agree with the Response's."""
    not_on_or_after: float
    """The earliest NotOnOrAfter (Conditions, SubjectConfirmationData): the replay cache keeps the ID until then."""
    session_end: float | None
    """The earliest AuthnStatement SessionNotOnOrAfter: the IdP's end of the person's session."""
    mfa: tuple[float, str] | None = None
    """(AuthnInstant, AuthnContextClassRef) of an AuthnStatement the config counts as MFA."""


class _IdpSettings:
    """python3-saml settings for one version of the IdP metadata (built once per version)."""

    def __init__(self, settings: OneLogin_Saml2_Settings, *, loaded_at: float) -> None:
        self.settings = settings
        self.loaded_at = loaded_at
        self.sso_url: str = settings.get_idp_sso_url()
        self.entity_id: str = settings.get_idp_data()["entityId"]


class SamlServiceProvider:
    kind: ClassVar[Literal["saml"]] = "saml"

    def __init__(
        self,
        config: SamlUpstreamConfig,
        *,
        public_url: str,
        state: StateStore,
        directory: Connector | None = None,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = config.name
        self.display_name = config.display_name or config.name
        self._config = config
        self._clock = clock
        self._state = state
        self._directory = directory
        base = public_url.rstrip("/")
        self.acs_url = f"{base}/sso/{config.name}/saml/acs"
        self.entity_id = config.sp_entity_id or f"{base}/sso/{config.name}/saml/metadata"
        acs = urlsplit(self.acs_url)
        # python3-saml compares Destination/Recipient with "the current URL": built from the
        # configured public URL, never from the request's Host header.
        self._request_data: dict[str, Any] = {
            "https": "on" if acs.scheme == "https" else "off",
            "http_host": acs.netloc,
            "script_name": acs.path,
            "get_data": {},
            "post_data": {},
        }
        self._pending = PendingRequests(state, f"sso:saml:{config.name}:request")
        self._fetcher = Fetcher(timeout=config.timeout, transport=transport) if config.metadata_url else None
        self._lock = threading.Lock()
        self._current: _IdpSettings | None = None
        self._retry_at = 0.0
        if config.metadata_file is not None:
            try:
                xml = config.metadata_file.read_bytes()
                self._current = self._build(xml, now=clock())
            except (OSError, UpstreamUnavailable) as exc:
                raise ConfigError([f"upstream {config.name}: metadata_file: {exc}"]) from None

    # ---- metadata ----

    def _sp(self) -> dict[str, Any]:
        return {
            "entityId": self.entity_id,
            "assertionConsumerService": {"url": self.acs_url, "binding": C.BINDING_HTTP_POST},
            "NameIDFormat": self._config.name_id_format or C.NAMEID_UNSPECIFIED,
            "x509cert": "",
            "privateKey": "",
        }

    def _build(self, xml: bytes, *, now: float) -> _IdpSettings:
        """Parse IdP metadata (no DTD, no entities) into strict python3-saml settings."""
        cfg = self._config
        try:
            refuse_unsafe_xml(xml)
            wanted = cfg.idp_entity_id
            if wanted is not None and ("'" in wanted or '"' in wanted):
                raise ValueError("idp_entity_id must not contain quotes")
            parsed = OneLogin_Saml2_IdPMetadataParser.parse(
                xml, required_sso_binding=C.BINDING_HTTP_REDIRECT, entity_id=wanted
            )
            idp = dict(parsed.get("idp") or {})
            if "entityId" not in idp or "singleSignOnService" not in idp:
                raise ValueError("no IdP entity with an HTTP-Redirect SingleSignOnService in the metadata")
            signing = self._signing_certs(xml, idp["entityId"])
            if not signing:
                raise ValueError("the IdP metadata has no signing certificate")
            idp.pop("x509cert", None)
            idp.pop("certFingerprint", None)
            idp["x509certMulti"] = {"signing": signing}
            idp.pop("singleLogoutService", None)
            uses_nameid = NAMEID in (cfg.attributes.username, cfg.attributes.id)
            settings = OneLogin_Saml2_Settings(
                {
                    "strict": True,
                    "debug": False,
                    "sp": self._sp(),
                    "idp": idp,
                    "security": {
                        "authnRequestsSigned": False,
                        "wantAssertionsSigned": True,
                        "wantMessagesSigned": cfg.want_messages_signed,
                        "wantAssertionsEncrypted": False,
                        "wantNameIdEncrypted": False,
                        "wantNameId": uses_nameid,
                        "wantAttributeStatement": False,
                        "rejectDeprecatedAlgorithm": True,
                        "signatureAlgorithm": C.RSA_SHA256,
                        "digestAlgorithm": C.SHA256,
                        "requestedAuthnContext": False,
                        "allowRepeatAttributeName": False,
                    },
                },
                sp_validation_only=False,
            )
        except (UpstreamRejected, OneLogin_Saml2_Error, ValueError, TypeError, KeyError) as exc:
            detail = (exc.reason if isinstance(exc, UpstreamRejected) else None) or str(exc)
            log.warning("saml_metadata_unusable", idp=self.name, problem=detail[:200])
            raise UpstreamUnavailable(f"the IdP metadata is not usable: {detail[:200]}") from None
        return _IdpSettings(settings, loaded_at=now)

    @staticmethod
    def _signing_certs(xml: bytes, entity_id: str) -> list[str]:
        dom = OneLogin_Saml2_XML.to_etree(xml)
        certs = []
        for entity in OneLogin_Saml2_XML.query(dom, "//md:EntityDescriptor"):
            if entity.get("entityID") != entity_id:
                continue
            nodes = OneLogin_Saml2_XML.query(
                entity,
                "./md:IDPSSODescriptor/md:KeyDescriptor[not(contains(@use, 'encryption'))]"
                "/ds:KeyInfo/ds:X509Data/ds:X509Certificate",
            )
            certs += ["".join((OneLogin_Saml2_XML.element_text(n) or "").split()) for n in nodes]
            break
        return [c for c in dict.fromkeys(certs) if c]

    def _settings(self, now: float) -> _IdpSettings:
        current = self._current
        cfg = self._config
        if self._fetcher is None or cfg.metadata_url is None:
            assert current is not None
            return current
        if current is not None and (now - current.loaded_at < cfg.metadata_refresh_seconds or now < self._retry_at):
            return current  # fresh, or the last refresh failed less than a minute ago
        with self._lock:
            current = self._current
            if current is not None and now - current.loaded_at < cfg.metadata_refresh_seconds:
                return current
            try:
                xml = self._fetcher.get(cfg.metadata_url, max_bytes=MAX_METADATA, what="metadata", idp=self.name)
                self._current = self._build(xml, now=now)
                log.info("saml_metadata_loaded", idp=self.name, certificates=len(self._signing_of(self._current)))
            except UpstreamUnavailable:
                if current is None:
                    raise
                self._retry_at = now + 60  # keep the last good metadata; try again in a minute
                log.warning("saml_metadata_refresh_failed", idp=self.name)
                return current
            return self._current

    @staticmethod
    def _signing_of(s: _IdpSettings) -> list[str]:
        signing: list[str] = s.settings.get_idp_data()["x509certMulti"]["signing"]  # python3-saml: untyped
        return signing

    def metadata(self) -> bytes:
        """This SP's metadata: entity ID, ACS (HTTP-POST), WantAssertionsSigned; no keys (requests are unsigned)."""
        xml = OneLogin_Saml2_Metadata.builder(self._sp(), authnsign=False, wsign=True)
        return xml.encode("utf-8") if isinstance(xml, str) else xml

    # ---- UpstreamConnector / SAMLConnector ----

    def login_url(self, *, next_url: str, binding: str, now: float | None = None) -> str:
        now = self._clock() if now is None else now
        idp = self._settings(now)
        request = OneLogin_Saml2_Authn_Request(idp.settings, set_nameid_policy=self._config.name_id_format is not None)
        next_url = safe_next(next_url) or "/"
        self._pending.put(
            request.get_id(), {"next": next_url, "binding": binding}, ttl=self._config.request_ttl_seconds
        )
        query = urlencode({"SAMLRequest": request.get_request(deflate=True), "RelayState": next_url})
        return f"{idp.sso_url}{'&' if '?' in idp.sso_url else '?'}{query}"

    def handle_post(self, form: Mapping[str, str], *, binding: str | None, now: float | None = None) -> SignIn:
        now = self._clock() if now is None else now
        encoded = form.get("SAMLResponse") or ""
        if not encoded:
            raise UpstreamRejected(reason="no_saml_response")
        if len(encoded) > MAX_RESPONSE_B64:
            raise UpstreamRejected(reason="response_too_large")
        try:
            xml = base64.b64decode("".join(encoded.split()), validate=True)
        except (binascii.Error, ValueError):
            raise UpstreamRejected(reason="not_base64") from None
        refuse_unsafe_xml(xml)
        idp = self._settings(now)
        with _translate():
            response = OneLogin_Saml2_Response(idp.settings, base64.b64encode(xml).decode("ascii"))
            in_response_to = response.get_in_response_to()
            response.is_valid(self._request_data, request_id=in_response_to, raise_exceptions=True)
            assertion = response._query_assertion("")  # the assertion the signature covers
            if len(assertion) != 1:
                raise UpstreamRejected(reason="wrong_number_of_assertions")
            facts = self._check(response, assertion[0], now=now)
            nameid = response.get_nameid() if NAMEID in (self._config.attributes.username, self._config.attributes.id) else None
            attributes = response.get_attributes()
        assertion_id, in_response_to = facts.assertion_id, facts.in_response_to
        # The assertion ID is remembered until the assertion expires (shared state: replicas agree).
        key = f"sso:saml:{self.name}:assertion:{hashlib.sha256(assertion_id.encode()).hexdigest()}"
        ttl = max(1.0, facts.not_on_or_after + self._config.clock_skew_seconds - now)
        if not self._state.set_if_absent(key, "1", ttl=ttl):
            raise UpstreamReplay(reason="assertion_replayed")
        if in_response_to is not None:
            pending = self._pending.take(in_response_to, binding=binding)
            next_url = safe_next(pending.get("next")) or "/"
        elif self._config.allow_unsolicited:
            next_url = safe_next(form.get("RelayState")) or "/"
        else:
            raise SsoRequestInvalid(reason="unsolicited_response")
        identity, subject = self._identity(nameid, attributes)
        if self._config.enrich_from_directory is not None:
            identity = enrich(identity, self._config.enrich_from_directory, self._directory, subject=subject, idp=self.name)
        if facts.session_end is not None:  # the IdP ends the session then (SAML core 2.7.2)
            identity = replace(identity, valid_until=facts.session_end)
        if facts.mfa is not None:  # the IdP's answer proves a second factor, as the config counts it
            identity = stepped_up(identity, method=facts.mfa[1], at=facts.mfa[0])
        return SignIn(identity, next_url)

    def _check(self, response: OneLogin_Saml2_Response, assertion: Any, *, now: float) -> _Facts:
        """The broker's own checks on top of python3-saml's, against the broker's clock."""
        skew = self._config.clock_skew_seconds
        destination = response.document.get("Destination")
        if destination is not None and destination != self.acs_url:
            raise UpstreamRejected(reason="wrong_destination")
        if destination is None and response.document.find("{http://www.w3.org/2000/09/xmldsig#}Signature") is not None:
            raise UpstreamRejected(reason="no_destination")  # a signed Response must name its Destination
        audiences = [a.text or "" for a in assertion.findall("saml:Conditions/saml:AudienceRestriction/saml:Audience", _SAML)]
        if self.entity_id not in [a.strip() for a in audiences]:
            raise UpstreamRejected(reason="wrong_audience")
        conditions = assertion.find("saml:Conditions", _SAML)
        not_before = _epoch(conditions.get("NotBefore")) if conditions is not None else None
        deadlines = [_epoch(conditions.get("NotOnOrAfter"))] if conditions is not None else []
        bearer = [
            scd
            for sc in assertion.findall("saml:Subject/saml:SubjectConfirmation", _SAML)
            if sc.get("Method") == C.CM_BEARER
            for scd in sc.findall("saml:SubjectConfirmationData", _SAML)
        ]
        if len(bearer) != 1:
            raise UpstreamRejected(reason="wrong_subject_confirmation")
        scd = bearer[0]
        if scd.get("Recipient") != self.acs_url:
            raise UpstreamRejected(reason="wrong_recipient")
        scd_deadline = _epoch(scd.get("NotOnOrAfter"))
        if scd_deadline is None:
            raise UpstreamRejected(reason="no_expiry")
        deadlines.append(scd_deadline)
        earliest = min(d for d in deadlines if d is not None)
        if earliest <= now - skew:
            raise UpstreamRejected(reason="expired")
        issued = _epoch(assertion.get("IssueInstant"))
        for start in (not_before, _epoch(scd.get("NotBefore")), issued):
            if start is not None and start > now + skew:
                raise UpstreamRejected(reason="not_yet_valid")
        session_ends = [_epoch(s.get("SessionNotOnOrAfter")) for s in assertion.findall("saml:AuthnStatement", _SAML)]
        session_end = min((e for e in session_ends if e is not None), default=None)
        if session_end is not None and session_end <= now - skew:
            raise UpstreamRejected(reason="expired")
        signed_irt = scd.get("InResponseTo")
        outer_irt = response.get_in_response_to()
        if signed_irt is not None and outer_irt is not None and signed_irt != outer_irt:
            raise UpstreamRejected(reason="in_response_to_mismatch")
        assertion_id = assertion.get("ID")
        if not assertion_id:
            raise UpstreamRejected(reason="missing_id")
        return _Facts(assertion_id, signed_irt or outer_irt, earliest, session_end, self._mfa(assertion, now=now))

    def _mfa(self, assertion: Any, *, now: float) -> tuple[float, str] | None:
        """The signed assertion's latest AuthnStatement whose AuthnContextClassRef the config counts."""
        if self._config.mfa is None:
            return None
        counted = set(self._config.mfa.authn_context_class_refs)
        found: list[tuple[float, str]] = []
        for statement in assertion.findall("saml:AuthnStatement", _SAML):
            ref = (statement.findtext("saml:AuthnContext/saml:AuthnContextClassRef", default="", namespaces=_SAML)
                   or "").strip()
            instant = _epoch(statement.get("AuthnInstant"))
            if ref in counted and instant is not None:
                found.append((min(instant, now), ref))  # never in the future, whatever the IdP's clock
        return max(found, default=None)

    def _identity(self, nameid: str | None, attributes: dict[str, list[Any]]) -> tuple[Identity, str]:
        amap = self._config.attributes

        def one(name: str | None) -> str | None:
            if name is None:
                return None
            if name == NAMEID:
                return clean_text(nameid, limit=1024)
            values = [v for v in attributes.get(name, []) if isinstance(v, str)]
            return clean_text(values[0], limit=1024) if values else None

        username = one(amap.username)
        if username is None or len(username) > 256:
            raise UpstreamRejected(reason="no_username")
        subject = one(amap.id)
        if subject is None:
            raise UpstreamRejected(reason="no_immutable_id")
        groups = group_list(attributes.get(amap.groups)) if amap.groups else ()
        kept = []
        for name, values in list(attributes.items())[:MAX_ATTRIBUTES]:
            if name == amap.groups:
                continue
            texts = tuple(v for v in (clean_text(x) for x in values[:MAX_VALUES]) if v is not None)
            if texts:
                kept.append((name, texts))
        identity = Identity(
            id=f"{self.name}:{subject}",
            username=username,
            display_name=one(amap.display_name) or username,
            email=one(amap.email) or "",
            groups=groups,
            attributes=tuple(kept),
            source=self.name,
        )
        return identity, subject

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()

    def __repr__(self) -> str:
        return f"SamlServiceProvider(name={self.name!r}, entity_id={self.entity_id!r})"
