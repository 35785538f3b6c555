"""W3C XML Encryption 1.1 of a signed SAML Assertion (SAML 2.0 Core 2.3.4 EncryptedAssertion), for
AWS accounts whose IAM SAML provider takes encrypted assertions.

What AWS documents, and where:
- IAM API reference CreateSAMLProvider / UpdateSAMLProvider (botocore's iam service-2.json):
  ``AssertionEncryptionMode`` Required | Allowed; ``AddPrivateKey`` "a .pem file that uses AES-GCM
  or AES-CBC encryption algorithm to decrypt SAML assertions"; ``RemovePrivateKey`` by key id;
  GetSAMLProvider answers ``SAMLProviderUUID`` and ``PrivateKeyList`` (at most 2 keys: rotation =
  add the new key, switch, then remove the old one in a separate call).
- IAM User Guide id_roles_providers_create_saml_assertions: "If SAML encryption is required, the
  sign-in URL must include the unique identifier AWS assigns to your SAML provider":
  ``https://<region>.signin.aws.amazon.com/saml/acs/<IdP-ID>`` (or the global endpoint);
  create-role-saml-IdP-tasks: the SP metadata is then ``/static/saml/<IdP-ID>/saml-metadata.xml``.
  The Recipient (and so the Destination and the trust policy's ``SAML:aud``, which IAM takes from
  the Recipient: STS AssumeRoleWithSAMLResponse ``Audience``) is that URL; the Audience stays
  ``urn:amazon:webservices``.
- STS model (botocore sts service-2.json, AssumeRoleWithSAMLResponse
  ``TrustedIdentityPropagationContext``: "not returned when the SAML assertion is encrypted"):
  AssumeRoleWithSAML takes encrypted assertions too, so the CLI and console paths (both call STS)
  send the same Response.
- CloudFormation AWS::IAM::SAMLProvider (cfn-lint's schema): ``AssertionEncryptionMode``,
  ``AddPrivateKey`` / ``RemovePrivateKey`` (write-only and create-only: changing them replaces
  the provider), ``PrivateKeyList``, read-only ``SamlProviderUUID``.

Algorithms: the content is encrypted with AES-256-GCM (``xmlenc11#aes256-gcm``, the block cipher
AWS names first), a fresh key per Assertion, transported with RSA-OAEP (``xmlenc#rsa-oaep-mgf1p``,
the key transport of SAML IdPs generally; AWS names no key transport) to the account's certificate.
The Assertion is signed before it is encrypted (AWS verifies the signature after decrypting) and
the Response is signed after, over the EncryptedAssertion.
"""

from __future__ import annotations

import xmlsec
from lxml import etree

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
BLOCK_CIPHER = xmlsec.constants.TransformAes256Gcm
KEY_TRANSPORT = xmlsec.constants.TransformRsaOaep


class AssertionEncrypter:
    """Encrypts Assertions to account certificates. Build once: each certificate gets one xmlsec
    keys manager, on first use (a new manager costs ~18 ms, an encryption with it ~0.3 ms).
    Encryption only reads a manager (the key is looked up and duplicated per call), so one
    manager serves every thread."""

    def __init__(self) -> None:
        self._managers: dict[str, xmlsec.KeysManager] = {}

    def _manager(self, certificate: str) -> xmlsec.KeysManager:
        manager = self._managers.get(certificate)
        if manager is None:
            manager = xmlsec.KeysManager()
            manager.add_key(xmlsec.Key.from_memory(certificate.encode("utf-8"), xmlsec.constants.KeyDataFormatCertPem))
            self._managers[certificate] = manager
        return manager

    def encrypt(self, assertion: etree._Element, certificate: str) -> etree._Element:
        """Replace the signed ``assertion`` (in its Response) by a ``saml:EncryptedAssertion``.

        The plaintext is the Assertion serialized on its own (lxml writes the namespace
        declarations it inherits from the Response), so the decrypted element parses by itself.
        """
        wrapper = etree.Element(f"{{{SAML}}}EncryptedAssertion")
        template = xmlsec.template.encrypted_data_create(wrapper, BLOCK_CIPHER, type=xmlsec.constants.TypeEncElement,
                                                         ns="xenc")
        xmlsec.template.encrypted_data_ensure_cipher_value(template)
        key_info = xmlsec.template.encrypted_data_ensure_key_info(template, ns="ds")
        xmlsec.template.encrypted_data_ensure_cipher_value(xmlsec.template.add_encrypted_key(key_info, KEY_TRANSPORT))
        ctx = xmlsec.EncryptionContext(self._manager(certificate))
        ctx.key = xmlsec.Key.generate(xmlsec.constants.KeyDataAes, 256, xmlsec.constants.KeyDataTypeSession)
        wrapper.append(ctx.encrypt_binary(template, etree.tostring(assertion, encoding="UTF-8", xml_declaration=False)))
        parent = assertion.getparent()
        assert parent is not None, "the Assertion is encrypted inside its Response"
        parent.replace(assertion, wrapper)
        return wrapper
