"""Signing keys: generated with mode 0600, parsed once, refused when too open or mismatched;
current and next both published (rotation without downtime)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from typer.testing import CliRunner

from broker.cli.server import app as cli
from broker.errors import ConfigError, SigningKeyError
from broker.minting.config import KeyFiles, KeysConfig
from broker.minting.keys import KeyRing, generate_keypair, key_id, load_key, load_keyring
from tests.conftest import make_config
from tests.federation.conftest import KeyFilesOnDisk


def test_keys_generate_writes_a_private_key_only_its_owner_can_read(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["keys", "generate", "--out", str(tmp_path / "k"), "--name", "next"])
    assert result.exit_code == 0, result.output
    key, cert = tmp_path / "k" / "next.key.pem", tmp_path / "k" / "next.cert.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    loaded = load_key(KeyFiles(key=key, cert=cert))
    assert f"kid  {loaded.kid}" in result.output
    assert loaded.private_key.key_size == 2048
    # a second run does not overwrite a key by accident
    again = CliRunner().invoke(cli, ["keys", "generate", "--out", str(tmp_path / "k"), "--name", "next"])
    assert again.exit_code == 1 and loaded.kid == load_key(KeyFiles(key=key, cert=cert)).kid


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_readable_by_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    key, cert, _ = generate_keypair(tmp_path)
    os.chmod(key, mode)
    with pytest.raises(SigningKeyError) as err:
        load_key(KeyFiles(key=key, cert=cert))
    assert f"{mode:04o}" in str(err.value) and f"chmod 600 {key}" in str(err.value)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_owner_only_modes_are_accepted(tmp_path: Path, mode: int) -> None:
    key, cert, kid = generate_keypair(tmp_path)
    os.chmod(key, mode)
    assert load_key(KeyFiles(key=key, cert=cert)).kid == kid


def _write_key(path: Path, key: object) -> None:
    pem = key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    os.chmod(path, 0o600)


def test_a_certificate_of_another_key_is_refused(key_files: KeyFilesOnDisk) -> None:
    with pytest.raises(SigningKeyError, match="not the certificate of"):
        load_key(KeyFiles(key=key_files.current.key, cert=key_files.next.cert))


def test_short_and_non_rsa_keys_are_refused(tmp_path: Path, key_files: KeyFilesOnDisk) -> None:
    small = tmp_path / "small.pem"
    _write_key(small, rsa.generate_private_key(public_exponent=65537, key_size=1024))
    with pytest.raises(SigningKeyError, match="1024 bits"):
        load_key(KeyFiles(key=small, cert=key_files.current.cert))
    ecc = tmp_path / "ec.pem"
    _write_key(ecc, ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(SigningKeyError, match="must be RSA"):
        load_key(KeyFiles(key=ecc, cert=key_files.current.cert))


def test_an_unreadable_key_file_is_reported_without_its_content(tmp_path: Path, key_files: KeyFilesOnDisk) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN PRIVATE KEY-----\nSECRETSECRET\n-----END PRIVATE KEY-----\n")
    os.chmod(junk, 0o600)
    with pytest.raises(SigningKeyError) as err:
        load_key(KeyFiles(key=junk, cert=key_files.current.cert))
    assert "SECRETSECRET" not in str(err.value)
    with pytest.raises(SigningKeyError, match="cannot read"):
        load_key(KeyFiles(key=tmp_path / "missing.pem", cert=key_files.current.cert))


def test_current_and_next_are_both_published_and_the_current_one_signs(key_files: KeyFilesOnDisk) -> None:
    ring = load_keyring(key_files.config())
    assert [k.kid for k in ring.published] == [ring.current.kid, ring.next.kid]  # type: ignore[union-attr]
    assert ring.current.kid != ring.next.kid  # type: ignore[union-attr]
    public_pem = ring.current.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert ring.current.kid == key_id(public_pem)
    ring.check()


def test_the_same_key_as_current_and_next_is_a_configuration_mistake(key_files: KeyFilesOnDisk) -> None:
    with pytest.raises(SigningKeyError, match="same key"):
        load_keyring(KeysConfig(current=key_files.current, next=key_files.current))


def test_private_material_never_shows_in_a_repr(key_files: KeyFilesOnDisk) -> None:
    ring = load_keyring(key_files.config())
    text = repr(ring)
    assert "PRIVATE" not in text and ring.current.kid in text


def test_without_key_files_the_sandbox_uses_an_ephemeral_key_and_production_refuses(tmp_path: Path) -> None:
    ring = load_keyring(None)
    assert isinstance(ring, KeyRing) and ring.ephemeral and ring.next is None
    with pytest.raises(ConfigError, match="key files are required when sts.mode is aws"):
        make_config(tmp_path, sts={"mode": "aws"})
    with pytest.raises(ConfigError, match="every worker .server.workers: 2. would sign with its own ephemeral key"):
        make_config(tmp_path, server={"workers": 2})


def test_the_broker_does_not_start_with_a_too_open_key(tmp_path: Path, app_factory: object) -> None:
    key, cert, _ = generate_keypair(tmp_path / "k")
    os.chmod(key, 0o644)
    config = make_config(tmp_path, keys={"current": {"key": str(key), "cert": str(cert)}}, sts={"mode": "aws"})
    with pytest.raises(SigningKeyError, match="readable by group or others"):
        app_factory(config)  # type: ignore[operator]


def test_readiness_reports_the_keys(tmp_path: Path, app_factory: object, key_files: KeyFilesOnDisk) -> None:
    client = app_factory(keys=key_files.section())  # type: ignore[operator]
    body = client.get("/readyz").json()
    assert body["checks"]["keys"] == "ok"
