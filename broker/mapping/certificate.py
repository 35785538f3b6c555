"""The certificate an account's SAML assertions are encrypted to: checked once, when the mapping
is validated (configuration file, admin API, import).

It is the public half of the key pair whose private key the administrator uploads to the IAM
SAML provider (``AddPrivateKey``); the broker never holds that private key. IAM decrypts with
RSA, so the certificate must carry an RSA key of at least 2048 bits (as the broker's own
signing keys), and it must not have expired.
"""

from __future__ import annotations

from datetime import UTC, datetime

MIN_RSA_BITS = 2048
PEM_BEGIN = "-----BEGIN CERTIFICATE-----"


class CertificateProblem(ValueError):
    """Why a PEM certificate cannot be used to encrypt assertions (a message for a person)."""


def check_encryption_certificate(pem: str, *, now: datetime | None = None) -> str:
    """``pem`` itself when it is one RSA certificate of at least 2048 bits, valid at ``now``."""
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
    now = now or datetime.now(UTC)
    if cert.not_valid_after_utc <= now:
        raise CertificateProblem(f"the certificate expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    if cert.not_valid_before_utc > now:
        raise CertificateProblem(f"the certificate is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    return pem
