"""Encrypted SAML assertions for the accounts that opt in: the Assertion is signed, then encrypted
(AES-256-GCM, RSA-OAEP) to the account's certificate and sent to its provider's own ACS. Each is
decrypted here with the private key (python-xmlsec) and verified by pysaml2 configured as AWS
(decryption key, ACS .../saml/acs/<id>, signed assertion and response required), also as the
STS in front of moto for the command-line path. A bad certificate is refused by the
configuration and by the admin API, and changes nothing; aws-setup writes the provider's mode
and its ACS as SAML:aud; the sandbox says it cannot decrypt."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import xmlsec
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from broker.aws.cloudformation import PROVIDER_ID, template
from broker.aws.trust import BrokerSide, account_trust
from broker.config import ConfigError, load_config
from broker.domain import SamlEncryption
from broker.errors import InvalidInput, StsInvalidIdentityToken
from broker.mapping.snapshot import AccountRecord, MappingSnapshot, RoleRecord
from broker.minting.keys import KeyRing, generate_keypair
from broker.minting.saml_idp import ROLE, SamlIdp
from tests.conftest import ADMIN_TOKEN, require_module
from tests.federation.conftest import ALICE, AwsSamlVerifier, KeyFilesOnDisk, make_grant, make_idp, utcnow

pytestmark = pytest.mark.saml_peer

PROVIDER_ID_ = "A1B2C3D4E5F6G7H8I9J0K1L2M3"
ACS = f"https://signin.aws.amazon.com/saml/acs/{PROVIDER_ID_}"
NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "xenc": "http://www.w3.org/2001/04/xmlenc#",
}


class EncryptionKey:
    """The administrator's key pair: the private half goes to IAM, the certificate to the broker."""

    def __init__(self, directory: Path) -> None:
        self.key_path, self.cert_path, _ = generate_keypair(directory, name="saml-encryption")
        self.certificate = self.cert_path.read_text().strip()  # as the mapping stores it

    def encryption(self, mode: str = "required") -> SamlEncryption:
        return SamlEncryption(mode, PROVIDER_ID_, self.certificate)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def enc_key(tmp_path_factory: pytest.TempPathFactory) -> EncryptionKey:
    return EncryptionKey(tmp_path_factory.mktemp("enc"))


@pytest.fixture(scope="module")
def other_key(tmp_path_factory: pytest.TempPathFactory) -> EncryptionKey:
    return EncryptionKey(tmp_path_factory.mktemp("other"))


def _aws_with_key(metadata: bytes, workdir: Path, key: EncryptionKey, acs: str = ACS) -> AwsSamlVerifier:
    """pysaml2 as AWS for an encrypting provider: it holds the uploaded private key."""
    verifier = AwsSamlVerifier(metadata, workdir, entity_id="urn:amazon:webservices", acs=acs)
    from saml2.client import Saml2Client

    config = verifier.client.config
    config.encryption_keypairs = [{"key_file": str(key.key_path), "cert_file": str(key.cert_path)}]
    config.key_file, config.cert_file = str(key.key_path), str(key.cert_path)
    verifier.client = Saml2Client(config)
    return verifier


def _decrypt(encoded: str, key: EncryptionKey) -> etree._Element:
    """The Response with its EncryptedAssertion decrypted in place (python-xmlsec, the private key)."""
    root = etree.fromstring(base64.b64decode(encoded))
    manager = xmlsec.KeysManager()
    manager.add_key(xmlsec.Key.from_file(str(key.key_path), xmlsec.constants.KeyDataFormatPem))
    xmlsec.EncryptionContext(manager).decrypt(root.find("saml:EncryptedAssertion/xenc:EncryptedData", NS))
    return root


# ---- minting ----


