"""`broker check-directory`: what an operator wiring a new directory sees."""

from __future__ import annotations

import re

import pytest
import yaml
from typer.testing import CliRunner

from broker.cli.server import app
from tests.directory.servers import SUFFIX
from tests.directory.test_directory_app import MAPPING


@pytest.fixture
def config_file(tmp_path, ldap_settings):
    def write(**directory):
        path = tmp_path / "broker.yaml"
        path.write_text(
            yaml.safe_dump(
                {
                    "database": {"url": f"sqlite:///{tmp_path / 'none' / 'broker.db'}"},
                    "directory": ldap_settings(**directory),
                    "mapping": MAPPING,
                }
            )
        )
        return str(path)

    return write


pytestmark = pytest.mark.ldap


def test_it_signs_in_and_prints_dn_id_groups_and_grants(config_file, ldap_passwords):
    out = CliRunner().invoke(
        app,
        ["check-directory", "--config", config_file(), "--user", "carol"],
        input=ldap_passwords["carol"] + "\n",
    )
    assert out.exit_code == 0, out.output
    text = out.output
    assert ldap_passwords["carol"] not in text  # hidden input, never echoed
    assert re.search(r"^bind\s+OK$", text, re.MULTILINE)
    assert f"uid=carol,ou=people,{SUFFIX}" in text
    assert re.search(r"^id\s+[0-9a-f-]{36}$", text, re.MULTILINE)
    for group in ("backend", "developers", "engineering"):
        assert re.search(rf"^\s+{group}$", text, re.MULTILINE)
    assert f"cn=engineering,ou=groups,{SUFFIX}" in text  # the DNs too
    assert "arn:aws:iam::111122223333:role/Developer" in text
    assert "arn:aws:iam::444455556666:role/Admin" in text


def test_no_bind_looks_up_without_asking_for_a_password(config_file):
    out = CliRunner().invoke(app, ["check-directory", "-c", config_file(), "-u", "alice", "--no-bind"])
    assert out.exit_code == 0, out.output
    assert "password" not in out.output.lower().split("bind")[0]
    assert "skipped (--no-bind)" in out.output and "aws-admins" in out.output


def test_a_refusal_says_why_to_the_operator(config_file):
    out = CliRunner().invoke(app, ["check-directory", "-c", config_file(), "-u", "alice"], input="not-it\n")
    assert out.exit_code == 1
    assert "REFUSED (wrong_password)" in out.output


def test_an_unknown_user_and_an_outage_are_reported(config_file):
    out = CliRunner().invoke(app, ["check-directory", "-c", config_file(), "-u", "nobody", "--no-bind"])
    assert out.exit_code == 1 and "not found" in out.output
    out = CliRunner().invoke(
        app, ["check-directory", "-c", config_file(bind_password="wrong"), "-u", "alice", "--no-bind"]
    )
    assert out.exit_code == 3
    assert "error [directory_unavailable]" in out.output and "service account" in out.output
