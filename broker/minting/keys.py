"""Signing keys: RSA-2048, generated with a self-signed certificate; kid = RFC 7638 thumbprint."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from joserfc.jwk import RSAKey


def key_id(public_pem: bytes) -> str:
    """The JWK thumbprint (RFC 7638, SHA-256, base64url) of a public key: a stable kid."""
    return RSAKey.import_key(public_pem).thumbprint()


def generate_keypair(
    out: Path, *, name: str = "signing", common_name: str = "federation-broker", days: int = 3650, force: bool = False
) -> tuple[Path, Path, str]:
    out.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = out / f"{name}.key.pem", out / f"{name}.cert.pem"
    for p in (key_path, cert_path):
        if p.exists() and not force:
            raise FileExistsError(str(p))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.chmod(key_path, 0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key_path, cert_path, key_id(public_pem)
