"""The awsbroker distribution on its own, as `pipx install` puts it on a laptop: built from
clients/awsbroker into a clean venv, nothing of the server installed, then login, roles and
credentials against a live broker (the credentials accepted by the sandbox's STS)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from tests.cli.conftest import Laptop

pytestmark = pytest.mark.sts

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "awsbroker"
# distributions only the server needs: none of them may come with the CLI (pydantic may: typer >= 0.20 needs it)
SERVER_SIDE = {"broker", "fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "psycopg",
               "psycopg-binary", "xmlsec", "lxml", "python3-saml", "ldap3", "boto3", "botocore", "moto", "redis",
               "authlib", "joserfc", "jinja2", "bcrypt", "argon2-cffi", "google-re2", "structlog", "cryptography"}
LIST_DISTRIBUTIONS = ("import importlib.metadata as m, json; "
                      "print(json.dumps({d.metadata['Name'].lower().replace('_', '-'): d.version "
                      "for d in m.distributions()}))")


def outside_env() -> dict[str, str]:
    """This process's environment without what points into the test venv or the checkout."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def run(*cmd: str | Path, cwd: Path, timeout: float = 300) -> str:
    """``cmd`` in ``cwd``, outside the checkout (``python -c`` would find ./broker in the working directory)."""
    out = subprocess.run([str(c) for c in cmd], env=outside_env(), capture_output=True, text=True, timeout=timeout,
                         check=False, cwd=cwd)
    assert out.returncode == 0, f"{cmd}: {out.stdout}\n{out.stderr}"
    return out.stdout


@pytest.fixture(scope="module")
def laptop_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the awsbroker distribution and its dependencies only (pip reaches PyPI for those)."""
    root = tmp_path_factory.mktemp("laptop")
    source = root / "awsbroker-src"  # a copy: the build leaves build/ and *.egg-info behind, not in the checkout
    shutil.copytree(CLIENT, source, ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__"))
    venv = root / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=root)
    run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", source, cwd=root,
        timeout=600)
    return venv


def test_the_cli_installs_alone_and_logs_in_lists_roles_and_issues(laptop_venv: Path, laptop: Laptop) -> None:
    python = laptop_venv / "bin" / "python"
    installed: dict[str, str] = json.loads(run(python, "-c", LIST_DISTRIBUTIONS, cwd=laptop_venv))
    assert {"awsbroker", "httpx", "typer"} <= set(installed)
    assert sorted(SERVER_SIDE & set(installed)) == []
    assert run(python, "-c", "import importlib.util as u; print(u.find_spec('broker'))", cwd=laptop_venv).strip() == "None"
    program = laptop_venv / "bin" / "awsbroker"
    assert run(program, "version", cwd=laptop_venv).strip() == installed["awsbroker"]

    assert laptop.server is not None
    alone = Laptop(laptop.home, laptop.url, program=str(program), checkout=False, server=laptop.server)
    proc, err, _ = alone.device_login()
    assert proc.returncode == 0, err
    assert "Logged in to" in err

    roles = alone.run("roles", "--json")
    assert roles.returncode == 0, roles.stderr
    dev_admin = [r for r in json.loads(roles.stdout) if (r["account_alias"], r["role_name"]) == ("sandbox-dev", "Admin")]
    assert len(dev_admin) == 1

    issued = alone.run("credentials", "--account", "sandbox-dev", "--role", "Admin")
    assert issued.returncode == 0, issued.stderr
    creds = json.loads(issued.stdout)
    assert set(creds) == {"Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}
    sts = boto3.client("sts", region_name="us-east-1", endpoint_url=laptop.server.services.aws.sandbox.endpoint(),
                       aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                       aws_session_token=creds["SessionToken"])
    assert sts.get_caller_identity()["Account"] == dev_admin[0]["account_id"]
