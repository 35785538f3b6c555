"""The ``mfa:`` section and ``broker check-config``: a key that is missing, unreadable or not 32
bytes is a problem (and start-up refuses it); an https:// broker without a key gets a warning;
unknown keys are refused with a path."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
import yaml

from broker.cli.check_config import check_config_file
from broker.errors import ConfigError
from tests.conftest import make_config

KEY = base64.b64encode(os.urandom(32)).decode()


def _file(tmp_path: Path, **sections: object) -> Path:
    path = tmp_path / "broker.yaml"
    path.write_text(yaml.safe_dump({"database": {"url": f"sqlite:///{tmp_path / 'b.db'}"}, **sections}))
    return path


def test_check_config_refuses_a_missing_or_bad_key_and_warns_without_one_in_production(tmp_path):
    https = {"server": {"public_url": "https://broker.example.com"}}
    unset = check_config_file(_file(tmp_path, mfa={"encryption_key_env": "MFA_KEY"}), env={}, database=False)
    assert any("MFA_KEY is not set" in p for p in unset.problems)
    short = check_config_file(_file(tmp_path, mfa={"encryption_key_env": "MFA_KEY"}),
                              env={"MFA_KEY": base64.b64encode(b"x" * 16).decode()}, database=False)
    assert any("not 32 bytes" in p for p in short.problems)
    (tmp_path / "key").write_text(KEY + "\n")
    good = check_config_file(_file(tmp_path, mfa={"encryption_key_file": str(tmp_path / "key"), "enrolment": "invite"},
                                   **https), env={}, database=False)
    assert good.problems == [] and not any("mfa" in w for w in good.warnings)
    plain = check_config_file(_file(tmp_path, **https), env={}, database=False)
    assert any(w.startswith("mfa: no encryption_key_env") for w in plain.warnings)
    assert any(w.startswith("mfa.enrolment: open") and "enrolment: invite" in w for w in plain.warnings)
    local = check_config_file(_file(tmp_path), env={}, database=False)  # http:// (a laptop, the demo): no warning
    assert not any("mfa.enrolment" in w for w in local.warnings)


def test_enrolment_mode_and_code_ttl_are_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"mfa\.enrolment"):
        make_config(tmp_path, mfa={"enrolment": "closed"})
    with pytest.raises(ConfigError, match=r"mfa\.enrolment_code_ttl"):
        make_config(tmp_path, mfa={"enrolment_code_ttl": 10})
    assert make_config(tmp_path, mfa={"enrolment": "invite", "enrolment_code_ttl": 3600}).mfa.enrolment == "invite"


def test_unknown_or_conflicting_mfa_keys_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"mfa\.default_max_agee: unknown key"):
        make_config(tmp_path, mfa={"default_max_agee": 600})
    with pytest.raises(ConfigError, match="not both"):
        make_config(tmp_path, mfa={"encryption_key_env": "A", "encryption_key_file": "/x"})
    with pytest.raises(ConfigError, match=r"mapping\.mappings\[0\]\.mfa_max_age"):
        make_config(tmp_path, mapping={"accounts": [{"id": "111111111111", "roles": [{"name": "Admin"}]}],
                                       "mappings": [{"group": "g", "account": "111111111111", "role": "Admin",
                                                     "mfa_max_age": 10}]})


def test_start_up_refuses_a_configured_key_it_cannot_read(tmp_path):
    from broker.app import create_app

    with pytest.raises(ConfigError, match="MFA_KEY"):
        create_app(make_config(tmp_path, mfa={"encryption_key_env": "MFA_KEY"}), env={}, configure_logging=False)
