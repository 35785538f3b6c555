"""The certificate an account's SAML assertions are encrypted to: checked once, when the mapping
is validated (configuration file, admin API, import).

It is the public half of the key pair whose private key the administrator uploads to the IAM
SAML provider (``AddPrivateKey``); the broker never holds that private key. IAM decrypts with
RSA, so the certificate must carry an RSA key of at least 2048 bits (as the broker's own
signing keys). Its validity dates are not checked: AWS never sees the certificate (it decrypts
with the uploaded private key), and a date check here would make a mapping that was valid at
one start refuse the next one — the broker down, or an account no one can edit, on the day
the certificate expires. Rotate it like any key, with the second PrivateKeyList slot.
"""

from __future__ import annotations

MIN_RSA_BITS = 2048
PEM_BEGIN = "-----BEGIN CERTIFICATE-----"


class CertificateProblem(ValueError):
    """Why a PEM certificate cannot be used to encrypt assertions (a message for a person)."""


def check_encryption_certificate(pem: str) -> str:
    """``pem`` itself when it is one RSA certificate of at least 2048 bits."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

    if PEM_BEGIN not in pem:
        raise CertificateProblem(f"not a PEM certificate: it has no '{PEM_BEGIN}' line")
    try:
        cert = x509.load_pem_x509_certificate(pem.encode("utf-8"))
    except ValueError:
        raise CertificateProblem("the PEM certificate does not parse (X.509)") from None
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise CertificateProblem("the certificate's key is not RSA: IAM decrypts SAML assertions with an RSA key")
    if key.key_size < MIN_RSA_BITS:
        raise CertificateProblem(f"the certificate's RSA key has {key.key_size} bits; at least {MIN_RSA_BITS} are needed")
    return pem