def test_the_encrypted_assertion_decrypts_with_the_private_key_and_aws_accepts_it(
    idp: SamlIdp, keyring: KeyRing, enc_key: EncryptionKey, tmp_path: Path
) -> None:
    grant = make_grant(assertion_encryption=enc_key.encryption())
    r = idp.aws_response(identity=ALICE, grants=[grant], session_duration=3600, now=utcnow())
    assert r.destination == ACS
    raw = etree.fromstring(base64.b64decode(r.encoded))
    assert raw.find("saml:Assertion", NS) is None and ALICE.id.encode() not in base64.b64decode(r.encoded)
    data = raw.find("saml:EncryptedAssertion/xenc:EncryptedData", NS)
    assert data.find("xenc:EncryptionMethod", NS).get("Algorithm") == "http://www.w3.org/2009/xmlenc11#aes256-gcm"
    transport = data.find("ds:KeyInfo/xenc:EncryptedKey/xenc:EncryptionMethod", NS)
    assert transport.get("Algorithm") == "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"

    root = _decrypt(r.encoded, enc_key)
    assertion = root.find("saml:EncryptedAssertion/saml:Assertion", NS)
    assert root.get("Destination") == ACS
    assert assertion.find("saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData", NS).get("Recipient") == ACS
    audience = assertion.findtext("saml:Conditions/saml:AudienceRestriction/saml:Audience", namespaces=NS)
    assert audience == "urn:amazon:webservices"
    assert assertion.find("ds:Signature", NS) is not None  # signed before it was encrypted
    # the inner signature verifies on the decrypted Assertion alone (signxml) ...
    require_module("signxml")
    from signxml import XMLVerifier

    XMLVerifier().verify(etree.tostring(assertion), x509_cert=keyring.current.cert_pem.decode())
    # ... and AWS (pysaml2 with the private key) decrypts it and checks both signatures
    ava = _aws_with_key(idp.metadata(), tmp_path, enc_key).attributes(r.encoded)
    assert ava[ROLE] == ["arn:aws:iam::111111111111:role/Admin,arn:aws:iam::111111111111:saml-provider/broker"]


def test_the_response_is_refused_by_a_provider_holding_another_key(
    idp: SamlIdp, enc_key: EncryptionKey, other_key: EncryptionKey, tmp_path: Path
) -> None:
    grant = make_grant(assertion_encryption=enc_key.encryption())
    r = idp.aws_response(identity=ALICE, grants=[grant], session_duration=3600, now=utcnow())
    assert _aws_with_key(idp.metadata(), tmp_path, other_key).refuses(r.encoded)


def test_the_regional_recipient_is_the_regional_provider_acs(keyring: KeyRing, enc_key: EncryptionKey) -> None:
    idp = make_idp(keyring, regional_recipient=True)
    grant = make_grant(assertion_encryption=enc_key.encryption())
    first, again = (idp.aws_response(identity=ALICE, grants=[grant], session_duration=3600, now=utcnow()) for _ in "12")
    regional = f"https://eu-west-1.signin.aws.amazon.com/saml/acs/{PROVIDER_ID_}"
    for r in (first, again):  # the second with the keys manager made for the first
        assert r.destination == regional
        assert _decrypt(r.encoded, enc_key).find("saml:EncryptedAssertion/saml:Assertion", NS) is not None


