"""`awsbroker` against a running broker: device login while the CLI polls, roles, credentials in
every format, credential_process and the container endpoint consumed by botocore's own providers
(GetCallerIdentity on the sandbox's moto STS), configure, console, logout, exit codes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.cli.conftest import AWSBROKER, Laptop, approve_in_portal

pytestmark = pytest.mark.sts

EXIT_LOGIN_REQUIRED, EXIT_DENIED, EXIT_UNREACHABLE, EXIT_LOGIN_FAILED = 3, 4, 5, 6


def secrets_in(text: str, creds: dict) -> list[str]:
    return [k for k in ("SecretAccessKey", "SessionToken") if creds.get(k) and creds[k] in text]


def botocore_identity(laptop: Laptop, env: dict[str, str], profile: str | None = None) -> dict:
    """GetCallerIdentity through botocore's own credential chain, in a clean process (its env only)."""
    endpoint = laptop.server.services.aws.sandbox.endpoint()  # type: ignore[attr-defined]
    code = (
        "import json, botocore.session\n"
        f"s = botocore.session.Session(profile={profile!r})\n"
        f"c = s.create_client('sts', region_name='us-east-1', endpoint_url={endpoint!r})\n"
        "r = c.get_caller_identity()\n"
        "print(json.dumps({'Account': r['Account'], 'Arn': r['Arn'], 'method': s.get_credentials().method}))\n"
    )
    import sys

    out = subprocess.run([sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_device_login_then_roles_and_credentials_in_every_format(logged_in: Laptop):
    roles = logged_in.run("roles")
    assert roles.returncode == 0, roles.stderr
    assert "sandbox-dev" in roles.stdout and "222222222222" in roles.stdout

    as_json = logged_in.run("credentials", "--account", "sandbox-dev", "--role", "Admin")
    creds = json.loads(as_json.stdout)
    assert set(creds) == {"Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}
    env = logged_in.run("credentials", "-a", "sandbox-dev", "-r", "Developer", "--format", "env", "--region", "eu-west-1")
    assert env.stdout.startswith("export AWS_ACCESS_KEY_ID=") and "AWS_REGION=eu-west-1" in env.stdout
    ini = logged_in.run("credentials", "-a", "sandbox-dev", "-r", "Admin", "--format", "ini", "--profile", "dev")
    assert ini.stdout.startswith("[dev]\naws_access_key_id = ")
    for result in (roles, as_json, env, ini):
        assert secrets_in(result.stderr, creds) == []


def test_credential_process_caches_privately_and_botocore_uses_it(logged_in: Laptop):
    first = logged_in.run("credential-process", "--account", "sandbox-dev", "--role", "Admin")
    assert first.returncode == 0, first.stderr
    again = logged_in.run("credential-process", "--account", "sandbox-dev", "--role", "Admin")
    assert json.loads(again.stdout)["AccessKeyId"] == json.loads(first.stdout)["AccessKeyId"]  # from the cache
    cached = list((logged_in.home / ".cache" / "awsbroker" / "credentials").glob("*.json"))
    assert len(cached) == 1 and stat.S_IMODE(cached[0].stat().st_mode) == 0o600

    configured = logged_in.run("configure", "--command", AWSBROKER)
    assert configured.returncode == 0, configured.stderr
    config = (logged_in.home / ".aws" / "config").read_text()
    assert "[profile sandbox-dev-Admin]" in config and "[profile sandbox-prod-Admin]" not in config  # cli: false
    assert logged_in.run("configure", "--command", AWSBROKER).stderr.startswith("Unchanged")

    env = logged_in.env | {"AWS_CONFIG_FILE": str(logged_in.home / ".aws" / "config"),
                           "AWS_SHARED_CREDENTIALS_FILE": str(logged_in.home / "none")}
    who = botocore_identity(logged_in, env, profile="sandbox-dev-Admin")
    assert who["method"] == "custom-process" and who["Account"].isdigit()


def test_serve_credentials_feeds_botocore_container_provider(logged_in: Laptop):
    proc = logged_in.start("serve-credentials", "--account", "sandbox-dev", "--role", "Developer")
    try:
        assert proc.stdout is not None
        exports = dict(proc.stdout.readline().split(" ", 1)[1].strip().split("=", 1) for _ in range(2))
        uri, token = exports["AWS_CONTAINER_CREDENTIALS_FULL_URI"], exports["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
        assert uri.startswith("http://127.0.0.1:")
        env = {"PATH": logged_in.env["PATH"], "HOME": str(logged_in.home / "elsewhere"),
               "AWS_CONTAINER_CREDENTIALS_FULL_URI": uri, "AWS_CONTAINER_AUTHORIZATION_TOKEN": token}
        who = botocore_identity(logged_in, env)
        assert who["method"] == "container-role" and who["Account"].isdigit()

        import httpx

        assert httpx.get(uri, headers={"Authorization": "wrong"}).status_code == 403
        assert httpx.get(uri).status_code == 403
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_console_prints_the_sandbox_url_when_asked(logged_in: Laptop):
    r = logged_in.run("console", "--account", "sandbox-dev", "--role", "Admin", "--service", "s3", "--region", "eu-west-1",
                      "--print")
    assert r.returncode == 0, r.stderr
    assert "/sandbox/console/" in r.stdout and r.stdout.strip() not in r.stderr


def test_errors_have_distinct_exit_codes_and_no_secrets(logged_in: Laptop, tmp_path: Path):
    denied = logged_in.run("credentials", "--account", "sandbox-prod", "--role", "Admin")  # console only
    assert denied.returncode == EXIT_DENIED and "denied" in denied.stderr and denied.stdout == ""
    unknown = logged_in.run("credentials", "--account", "sandbox-dev", "--role", "Nope")
    assert unknown.returncode == EXIT_DENIED
    offline = logged_in.run("roles", "--url", "http://127.0.0.1:9")
    assert offline.returncode in (EXIT_LOGIN_REQUIRED, EXIT_UNREACHABLE)
    login = json.loads((logged_in.home / ".cache" / "awsbroker" / "login.json").read_text())
    for result in (denied, unknown, offline):
        assert login["access_token"] not in result.stderr and login["refresh_token"] not in result.stderr
    assert stat.S_IMODE(os.stat(logged_in.home / ".cache" / "awsbroker" / "login.json").st_mode) == 0o600


def botocore_in_profile(laptop: Laptop, config_file: Path, profile: str) -> subprocess.CompletedProcess[str]:
    """GetCallerIdentity as the AWS CLI would run it: botocore in a clean process, everything
    (credential_process, region, endpoint_url) from the profile; a PATH without awsbroker on it."""
    code = (
        "import json, botocore.session\n"
        f"s = botocore.session.Session(profile={profile!r})\n"
        "r = s.create_client('sts').get_caller_identity()\n"
        "print(json.dumps({'Account': r['Account'], 'Arn': r['Arn'], 'method': s.get_credentials().method}))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(laptop.home), "LANG": "C.UTF-8",
           "AWS_CONFIG_FILE": str(config_file), "AWS_SHARED_CREDENTIALS_FILE": str(laptop.home / "none")}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    import sys

    return subprocess.run([sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True, timeout=120)


def profile_section(text: str, name: str) -> str:
    return text.split(f"[profile {name}]\n", 1)[1].split("\n[", 1)[0]


def test_configured_sandbox_profiles_answer_get_caller_identity_as_alice(logged_in: Laptop, tmp_path: Path):
    config_file = tmp_path / "aws" / "config"
    out = logged_in.run("configure", AWS_CONFIG_FILE=str(config_file))  # no --command: its own absolute path
    assert out.returncode == 0, out.stderr
    assert "SANDBOX" in out.stderr
    endpoint = logged_in.server.services.aws.sandbox_sts_endpoint()  # type: ignore[attr-defined]
    assert endpoint.startswith("http://127.0.0.1:")
    dev = profile_section(config_file.read_text(), "sandbox-dev-Admin")
    assert f"credential_process = {AWSBROKER} credential-process --account sandbox-dev --role Admin" in dev
    assert f"endpoint_url = {endpoint}" in dev and "region = eu-west-1" in dev

    who = botocore_in_profile(logged_in, config_file, "sandbox-dev-Admin")  # the SAML path
    assert who.returncode == 0, who.stderr
    assert json.loads(who.stdout) == {"Account": "111111111111", "Arn": "arn:aws:sts::111111111111:assumed-role/Admin/alice",
                                      "method": "custom-process"}
    who = botocore_in_profile(logged_in, config_file, "sandbox-prod-ReadOnly")  # the web identity path
    assert who.returncode == 0, who.stderr
    assert json.loads(who.stdout)["Arn"] == "arn:aws:sts::222222222222:assumed-role/ReadOnly/alice"


def test_credentials_as_env_set_the_accounts_region_like_the_portal(logged_in: Laptop):
    bash = logged_in.run("credentials", "-a", "sandbox-dev", "-r", "Developer", "-f", "env")
    assert bash.returncode == 0, bash.stderr
    assert "export AWS_REGION=eu-west-1\n" in bash.stdout and "export AWS_DEFAULT_REGION=eu-west-1\n" in bash.stdout
    fish = logged_in.run("credentials", "-a", "sandbox-prod", "-r", "ReadOnly", "-f", "env", "--shell", "fish")
    assert "set -gx AWS_REGION 'us-east-1';" in fish.stdout and "set -gx AWS_DEFAULT_REGION 'us-east-1';" in fish.stdout
    ini = logged_in.run("credentials", "-a", "sandbox-dev", "-r", "Admin", "-f", "ini")
    assert ini.stdout.endswith("region = eu-west-1\n")
    chosen = logged_in.run("credentials", "-a", "sandbox-dev", "-r", "Developer", "-f", "env", "--region", "us-west-2")
    assert "export AWS_REGION=us-west-2\n" in chosen.stdout and "eu-west-1" not in chosen.stdout


def test_a_misspelt_account_or_role_gets_did_you_mean_from_ones_own_grants(logged_in: Laptop):
    role = logged_in.run("credentials", "-a", "sandbox-dev", "-r", "Admn")
    assert role.returncode == EXIT_DENIED and "did you mean role Admin in sandbox-dev?" in role.stderr
    account = logged_in.run("credentials", "-a", "sandbox-dve", "-r", "Admin")
    assert account.returncode == EXIT_DENIED and "did you mean account sandbox-dev?" in account.stderr
    far = logged_in.run("console", "-a", "sandbox-dev", "-r", "Billing", "--print")
    assert far.returncode == EXIT_DENIED and "your roles in sandbox-dev: Admin, Developer" in far.stderr


def test_logout_revokes_removes_the_cache_and_keeps_the_broker(logged_in: Laptop, tmp_path: Path):
    config_file = tmp_path / "aws-config"
    assert logged_in.run("configure", AWS_CONFIG_FILE=str(config_file)).returncode == 0
    logged_in.run("credential-process", "--account", "sandbox-dev", "--role", "Admin")
    token = json.loads((logged_in.home / ".cache" / "awsbroker" / "login.json").read_text())["access_token"]
    out = logged_in.run("logout")
    assert out.returncode == 0 and "1 cached credential(s) removed" in out.stderr
    import httpx

    assert httpx.get(logged_in.url + "/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    for args in (("roles",), ("credential-process", "--account", "sandbox-dev", "--role", "Admin")):
        after = logged_in.run(*args, unset=("AWSBROKER_URL",))  # the broker comes from the CLI's memory
        assert after.returncode == EXIT_LOGIN_REQUIRED, after.stderr
        assert "login required" in after.stderr and "awsbroker login" in after.stderr
    sdk = botocore_in_profile(logged_in, config_file, "sandbox-dev-Admin")  # credential_process through botocore
    assert sdk.returncode != 0 and "login required" in sdk.stderr and "awsbroker login" in sdk.stderr
    assert not list((logged_in.home / ".cache" / "awsbroker" / "credentials").glob("*.json"))
    remembered = json.loads((logged_in.home / ".cache" / "awsbroker" / "login.json").read_text())
    assert remembered == {"url": logged_in.url}  # no token left, only where the broker is


def test_a_denied_device_login_fails_cleanly(laptop: Laptop):
    proc, err, _ = laptop.device_login(lambda code: approve_in_portal(laptop.url, code, decision="deny"))
    assert proc.returncode == EXIT_LOGIN_FAILED and "denied" in err
    assert not (laptop.home / ".cache" / "awsbroker" / "login.json").exists()
