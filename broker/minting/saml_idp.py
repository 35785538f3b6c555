"""AWS IAM User Guide id_roles_providers_create_saml_assertions, on OASIS SAML 2.0 Core, Bindings and Metadata.

The broker as the SAML identity provider AWS trusts: the IdP metadata to upload with
CreateSAMLProvider, and the signed Response for AssumeRoleWithSAML or for a POST to the AWS
console. XML is built with lxml (never a string template), so a username carrying markup stays
text. The Assertion, then the Response, are signed with RSA-SHA256 and exclusive c14n by
xmlsec, with the key loaded once. The AuthnStatement carries no SessionNotOnOrAfter: AWS would
end the role session at the earlier of it and DurationSeconds. For an account that opted in to
encrypted assertions (``RoleGrant.assertion_encryption``) the signed Assertion is encrypted to
the account's certificate before the Response is signed, and the Response goes to the
provider's own ACS (``broker.minting.saml_encryption``).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import xmlsec
from lxml import etree

from broker.aws.partitions import partition
from broker.domain import Identity, RoleGrant
from broker.errors import InvalidInput
from broker.minting.keys import KeyRing
from broker.minting.names import sts_names
from broker.minting.saml_encryption import AssertionEncrypter
from broker.minting.tags import SessionTags, TagPolicy

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
URI_FORMAT = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
AUTHN_CONTEXT = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"
HTTP_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
HTTP_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"

AWS_ATTR = "https://aws.amazon.com/SAML/Attributes/"
ROLE = AWS_ATTR + "Role"
ROLE_SESSION_NAME = AWS_ATTR + "RoleSessionName"
SESSION_DURATION = AWS_ATTR + "SessionDuration"
SOURCE_IDENTITY = AWS_ATTR + "SourceIdentity"
PRINCIPAL_TAG = AWS_ATTR + "PrincipalTag:"
TRANSITIVE_TAG_KEYS = AWS_ATTR + "TransitiveTagKeys"

MIN_SESSION, MAX_SESSION = 900, 43200
MAX_ASSERTION_B64 = 100_000

_NSMAP = {"samlp": SAMLP, "saml": SAML}


def _q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def _instant(t: datetime) -> str:
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_id() -> str:
    return "_" + secrets.token_hex(20)


@dataclass(frozen=True, slots=True)
class SamlResponse:
    """A signed AWS SAML Response. ``encoded`` is a bearer credential: never log it."""

    encoded: str = field(repr=False)
    """base64 of the signed XML: the SAMLAssertion of AssumeRoleWithSAML, the console's SAMLResponse."""
    destination: str
    """Where it is POSTed (the ACS, or the regional recipient; the provider's own ACS when encrypted)."""
    response_id: str
    assertion_id: str
    not_on_or_after: datetime
    roles: tuple[str, ...]
    """The Role attribute values ("role_arn,provider_arn")."""
    session_name: str
    source_identity: str
    session_duration: int