class StsStandIn:
    """STS for an account whose provider holds the private key: it refuses what pysaml2 (as
    AWS, with the key) refuses, decrypts the rest and lets moto's STS answer."""

    def __init__(self, moto: str, verifier: AwsSamlVerifier, key: EncryptionKey) -> None:
        import urllib.request
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlencode

        self.seen: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()}
                outer.seen.append(form["SAMLAssertion"])
                if verifier.refuses(form["SAMLAssertion"]):
                    status, body = 400, b"<ErrorResponse><Error><Code>InvalidIdentityToken</Code></Error></ErrorResponse>"
                else:
                    root = _decrypt(form["SAMLAssertion"], key)
                    wrapper = root.find("saml:EncryptedAssertion", NS)
                    wrapper.addprevious(wrapper.find("saml:Assertion", NS))
                    root.remove(wrapper)
                    form["SAMLAssertion"] = base64.b64encode(etree.tostring(root)).decode()
                    request = urllib.request.Request(moto, data=urlencode(form).encode(), method="POST",
                                                     headers={"Content-Type": self.headers["Content-Type"]})
                    with urllib.request.urlopen(request, timeout=10) as answer:
                        status, body = answer.status, answer.read()
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.mark.sts
def test_sts_takes_the_encrypted_assertion_of_the_command_line_path(
    moto_sts: str, idp: SamlIdp, enc_key: EncryptionKey, tmp_path: Path
) -> None:
    import threading

    from broker.aws.config import StsConfig
    from broker.aws.sts import StsClients, StsGateway

    stand_in = StsStandIn(moto_sts, _aws_with_key(idp.metadata(), tmp_path, enc_key), enc_key)
    threading.Thread(target=stand_in.server.serve_forever, daemon=True).start()
    try:
        gateway = StsGateway(clients=StsClients(config=StsConfig(mode="aws", endpoint_url=stand_in.url)),
                             issuer="https://broker.example.com", saml_recipient=idp.recipient)
        grant = make_grant(assertion_encryption=enc_key.encryption())
        saml = idp.aws_response(identity=ALICE, grants=[grant], session_duration=3600, now=utcnow())
        creds = gateway.assume_with_saml(grant=grant, saml_assertion=saml.encoded, duration=3600)
        assert creds.assumed_role_arn == "arn:aws:sts::111111111111:assumed-role/Admin/alice"
        assert stand_in.seen == [saml.encoded]  # the encrypted Response went to STS as minted
        plain = idp.aws_response(identity=ALICE, grants=[make_grant()], session_duration=3600, now=utcnow())
        with pytest.raises(StsInvalidIdentityToken):  # a plain one, to the plain ACS, is refused
            gateway.assume_with_saml(grant=grant, saml_assertion=plain.encoded, duration=3600)
    finally:
        stand_in.server.shutdown()
        stand_in.server.server_close()


def test_an_account_without_the_opt_in_gets_a_plain_signed_assertion(idp: SamlIdp, tmp_path: Path) -> None:
    r = idp.aws_response(identity=ALICE, grants=[make_grant()], session_duration=3600, now=utcnow())
    root = etree.fromstring(base64.b64decode(r.encoded))
    assert r.destination == "https://signin.aws.amazon.com/saml"
    assert root.find("saml:Assertion", NS) is not None and root.find("saml:EncryptedAssertion", NS) is None


def test_one_assertion_cannot_mix_encrypting_and_plain_accounts(idp: SamlIdp, enc_key: EncryptionKey) -> None:
    grants = [make_grant(assertion_encryption=enc_key.encryption()), make_grant(account_id="333333333333")]
    with pytest.raises(InvalidInput, match="encrypt assertions differently"):
        idp.aws_response(identity=ALICE, grants=grants, session_duration=3600, now=utcnow())


# ---- the certificate: configuration file and admin API ----


def _cert(*, key: Any = None, days: int = 30, start: int = -1) -> str:
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aws-saml-encryption")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + timedelta(days=start)).not_valid_after(now + timedelta(days=days))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


BAD_CERTIFICATES = {
    "rsa-1024": (lambda: _cert(key=rsa.generate_private_key(public_exponent=65537, key_size=1024)), "1024 bits"),
    "ec": (lambda: _cert(key=ec.generate_private_key(ec.SECP256R1())), "not RSA"),
    "garbage": (lambda: "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n", "does not parse"),
    "not-pem": (lambda: "hello", "not a PEM certificate"),
}


def _mapping(encryption: dict[str, Any]) -> dict[str, Any]:
    return {
        "accounts": [{"id": "111111111111", "alias": "sandbox-dev",
                      "federation": {"path": "saml", "assertion_encryption": encryption},
                      "roles": [{"name": "Admin", "max_session_duration": 43200}]}],
        "mappings": [{"group": "aws-admins", "account": "sandbox-dev", "role": "Admin"}],
    }


