"""Signing keys (RFC 7517 JWK, RFC 7638 kid): RSA-2048+, parsed once at start-up, current + next.

``broker keys generate`` writes a key (mode 0600) and its self-signed certificate. At start-up
``load_keyring`` parses the current key and the optional next one once; the SAML IdP and the
OIDC issuer publish both (metadata, JWKS) and sign with the current one, so a rotation is:
publish the next key, let AWS pick it up, then make it current. A key file readable by group
or others is refused. Private key material never appears in a repr, a log or an error.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from joserfc.jwk import RSAKey

from broker.errors import SigningKeyError
from broker.minting.config import KeyFiles, KeysConfig

MIN_KEY_BITS = 2048


def key_id(public_pem: bytes) -> str:
    """The JWK thumbprint (RFC 7638, SHA-256, base64url) of a public key: a stable kid."""
    return RSAKey.import_key(public_pem).thumbprint()


def _self_signed(key: rsa.RSAPrivateKey, *, common_name: str, days: int, now: datetime) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )


def _private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def generate_keypair(
    out: Path, *, name: str = "signing", common_name: str = "federation-broker", days: int = 3650, force: bool = False
) -> tuple[Path, Path, str]:
    out.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = out / f"{name}.key.pem", out / f"{name}.cert.pem"
    for p in (key_path, cert_path):
        if p.exists() and not force:
            raise FileExistsError(str(p))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _self_signed(key, common_name=common_name, days=days, now=datetime.now(UTC))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(_private_pem(key))
    os.chmod(key_path, 0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key_path, cert_path, key_id(public_pem)


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One parsed key pair. Built once; the signers keep their own handles derived from it."""

    kid: str
    certificate: x509.Certificate = field(repr=False)
    private_key: rsa.RSAPrivateKey = field(repr=False)
    private_pem: bytes = field(repr=False)
    jwk: RSAKey = field(repr=False)
    """The private JWK (joserfc), reused for every ID token."""
    source: str = "ephemeral"
    """Where it came from (a file path, or "ephemeral"); never the key itself."""

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def cert_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def public_jwk(self) -> dict[str, str | list[str]]:  # joserfc's DictKey (key_ops is a list)
        return {**self.jwk.as_dict(private=False), "kid": self.kid, "use": "sig", "alg": "RS256"}

    def probe(self) -> None:
        """Sign and verify a few bytes: the key is usable (readiness)."""
        message = b"broker readiness probe"
        signature = self.private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        public = self.certificate.public_key()
        if not isinstance(public, rsa.RSAPublicKey):  # load_key refuses such a pair: not expected here
            raise SigningKeyError([f"the {self.source} certificate holds no RSA key"])
        try:
            public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise SigningKeyError([f"the {self.source} key no longer matches its certificate"]) from None

    @classmethod
    def from_objects(cls, key: rsa.RSAPrivateKey, cert: x509.Certificate, *, source: str) -> SigningKey:
        pem = _private_pem(key)
        public_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        jwk = RSAKey.import_key(pem)
        return cls(kid=key_id(public_pem), certificate=cert, private_key=key, private_pem=pem, jwk=jwk, source=source)


@dataclass(frozen=True, slots=True)
class KeyRing:
    current: SigningKey
    next: SigningKey | None = None
    ephemeral: bool = False

    @property
    def published(self) -> tuple[SigningKey, ...]:
        """Every key AWS should trust now: the current one, then the next one."""
        return (self.current,) if self.next is None else (self.current, self.next)

    def check(self) -> None:
        for key in self.published:
            key.probe()


def _read_private(path: Path) -> rsa.RSAPrivateKey:
    try:
        st = path.stat()
    except OSError as exc:
        raise SigningKeyError([f"{path}: cannot read the private key ({exc.strerror})"]) from None
    if stat.S_IMODE(st.st_mode) & 0o077:
        mode = stat.S_IMODE(st.st_mode)
        raise SigningKeyError(
            [f"{path}: the private key is readable by group or others (mode {mode:04o}); run `chmod 600 {path}`"]
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError([f"{path}: cannot read the private key ({exc.strerror})"]) from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        # never echo the parser's message: it may quote the file
        raise SigningKeyError([f"{path}: not an unencrypted PEM private key"]) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SigningKeyError([f"{path}: the signing key must be RSA (AWS STS documents RS256 and RSA-SHA256 only)"])
    if key.key_size < MIN_KEY_BITS:
        raise SigningKeyError([f"{path}: the RSA key has {key.key_size} bits; at least {MIN_KEY_BITS} are required"])
    return key


def _read_cert(path: Path) -> x509.Certificate:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError([f"{path}: cannot read the certificate ({exc.strerror})"]) from None
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise SigningKeyError([f"{path}: not a PEM certificate"]) from None


def load_key(files: KeyFiles) -> SigningKey:
    key = _read_private(files.key)
    cert = _read_cert(files.cert)
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey) or public.public_numbers() != key.public_key().public_numbers():
        raise SigningKeyError([f"{files.cert}: this certificate is not the certificate of {files.key}"])
    return SigningKey.from_objects(key, cert, source=str(files.key))


def ephemeral_key(*, now: datetime | None = None) -> SigningKey:
    """An in-memory key pair for the demo and sandbox: lost at exit, never accepted by real AWS."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _self_signed(key, common_name="federation-broker-ephemeral", days=30, now=now or datetime.now(UTC))
    return SigningKey.from_objects(key, cert, source="ephemeral")


def load_keyring(config: KeysConfig | None) -> KeyRing:
    """Parse the configured keys once (each parse ~45 ms); no config: one ephemeral key."""
    if config is None:
        return KeyRing(current=ephemeral_key(), ephemeral=True)
    current = load_key(config.current)
    nxt = load_key(config.next) if config.next is not None else None
    if nxt is not None and nxt.kid == current.kid:
        raise SigningKeyError(["keys.next: is the same key as keys.current"])
    return KeyRing(current=current, next=nxt)
