"""Configuration: one YAML file, unknown keys rejected, ${ENV} for secrets, every error at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from broker.config import load_config, parse_config
from broker.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "broker.yaml"
    p.write_text(textwrap.dedent(text))
    return p


@pytest.mark.parametrize("name", ["demo.yaml", "broker.example.yaml"])
def test_shipped_configs_are_valid(name):
    env = {"BROKER_DB_PASSWORD": "x", "BROKER_REDIS_URL": "redis://127.0.0.1:6379/0", "LDAP_BIND_PASSWORD": "x"}
    config = load_config(ROOT / "config" / name, env=env)
    assert config.server.public_url.startswith("http")


def test_empty_file_gives_the_embedded_defaults(tmp_path):
    config = load_config(write(tmp_path, ""), env={})
    assert config.database.url.startswith("sqlite")
    assert config.state.backend == "memory"
    assert config.server.trusted_proxies == []  # nobody's forwarding headers are believed


def test_env_expansion_and_secrets_stay_secret(tmp_path):
    path = write(
        tmp_path,
        """
        database:
          url: postgresql+psycopg://broker@db/broker
          password: ${DB_PASSWORD}
        server:
          public_url: ${PUBLIC_URL:-https://broker.example.com}
        """,
    )
    config = load_config(path, env={"DB_PASSWORD": "s3cr3t-value"})
    assert config.database.password.get_secret_value() == "s3cr3t-value"
    assert config.server.public_url == "https://broker.example.com"
    assert "s3cr3t-value" not in repr(config) and "s3cr3t-value" not in str(config.model_dump())


def test_every_problem_is_reported_at_once_with_its_path(tmp_path):
    path = write(
        tmp_path,
        """
        server:
          port: 70000
          colour: blue
        database:
          password: ${MISSING_SECRET}
        admin:
          tokens:
            - name: ci
              sha256: not-a-hash
        surprise: {}
        mapping:
          accounts:
            - id: "12345"
              roles: [{name: "bad role"}]
          rules:
            - name: r
              pattern: "^AWS-(?P<acct>\\\\d+)$"
        """,
    )
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    problems = "\n".join(err.value.problems)
    for expected in (
        "database.password: environment variable MISSING_SECRET is not set",
        "server.port:",
        "server.colour: unknown key (known here: cpu_affinity, docs, drain_seconds, host, keepalive_seconds, max_body_bytes, port, ",
        "admin.tokens[0].sha256:",
        "surprise: unknown key (known here: admin, api, ",
        "mapping.accounts[0].id: an AWS account id is exactly 12 digits",
        "mapping.accounts[0].roles[0].name: an IAM role name",
        "mapping.rules[0].pattern: the pattern needs the named groups",
    ):
        assert expected in problems, (expected, problems)
    assert len(err.value.problems) == 8


def test_dangling_mapping_reference_is_a_config_error():
    with pytest.raises(ConfigError) as err:
        parse_config({"mapping": {"mappings": [{"group": "g", "account": "nosuch", "role": "Admin"}]}}, env={})
    assert err.value.problems == ["mapping.mappings[0].account: mapping for group 'g': no account 'nosuch' is declared"]


def test_yaml_syntax_error_names_the_line(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "server:\n  port: [\n"), env={})
    assert "line" in err.value.problems[0]


def test_check_config_command(tmp_path):
    good = subprocess.run(
        [sys.executable, "-m", "broker", "check-config", str(ROOT / "config" / "demo.yaml")], capture_output=True, text=True,
        check=False,
    )
    assert good.returncode == 0 and "OK" in good.stdout
    bad_path = write(tmp_path, "server: {port: nope}\nextra: 1\n")
    bad = subprocess.run(
        [sys.executable, "-m", "broker", "check-config", str(bad_path)], capture_output=True, text=True, check=False
    )
    assert bad.returncode != 0
    assert "error: server.port: Input should be a valid integer" in bad.stderr
    assert "error: extra: unknown key (known here: admin, api, audit, break_glass, database, " in bad.stderr
    assert "Traceback" not in bad.stderr


DEMO_HASH = "$2b$12$LYTJyrgmep47mVJhwtcAcO.ecIPdoQL7e0WhfAYEEqMhfUJ05YdhO"  # config/demo.yaml's alice


def test_unknown_keys_say_what_was_probably_meant():
    with pytest.raises(ConfigError) as err:
        parse_config(
            {
                "server": {"pubilc_url": "https://broker.example.com"},
                "directory": {"type": "static", "users": [{"username": "a", "password_hash": DEMO_HASH, "emial": "a@x"}]},
                "mapping": {"accounts": [{"id": "111111111111", "federation": {"path": "saml", "saml_provder": "b"}}]},
                "sesion_tags": {},
            },
            env={},
        )
    assert err.value.problems == [
        "server.pubilc_url: unknown key (did you mean 'public_url'?)",
        "mapping.accounts[0].federation.saml_provder: unknown key (did you mean 'saml_provider'?)",
        "directory.users[0].emial: unknown key (did you mean 'email'?)",
        "sesion_tags: unknown key (did you mean 'session_tags'?)",
    ]


MAPPING_WITH_BAD_REFERENCES = {
    "accounts": [
        {"id": "111111111111", "alias": "prd", "roles": [{"name": "Admin"}, {"name": "ReadOnly"}]},
        {"id": "222222222222", "alias": "dev"},
        {"id": "111111111111"},
    ],
    "mappings": [
        {"group": "admins", "account": "prd", "role": "Admin"},
        {"group": "ops", "account": "dev", "role": "Admin"},
        {"group": "ops", "account": "prod", "role": "Admin"},
        {"group": "ops", "account": "111111111111", "role": "ReadOnyl"},
        {"group": "ADMINS", "account": "111111111111", "role": "admin"},
    ],
    "rules": [
        {"name": "adfs", "pattern": "^AWS-(?P<account>\\d{12})-(?P<role>\\w+)$"},
        {"name": "adfs", "pattern": "^X-(?P<account>\\d{12})-(?P<role>\\w+)$"},
    ],
}


def test_cross_reference_problems_carry_their_own_path():
    with pytest.raises(ConfigError) as err:
        parse_config({"directory": {"type": "static"}, "mapping": MAPPING_WITH_BAD_REFERENCES}, env={})
    assert err.value.problems == [
        "mapping.accounts[2].id: account 111111111111 is listed twice (also accounts[0])",
        "mapping.mappings[1].role: mapping for group 'ops': account 222222222222 has no role 'Admin'",
        "mapping.mappings[2].account: mapping for group 'ops': no account 'prod' is declared (did you mean 'prd'?)",
        ("mapping.mappings[3].role: mapping for group 'ops': account 111111111111 has no role 'ReadOnyl' "
        "(did you mean 'ReadOnly'?)"),
        "mapping.mappings[4]: mapping 'ADMINS' -> 111111111111/admin is listed twice",
        "mapping.rules[1].name: rule 'adfs' is listed twice",
    ]
    assert "top level" not in str(err.value) and "Value error" not in str(err.value)


def test_key_and_upstream_problems_carry_their_own_path():
    with pytest.raises(ConfigError) as err:
        parse_config(
            {
                "server": {"workers": 2},
                "sts": {"mode": "aws"},
                "upstream": [
                    {"type": "oidc", "name": "okta", "issuer": "https://okta.example.com", "client_id": "c"},
                    {"type": "oidc", "name": "okta", "issuer": "https://okta2.example.com", "client_id": "c",
                     "enrich_from_directory": {"attribute": "mail"}},
                ],
            },
            env={},
        )
    assert err.value.problems == [
        "keys.current: key files are required when sts.mode is aws (make them with `broker keys generate`)",
        ("keys.current: without key files every worker (server.workers: 2) would sign with its own ephemeral key; "
         "configure key files"),
        "upstream[1].name: 'okta' is used twice (also upstream[0])",
        "upstream[1].enrich_from_directory: needs a directory: section",
    ]


def test_field_errors_unknown_keys_and_cross_references_come_in_one_pass(tmp_path):
    path = write(tmp_path, "")
    path.write_text(yaml.safe_dump({
        "server": {"port": 70000, "pubilc_url": "https://broker.example.com"},
        "directory": {"type": "static"},
        "sts": {"mode": "aws"},
        "mapping": MAPPING_WITH_BAD_REFERENCES | {"mappings": [{"group": "ops", "account": "prod", "role": "Admin"},
                                                               {"group": "ops", "account": "prd", "role": "bad role"}]},
    }))
    result = subprocess.run(
        [sys.executable, "-m", "broker", "check-config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    for expected in (
        "error: server.port: Input should be less than or equal to 65535",  # a field error
        "error: server.pubilc_url: unknown key (did you mean 'public_url'?)",  # an unknown key
        "error: mapping.mappings[1].role: an IAM role name is 1-64 characters",  # a field error in the mapping
        # cross-references, in spite of the field errors around them
        "error: mapping.mappings[0].account: mapping for group 'ops': no account 'prod' is declared (did you mean 'prd'?)",
        "error: mapping.accounts[2].id: account 111111111111 is listed twice (also accounts[0])",
        "error: keys.current: key files are required when sts.mode is aws",
    ):
        assert any(line.startswith(expected) for line in lines), (expected, result.stderr)
    assert "top level" not in result.stderr and "Value error" not in result.stderr and "Traceback" not in result.stderr


def test_check_config_warns_when_nobody_can_sign_in(tmp_path):
    path = write(tmp_path, "mapping: {accounts: [{id: '111111111111'}]}\n")
    result = subprocess.run(
        [sys.executable, "-m", "broker", "check-config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "warning: no directory: and no upstream: section: nobody can sign in" in result.stderr
    assert "OK (1 account(s)" in result.stdout
    demo = subprocess.run(
        [sys.executable, "-m", "broker", "check-config", str(ROOT / "config" / "demo.yaml")], capture_output=True,
        text=True, check=False,
    )
    assert demo.returncode == 0 and "warning" not in demo.stderr


def test_check_config_reports_a_rule_re2_cannot_compile(tmp_path):
    path = write(
        tmp_path,
        "mapping:\n  rules:\n    - name: look\n      pattern: '^(?!x)AWS-(?P<account>\\d{12})-(?P<role>\\w+)$'\n",
    )
    bad = subprocess.run(
        [sys.executable, "-m", "broker", "check-config", str(path)], capture_output=True, text=True, check=False
    )
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "mapping.rules[0].pattern: the pattern does not compile as RE2 syntax" in bad.stderr, bad.stderr
    assert "invalid perl operator: (?!" in bad.stderr