def _config_file(tmp_path: Path, encryption: dict[str, Any]) -> Path:
    path = tmp_path / "broker.yaml"
    path.write_text(yaml.safe_dump({"database": {"url": f"sqlite:///{tmp_path / 'b.db'}"}, "mapping": _mapping(encryption)}))
    return path


PATH = "mapping.accounts[0].federation.assertion_encryption"


@pytest.mark.parametrize("case", sorted(BAD_CERTIFICATES))
def test_a_bad_certificate_is_refused_at_config_load_with_its_path(case: str, tmp_path: Path) -> None:
    make, reason = BAD_CERTIFICATES[case]
    with pytest.raises(ConfigError) as caught:
        load_config(_config_file(tmp_path, {"provider_id": PROVIDER_ID_, "certificate": make()}), env={})
    assert any(p.startswith(f"{PATH}.certificate: ") and reason in p for p in caught.value.problems), caught.value.problems


def test_an_expired_certificate_still_loads_since_aws_never_sees_it(tmp_path: Path) -> None:
    """The day the certificate expires must not be the day a restart fails (AWS decrypts with the key)."""
    expired = _cert(days=-1, start=-30)
    config = load_config(_config_file(tmp_path, {"provider_id": PROVIDER_ID_, "certificate": expired}), env={})
    enc = config.mapping.accounts[0].federation.assertion_encryption  # type: ignore[union-attr]
    assert enc is not None and enc.certificate.strip() == expired.strip()


def test_the_config_file_may_name_the_certificate_file(tmp_path: Path, enc_key: EncryptionKey) -> None:
    config = load_config(_config_file(tmp_path, {"provider_id": PROVIDER_ID_, "mode": "allowed",
                                                 "certificate_file": str(enc_key.cert_path)}), env={})
    enc = config.mapping.accounts[0].federation.assertion_encryption  # type: ignore[union-attr]
    assert enc is not None and enc.certificate == enc_key.certificate and enc.mode == "allowed"


def test_a_missing_certificate_file_or_a_bad_provider_id_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_config_file(tmp_path, {"provider_id": "my-provider", "certificate_file": str(tmp_path / "no.pem")}),
                    env={})
    problems = caught.value.problems
    assert any(p.startswith(f"{PATH}.certificate_file: cannot read") for p in problems), problems
    assert any(p.startswith(f"{PATH}.provider_id: ") and "SAMLProviderUUID" in p for p in problems), problems


def test_certificate_and_certificate_file_together_are_refused(tmp_path: Path, enc_key: EncryptionKey) -> None:
    both = {"provider_id": PROVIDER_ID_, "certificate": enc_key.certificate, "certificate_file": str(enc_key.cert_path)}
    with pytest.raises(ConfigError) as caught:
        load_config(_config_file(tmp_path, both), env={})
    assert f"{PATH}.certificate_file: give certificate (the PEM) or certificate_file, not both" in caught.value.problems


@pytest.fixture
def api(app_factory: Any) -> Any:
    client = app_factory()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    class Api:
        def __getattr__(self, method: str) -> Any:
            return lambda path, **kw: getattr(client, method)(f"/api/v1/admin{path}", headers=headers, **kw)

    return Api()


ACCOUNT = {"id": "111122223333", "alias": "prod", "roles": [{"name": "Admin", "max_session_duration": 43200}]}


@pytest.mark.parametrize("case", ["ec", "rsa-1024", "garbage"])
def test_the_admin_api_refuses_a_bad_certificate_and_changes_nothing(api: Any, case: str) -> None:
    assert api.post("/accounts", json=ACCOUNT).status_code == 201
    before = api.get("/accounts/prod").json()
    bad = {"path": "saml", "assertion_encryption": {"provider_id": PROVIDER_ID_, "certificate": BAD_CERTIFICATES[case][0]()}}
    created = api.post("/accounts", json={**ACCOUNT, "id": "111122224444", "alias": "other", "federation": bad})
    patched = api.patch("/accounts/prod", json={"federation": bad})
    for answer in (created, patched):
        assert answer.status_code == 422, answer.text
        assert "invalid_certificate" in answer.text and BAD_CERTIFICATES[case][1] in answer.text
    assert api.get("/accounts/other").status_code == 404
    assert api.get("/accounts/prod").json() == before


