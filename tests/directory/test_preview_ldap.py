"""`broker preview-assertion --user` against a real OpenLDAP: the person's groups (nested too)
and immutable id come from the directory, as at an issuance."""

from __future__ import annotations

import re

import pytest
import yaml
from typer.testing import CliRunner

from broker.cli.server import app
from tests.directory.test_directory_app import MAPPING

pytestmark = pytest.mark.ldap


def test_preview_reads_carol_from_openldap(tmp_path, ldap_settings, ldap):
    path = tmp_path / "broker.yaml"
    path.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite:///{tmp_path / 'none' / 'broker.db'}"},
        "directory": ldap_settings(),
        "mapping": MAPPING,
    }))
    carol = ldap.lookup("carol")  # what the connector itself says
    out = CliRunner().invoke(app, ["preview-assertion", "--config", str(path), "--user", "carol",
                                   "--account", "dev", "--role", "Developer", "--decode"])
    assert out.exit_code == 0, out.output
    assert re.search(r"^person: carol \(id [0-9a-f-]{36}; groups: .*developers", out.stderr, re.MULTILINE)
    assert f"source_identity: {carol.id}" in out.stderr
    assert f">{carol.id}<" in out.stdout  # SourceIdentity in the signed assertion
    assert "arn:aws:iam::111122223333:role/Developer" in out.stdout
    denied = CliRunner().invoke(app, ["preview-assertion", "--config", str(path), "--user", "dan",
                                      "--account", "dev", "--role", "Developer"])
    assert denied.exit_code == 1 and "dan has no grant for role Developer in account dev" in denied.stderr