class SamlIdp:
    """Implements ``broker.minting.SamlIssuer``. Build once: it loads the signing key into xmlsec once."""

    def __init__(
        self,
        *,
        keys: KeyRing,
        entity_id: str,
        sso_url: str,
        tags: TagPolicy,
        assertion_lifetime: int = 300,
        regional_recipient: bool = False,
    ) -> None:
        self.keys = keys
        self.entity_id = entity_id
        self.sso_url = sso_url
        self.tags = tags
        self.lifetime = timedelta(seconds=assertion_lifetime)
        self.regional_recipient = regional_recipient
        current = keys.current
        self._xkey = xmlsec.Key.from_memory(current.private_pem, xmlsec.constants.KeyDataFormatPem, None)
        self._xkey.load_cert_from_memory(current.cert_pem, xmlsec.constants.KeyDataFormatCertPem)
        self._metadata = self._build_metadata()
        self._encrypter = AssertionEncrypter()

    # ---- metadata ----

    def metadata(self) -> bytes:
        """IdP metadata for CreateSAMLProvider / UpdateSAMLProvider: every published key's certificate."""
        return self._metadata

    def _build_metadata(self) -> bytes:
        root = etree.Element(_q(MD, "EntityDescriptor"), nsmap={"md": MD, "ds": DS})
        root.set("entityID", self.entity_id)
        idp = etree.SubElement(root, _q(MD, "IDPSSODescriptor"))
        idp.set("WantAuthnRequestsSigned", "false")
        idp.set("protocolSupportEnumeration", SAMLP)
        for key in self.keys.published:
            kd = etree.SubElement(idp, _q(MD, "KeyDescriptor"), use="signing")
            ki = etree.SubElement(kd, _q(DS, "KeyInfo"))
            etree.SubElement(ki, _q(DS, "KeyName")).text = key.kid
            x509 = etree.SubElement(ki, _q(DS, "X509Data"))
            etree.SubElement(x509, _q(DS, "X509Certificate")).text = base64.b64encode(key.cert_der).decode("ascii")
        etree.SubElement(idp, _q(MD, "NameIDFormat")).text = PERSISTENT
        for binding in (HTTP_REDIRECT, HTTP_POST):
            etree.SubElement(idp, _q(MD, "SingleSignOnService"), Binding=binding, Location=self.sso_url)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)

    # ---- responses ----

    def recipient(self, grant: RoleGrant, region: str | None = None) -> str:
        encryption = grant.assertion_encryption
        return partition(grant.partition).saml_recipient(
            (region or grant.region) if self.regional_recipient else None,
            provider_id=encryption.provider_id if encryption else None,
        )

    def aws_response(
        self,
        *,
        identity: Identity,
        grants: Sequence[RoleGrant],
        session_duration: int,
        now: datetime,
        region: str | None = None,
        tags: SessionTags | None = None,
    ) -> SamlResponse:
        """A signed Response granting ``grants`` (one for an API call; several for the console chooser).

        ``session_duration`` becomes the SessionDuration attribute (the console session; for an
        API call pass the DurationSeconds sent along). Role values come only from the grants.
        """
        if not grants:
            raise InvalidInput("a SAML assertion needs at least one role")
        for g in grants:
            if g.federation_path != "saml" or g.saml_provider_arn is None:
                raise InvalidInput(f"account {g.account_id} is not set up for SAML federation")
        partitions = {g.partition for g in grants}
        if len(partitions) != 1:
            raise InvalidInput("one SAML assertion cannot carry roles of several AWS partitions")
        encryption = grants[0].assertion_encryption
        if any(g.assertion_encryption != encryption for g in grants):
            raise InvalidInput("one SAML assertion cannot go to accounts that encrypt assertions differently")
        if not MIN_SESSION <= session_duration <= MAX_SESSION:
            raise InvalidInput(f"SessionDuration must be {MIN_SESSION}-{MAX_SESSION} seconds, not {session_duration}")
        part = partition(grants[0].partition)
        destination = self.recipient(grants[0], region)
        tags = self.tags.tags_for(identity) if tags is None else tags
        roles = tuple(dict.fromkeys(f"{g.role_arn},{g.saml_provider_arn}" for g in grants))
        session_name, source_id = sts_names(username=identity.username, immutable_id=identity.id)
        not_after = now + self.lifetime

        response_id, assertion_id = _new_id(), _new_id()
        response = etree.Element(_q(SAMLP, "Response"), nsmap=_NSMAP)
        response.set("ID", response_id)
        response.set("Version", "2.0")
        response.set("IssueInstant", _instant(now))
        response.set("Destination", destination)
        etree.SubElement(response, _q(SAML, "Issuer")).text = self.entity_id
        status = etree.SubElement(response, _q(SAMLP, "Status"))
        etree.SubElement(status, _q(SAMLP, "StatusCode"), Value=SUCCESS)

        assertion = etree.SubElement(response, _q(SAML, "Assertion"))
        assertion.set("ID", assertion_id)
        assertion.set("Version", "2.0")
        assertion.set("IssueInstant", _instant(now))
        etree.SubElement(assertion, _q(SAML, "Issuer")).text = self.entity_id

        subject = etree.SubElement(assertion, _q(SAML, "Subject"))
        name_id = etree.SubElement(subject, _q(SAML, "NameID"), Format=PERSISTENT)
        try:
            name_id.text = identity.id
        except ValueError:  # lxml refuses control characters: this id cannot be a SAML NameID
            raise InvalidInput("the person's immutable id contains characters XML cannot carry") from None
        confirmation = etree.SubElement(subject, _q(SAML, "SubjectConfirmation"), Method=BEARER)
        data = etree.SubElement(confirmation, _q(SAML, "SubjectConfirmationData"))
        data.set("NotOnOrAfter", _instant(not_after))
        data.set("Recipient", destination)

        conditions = etree.SubElement(assertion, _q(SAML, "Conditions"))
        conditions.set("NotBefore", _instant(now))
        conditions.set("NotOnOrAfter", _instant(not_after))
        restriction = etree.SubElement(conditions, _q(SAML, "AudienceRestriction"))
        etree.SubElement(restriction, _q(SAML, "Audience")).text = part.saml_audience

        authn = etree.SubElement(assertion, _q(SAML, "AuthnStatement"))
        authn.set("AuthnInstant", _instant(now))
        authn.set("SessionIndex", assertion_id)
        context = etree.SubElement(authn, _q(SAML, "AuthnContext"))
        etree.SubElement(context, _q(SAML, "AuthnContextClassRef")).text = AUTHN_CONTEXT

        statement = etree.SubElement(assertion, _q(SAML, "AttributeStatement"))
        _attribute(statement, ROLE, roles)
        _attribute(statement, ROLE_SESSION_NAME, (session_name,))
        _attribute(statement, SESSION_DURATION, (str(session_duration),))
        _attribute(statement, SOURCE_IDENTITY, (source_id,))
        for key, value in tags.tags:
            _attribute(statement, PRINCIPAL_TAG + key, (value,))
        if tags.transitive:
            _attribute(statement, TRANSITIVE_TAG_KEYS, tags.transitive)

        self._sign(assertion, assertion_id)
        if encryption is not None:
            self._encrypter.encrypt(assertion, encryption.certificate)
        self._sign(response, response_id)
        encoded = base64.b64encode(etree.tostring(response, encoding="UTF-8", xml_declaration=False)).decode("ascii")
        if len(encoded) > MAX_ASSERTION_B64:
            raise InvalidInput(
                f"the SAML response would be {len(encoded)} characters; AWS accepts at most {MAX_ASSERTION_B64}"
            )
        return SamlResponse(
            encoded=encoded,
            destination=destination,
            response_id=response_id,
            assertion_id=assertion_id,
            not_on_or_after=not_after,
            roles=roles,
            session_name=session_name,
            source_identity=source_id,
            session_duration=session_duration,
        )

    def _sign(self, node: etree._Element, node_id: str) -> None:
        signature = xmlsec.template.create(node, xmlsec.constants.TransformExclC14N, xmlsec.constants.TransformRsaSha256, ns="ds")
        node.insert(1, signature)  # right after Issuer, as the schema orders it
        ref = xmlsec.template.add_reference(signature, xmlsec.constants.TransformSha256, uri="#" + node_id)
        xmlsec.template.add_transform(ref, xmlsec.constants.TransformEnveloped)
        xmlsec.template.add_transform(ref, xmlsec.constants.TransformExclC14N)
        key_info = xmlsec.template.ensure_key_info(signature)
        xmlsec.template.add_x509_data(key_info)
        xmlsec.tree.add_ids(node, ["ID"])
        ctx = xmlsec.SignatureContext()
        ctx.key = self._xkey  # the binding duplicates the loaded key: cheap, thread-safe
        ctx.sign(signature)


def _attribute(parent: etree._Element, name: str, values: Sequence[str]) -> None:
    attribute = etree.SubElement(parent, _q(SAML, "Attribute"), Name=name, NameFormat=URI_FORMAT)
    for value in values:
        etree.SubElement(attribute, _q(SAML, "AttributeValue")).text = value