def test_the_admin_api_stores_the_opt_in_and_never_reads_a_server_file(api: Any, enc_key: EncryptionKey) -> None:
    file_ref = {"path": "saml", "assertion_encryption": {"provider_id": PROVIDER_ID_,
                                                          "certificate_file": str(enc_key.cert_path)}}
    refused = api.post("/accounts", json={**ACCOUNT, "federation": file_ref})
    assert refused.status_code == 422 and "certificate_file" in refused.text
    good = {"path": "saml", "assertion_encryption": {"provider_id": PROVIDER_ID_, "certificate": enc_key.certificate}}
    assert api.post("/accounts", json={**ACCOUNT, "federation": good}).status_code == 201
    stored = api.get("/accounts/prod").json()["federation"]["assertion_encryption"]
    assert stored == {"mode": "required", "provider_id": PROVIDER_ID_, "certificate": enc_key.certificate}
    assert api.patch("/accounts/prod", json={"federation": {"path": "saml"}}).status_code == 200
    assert api.get("/accounts/prod").json()["federation"]["assertion_encryption"] is None


def test_the_database_carries_the_opt_in_to_the_grant(tmp_path: Path, enc_key: EncryptionKey) -> None:
    from broker.app import build_services

    config = load_config(_config_file(tmp_path, {"provider_id": PROVIDER_ID_, "certificate": enc_key.certificate}),
                         env={})
    config = config.model_copy(update={"database": config.database.model_copy(update={"auto_migrate": True})})
    services = build_services(config, env={})
    try:
        (grant,) = services.flow.grants_for(["aws-admins"]).grants
        assert grant.assertion_encryption == enc_key.encryption()
        assert services.minting.saml.recipient(grant) == ACS
    finally:
        services.close()


# ---- aws-setup ----


