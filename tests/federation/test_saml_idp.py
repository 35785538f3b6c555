"""The SAML IdP: every Response verified by pysaml2 configured as AWS, and by signxml."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from lxml import etree
from signxml.exceptions import InvalidSignature as SignxmlInvalidSignature

from broker.domain import Identity
from broker.errors import InvalidInput
from broker.minting.keys import KeyRing
from broker.minting.saml_idp import ROLE, ROLE_SESSION_NAME, SESSION_DURATION, SOURCE_IDENTITY, SamlIdp
from tests.federation.conftest import (
    ALICE,
    AwsSamlVerifier,
    make_grant,
    make_idp,
    signxml_verify,
    utcnow,
    web_grant,
)

pytestmark = pytest.mark.saml_peer

NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "md": "urn:oasis:names:tc:SAML:2.0:metadata",
}
A = "https://aws.amazon.com/SAML/Attributes/"
Verifier = Callable[..., AwsSamlVerifier]


def _xml(encoded: str) -> Any:
    return etree.fromstring(base64.b64decode(encoded))


def test_aws_accepts_the_response_with_exactly_the_attributes_aws_reads(idp: SamlIdp, aws_verifier: Verifier) -> None:
    grant = make_grant(role_path="/team/", role_name="Deployer")
    r = idp.aws_response(identity=ALICE, grants=[grant], session_duration=3600, now=utcnow())
    ava = aws_verifier(idp.metadata()).attributes(r.encoded)
    assert ava == {
        ROLE: ["arn:aws:iam::111111111111:role/team/Deployer,arn:aws:iam::111111111111:saml-provider/broker"],
        ROLE_SESSION_NAME: ["alice"],
        SESSION_DURATION: ["3600"],
        SOURCE_IDENTITY: [ALICE.id],
        A + "PrincipalTag:Department": ["Platform"],
        A + "PrincipalTag:CostCenter": ["CC-1234"],
        A + "TransitiveTagKeys": ["Department"],
    }
    assert r.roles == tuple(ava[ROLE]) and r.destination == "https://signin.aws.amazon.com/saml"


def test_both_signatures_verify_with_signxml_rsa_sha256_exclusive_c14n(idp: SamlIdp, keyring: KeyRing) -> None:
    r = idp.aws_response(identity=ALICE, grants=[make_grant()], session_duration=3600, now=utcnow())
    outer, inner = signxml_verify(r.encoded, keyring.current.cert_pem)
    assert outer.signed_xml.tag == f"{{{NS['samlp']}}}Response"
    assert inner.signed_xml.tag == f"{{{NS['saml']}}}Assertion"
    root = _xml(r.encoded)
    for sig in (root.find("ds:Signature", NS), root.find("saml:Assertion/ds:Signature", NS)):
        assert sig.find("ds:SignedInfo/ds:SignatureMethod", NS).get("Algorithm").endswith("#rsa-sha256")
        assert sig.find("ds:SignedInfo/ds:CanonicalizationMethod", NS).get("Algorithm") == "http://www.w3.org/2001/10/xml-exc-c14n#"


def test_assertion_shape_bearer_recipient_audience_and_no_session_not_on_or_after(idp: SamlIdp) -> None:
    now = utcnow()
    r = idp.aws_response(identity=ALICE, grants=[make_grant()], session_duration=43200, now=now)
    a = _xml(r.encoded).find("saml:Assertion", NS)
    confirmations = a.findall("saml:Subject/saml:SubjectConfirmation", NS)
    assert len(confirmations) == 1 and confirmations[0].get("Method") == "urn:oasis:names:tc:SAML:2.0:cm:bearer"
    data = confirmations[0].find("saml:SubjectConfirmationData", NS)
    assert data.get("Recipient") == "https://signin.aws.amazon.com/saml"
    assert data.get("NotOnOrAfter") == (now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert a.findtext("saml:Conditions/saml:AudienceRestriction/saml:Audience", namespaces=NS) == "urn:amazon:webservices"
    name_id = a.find("saml:Subject/saml:NameID", NS)
    assert name_id.get("Format") == "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent" and name_id.text == ALICE.id
    # AWS ends the role session at the earlier of SessionNotOnOrAfter and DurationSeconds: never sent
    assert a.find("saml:AuthnStatement", NS).get("SessionNotOnOrAfter") is None


def test_an_expired_response_is_refused_by_aws(idp: SamlIdp, aws_verifier: Verifier) -> None:
    r = idp.aws_response(identity=ALICE, grants=[make_grant()], session_duration=3600, now=utcnow() - timedelta(minutes=10))
    with pytest.raises(Exception, match="(?i)expired|too old|not on or after|NotOnOrAfter"):
        aws_verifier(idp.metadata()).verify(r.encoded)


def test_a_tampered_response_is_refused_by_both_verifiers(idp: SamlIdp, keyring: KeyRing, aws_verifier: Verifier) -> None:
    r = idp.aws_response(identity=ALICE, grants=[make_grant()], session_duration=3600, now=utcnow())
    forged = base64.b64encode(base64.b64decode(r.encoded).replace(b"role/Admin", b"role/Owner")).decode()
    assert aws_verifier(idp.metadata()).refuses(forged)
    with pytest.raises(SignxmlInvalidSignature):
        signxml_verify(forged, keyring.current.cert_pem)


def test_a_response_signed_by_a_key_not_in_the_metadata_is_refused(idp: SamlIdp, aws_verifier: Verifier) -> None:
    from broker.minting.keys import ephemeral_key

    stranger = make_idp(KeyRing(current=ephemeral_key()))
    r = stranger.aws_response(identity=ALICE, grants=[make_grant()], session_duration=3600, now=utcnow())
    assert aws_verifier(idp.metadata()).refuses(r.encoded)


def test_markup_in_username_and_attributes_stays_text(keyring: KeyRing, aws_verifier: Verifier) -> None:
    from broker.minting.config import SessionTagsConfig

    idp = make_idp(keyring, tags=SessionTagsConfig.model_validate({"tags": [{"key": "Team", "attribute": "team"}]}))
    evil = Identity(
        id='x"/><saml:Attribute Name="https://aws.amazon.com/SAML/Attributes/Role"/>]]>&amp;',
        username="<saml:AttributeValue>arn:aws:iam::999999999999:role/Owner</saml:AttributeValue>",
        attributes=(("team", ("Ops + Dev",)),),
    )
    r = idp.aws_response(identity=evil, grants=[make_grant()], session_duration=3600, now=utcnow())
    response = aws_verifier(idp.metadata()).verify(r.encoded)
    assert response is not None
    assert response.assertion.subject.name_id.text == evil.id
    ava = response.ava
    assert ava[ROLE] == ["arn:aws:iam::111111111111:role/Admin,arn:aws:iam::111111111111:saml-provider/broker"]
    assert ava[A + "PrincipalTag:Team"] == ["Ops + Dev"]
    assert "999999999999" not in "".join(ava[ROLE]) and len(ava[ROLE_SESSION_NAME][0]) <= 64
    assert len(_xml(r.encoded).findall(".//saml:Attribute", NS)) == 5


def test_a_console_response_carries_every_console_role_and_aws_accepts_it(idp: SamlIdp, aws_verifier: Verifier) -> None:
    grants = [make_grant(), make_grant(role_name="ReadOnly", role_path="/audit/"), make_grant(account_id="333333333333")]
    r = idp.aws_response(identity=ALICE, grants=grants, session_duration=7200, now=utcnow())
    ava = aws_verifier(idp.metadata()).attributes(r.encoded)
    assert ava[ROLE] == [f"{g.role_arn},{g.saml_provider_arn}" for g in grants]


@pytest.mark.parametrize(
    "partition, region, audience, acs",
    [
        ("aws-us-gov", "us-gov-west-1", "urn:amazon:webservices:govcloud", "https://signin.amazonaws-us-gov.com/saml"),
        ("aws-cn", "cn-north-1", "urn:amazon:webservices:cn-north-1", "https://signin.amazonaws.cn/saml"),
    ],
)
def test_partitions_have_their_own_audience_acs_and_arns(
    idp: SamlIdp, aws_verifier: Verifier, partition: str, region: str, audience: str, acs: str
) -> None:
    grant = make_grant(partition=partition, region=region)
    r = idp.aws_response(identity=ALICE, grants=[grant], session_duration=3600, now=utcnow())
    assert r.destination == acs
    ava = aws_verifier(idp.metadata(), partition).attributes(r.encoded)
    assert ava[ROLE] == [f"arn:{partition}:iam::111111111111:role/Admin,arn:{partition}:iam::111111111111:saml-provider/broker"]
    assert _xml(r.encoded).findtext(".//saml:Audience", namespaces=NS) == audience
    # the commercial partition's AWS does not take it
    assert aws_verifier(idp.metadata(), "aws").refuses(r.encoded)


def test_regional_recipient(keyring: KeyRing, aws_verifier: Verifier) -> None:
    idp = make_idp(keyring, regional_recipient=True)
    r = idp.aws_response(identity=ALICE, grants=[make_grant(region="eu-west-1")], session_duration=3600, now=utcnow())
    regional = "https://eu-west-1.signin.aws.amazon.com/saml"
    assert r.destination == regional
    assert aws_verifier(idp.metadata(), acs=regional).attributes(r.encoded)[ROLE_SESSION_NAME] == ["alice"]
    # an SP at the global ACS sees a wrong Destination and refuses
    assert aws_verifier(idp.metadata()).refuses(r.encoded)
    gov = idp.aws_response(identity=ALICE, grants=[make_grant(partition="aws-us-gov", region="us-gov-west-1")],
                           session_duration=3600, now=utcnow())
    assert gov.destination == "https://signin.amazonaws-us-gov.com/saml"


def test_metadata_publishes_current_and_next_certificates(idp: SamlIdp, keyring: KeyRing) -> None:
    raw = idp.metadata()
    assert raw.startswith(b"<?xml") and not raw.startswith(b"\xef\xbb\xbf")
    root = etree.fromstring(raw)
    assert root.get("entityID") == "https://broker.example.com/saml/metadata"
    descriptors = root.findall("md:IDPSSODescriptor/md:KeyDescriptor", NS)
    assert [d.get("use") for d in descriptors] == ["signing", "signing"]
    certs = [d.findtext("ds:KeyInfo/ds:X509Data/ds:X509Certificate", namespaces=NS) for d in descriptors]
    assert certs == [base64.b64encode(k.cert_der).decode() for k in keyring.published]
    assert root.findtext("md:IDPSSODescriptor/md:NameIDFormat", namespaces=NS).endswith(":persistent")


def test_rotation_a_response_signed_by_the_next_key_verifies_against_published_metadata(
    idp: SamlIdp, keyring: KeyRing, aws_verifier: Verifier
) -> None:
    published_before = idp.metadata()  # what AWS holds: current + next
    rotated = make_idp(KeyRing(current=keyring.next, next=None))  # type: ignore[arg-type]
    r = rotated.aws_response(identity=ALICE, grants=[make_grant()], session_duration=3600, now=utcnow())
    assert aws_verifier(published_before).attributes(r.encoded)[ROLE_SESSION_NAME] == ["alice"]


def test_what_cannot_be_asserted_is_refused(idp: SamlIdp) -> None:
    now = utcnow()
    with pytest.raises(InvalidInput, match="not set up for SAML"):
        idp.aws_response(identity=ALICE, grants=[web_grant()], session_duration=3600, now=now)
    with pytest.raises(InvalidInput, match="several AWS partitions"):
        idp.aws_response(identity=ALICE, grants=[make_grant(), make_grant(partition="aws-cn", region="cn-north-1")],
                         session_duration=3600, now=now)
    for seconds in (899, 43201):
        with pytest.raises(InvalidInput, match="SessionDuration"):
            idp.aws_response(identity=ALICE, grants=[make_grant()], session_duration=seconds, now=now)
    with pytest.raises(InvalidInput, match="at least one role"):
        idp.aws_response(identity=ALICE, grants=[], session_duration=3600, now=now)
    with pytest.raises(InvalidInput, match="XML cannot carry"):
        idp.aws_response(identity=Identity(id="a\x00b", username="a"), grants=[make_grant()], session_duration=3600, now=now)


def test_each_response_and_assertion_has_a_fresh_id(idp: SamlIdp) -> None:
    now = utcnow()
    a = idp.aws_response(identity=ALICE, grants=[make_grant()], session_duration=3600, now=now)
    b = idp.aws_response(identity=ALICE, grants=[make_grant()], session_duration=3600, now=now)
    assert len({a.response_id, a.assertion_id, b.response_id, b.assertion_id}) == 4
    assert "encoded" not in repr(a) and a.encoded not in repr(a)

