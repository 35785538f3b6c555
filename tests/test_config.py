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
        "server.colour: Extra inputs are not permitted",
        "admin.tokens[0].sha256:",
        "surprise: Extra inputs are not permitted",
        "mapping.accounts[0].id: an AWS account id is exactly 12 digits",
        "mapping.accounts[0].roles[0].name: an IAM role name",
        "mapping.rules[0].pattern: the pattern needs the named groups",
    ):
        assert expected in problems, (expected, problems)
    assert len(err.value.problems) == 8


def test_dangling_mapping_reference_is_a_config_error():
    with pytest.raises(ConfigError) as err:
        parse_config({"mapping": {"mappings": [{"group": "g", "account": "nosuch", "role": "Admin"}]}}, env={})
    assert "unknown account 'nosuch'" in str(err.value)


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
    assert "server.port" in bad.stderr and "extra: Extra inputs are not permitted" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_the_kubernetes_example_config_is_valid():
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "broker.yaml").read_text()))
    (configmap,) = [d for d in docs if d["kind"] == "ConfigMap"]
    data = yaml.safe_load(configmap["data"]["broker.yaml"])
    config = parse_config(data, env={"BROKER_DB_PASSWORD": "x", "BROKER_REDIS_URL": "redis://redis:6379/0"})
    assert config.state.backend == "redis" and config.database.url.startswith("postgresql+psycopg://")


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