def test_aws_setup_writes_the_mode_and_the_provider_acs_as_saml_aud(keyring: KeyRing, enc_key: EncryptionKey) -> None:
    require_module("cfnlint")
    from cfnlint.api import lint

    accounts = [AccountRecord("111111111111", "dev", "aws", "eu-west-1", None, "saml", "broker", None,
                              assertion_encryption=enc_key.encryption("allowed"))]
    snapshot = MappingSnapshot.build(accounts, [RoleRecord("111111111111", "Admin", "/", 43200)], [])
    broker = BrokerSide(issuer="https://broker.example.com", saml_metadata=make_idp(keyring).metadata().decode(),
                        saml_recipient=make_idp(keyring).recipient)
    trust = account_trust(snapshot, "111111111111", broker)
    assert trust.provider.assertion_encryption_mode == "Allowed"  # type: ignore[union-attr]
    body = template(trust)
    props = body["Resources"][PROVIDER_ID]["Properties"]
    assert props["AssertionEncryptionMode"] == "Allowed" and "AddPrivateKey" not in props
    (role,) = [r for r in body["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    aud = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]["StringEquals"]["SAML:aud"]
    assert aud[:2] == [ACS, f"https://eu-west-1.signin.aws.amazon.com/saml/acs/{PROVIDER_ID_}"]
    assert any("--add-private-key" in n for n in trust.notes)
    assert [m for m in lint(json.dumps(body)) if m.rule.id.startswith("E")] == []


def test_aws_setup_of_an_account_without_the_opt_in_sets_no_mode(keyring: KeyRing) -> None:
    accounts = [AccountRecord("111111111111", "dev", "aws", "eu-west-1", None, "saml", "broker", None)]
    snapshot = MappingSnapshot.build(accounts, [RoleRecord("111111111111", "Admin", "/", 43200)], [])
    trust = account_trust(snapshot, "111111111111", BrokerSide(issuer="https://b.example.com", saml_metadata="<x/>"))
    assert "AssertionEncryptionMode" not in template(trust)["Resources"][PROVIDER_ID]["Properties"]


def _command_config(tmp_path: Path, key_files: KeyFilesOnDisk, encryption: dict[str, Any]) -> Path:
    """A configuration file for the operator commands, sandbox-dev opted in with ``encryption``."""
    path = tmp_path / "broker.yaml"
    path.write_text(yaml.safe_dump({
        "server": {"public_url": "https://broker.example.com"},
        "database": {"url": f"sqlite:///{tmp_path / 'b.db'}"},
        "keys": key_files.section(with_next=False),
        "mapping": _mapping(encryption),
    }))
    return path


def test_the_aws_setup_command_reads_the_opt_in_from_the_config_file(
    tmp_path: Path, key_files: KeyFilesOnDisk, enc_key: EncryptionKey
) -> None:
    from typer.testing import CliRunner

    from broker.cli.server import app as cli

    path = _command_config(tmp_path, key_files, {"provider_id": PROVIDER_ID_, "certificate_file": str(enc_key.cert_path)})
    result = CliRunner().invoke(cli, ["aws-setup", "--config", str(path), "--account", "sandbox-dev"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["Resources"][PROVIDER_ID]["Properties"]["AssertionEncryptionMode"] == "Required"
    aud = body["Resources"]["RoleAdmin"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]
    assert aud["StringEquals"]["SAML:aud"][0] == ACS


@pytest.mark.sts
def test_the_sandbox_says_it_cannot_decrypt_instead_of_failing_obscurely(idp: SamlIdp, enc_key: EncryptionKey) -> None:
    require_module("moto")
    from broker.aws.config import StsConfig
    from broker.aws.factory import build_aws

    aws = build_aws(config=StsConfig(mode="sandbox"), public_url="http://127.0.0.1:8000", saml_recipient=idp.recipient)
    try:
        grant = make_grant(assertion_encryption=enc_key.encryption())
        saml = idp.aws_response(identity=ALICE, grants=[grant], session_duration=3600, now=utcnow())
        with pytest.raises(StsInvalidIdentityToken, match="SANDBOX: the assertion is encrypted"):
            aws.sts.assume_with_saml(grant=grant, saml_assertion=saml.encoded, duration=3600)
        plain = make_grant()  # the same sandbox still issues for an account that does not encrypt
        saml = idp.aws_response(identity=ALICE, grants=[plain], session_duration=3600, now=utcnow())
        assert aws.sts.assume_with_saml(grant=plain, saml_assertion=saml.encoded, duration=3600).access_key_id
    finally:
        aws.close()


def test_preview_assertion_names_the_provider_acs_and_the_encryption(
    tmp_path: Path, key_files: KeyFilesOnDisk, enc_key: EncryptionKey
) -> None:
    from broker.cli.preview import preview

    path = _command_config(tmp_path, key_files, {"provider_id": PROVIDER_ID_, "certificate": enc_key.certificate})
    shown = preview(load_config(path, env={}), identity=ALICE, account="sandbox-dev", role="Admin")
    assert shown.summary["recipient"] == ACS
    assert str(shown.summary["assertion_encryption"]).startswith("required: the Assertion is encrypted")
    assert _decrypt(shown.text, enc_key).find("saml:EncryptedAssertion/saml:Assertion", NS) is not None


def test_an_expired_certificate_still_encrypts(idp: SamlIdp) -> None:
    """xmlsec encrypts to the key whatever the certificate's dates: an account does not stop
    working on the day its encryption certificate expires (AWS decrypts with the uploaded key)."""
    grant = make_grant(assertion_encryption=SamlEncryption("required", PROVIDER_ID_, _cert(days=-1, start=-30)))
    r = idp.aws_response(identity=ALICE, grants=[grant], session_duration=3600, now=utcnow())
    raw = etree.fromstring(base64.b64decode(r.encoded))
    assert raw.find("saml:Assertion", NS) is None
    assert raw.find("saml:EncryptedAssertion/xenc:EncryptedData", NS) is not None
