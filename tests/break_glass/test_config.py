"""check-config refuses a break-glass section that would be weak or dangling: a weak, plaintext or
unknown hash, a missing or short TOTP secret, a role the mapping does not declare, a name a
directory user has; and accepts a strong one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml
from argon2 import PasswordHasher

from broker.config import parse_config
from broker.errors import ConfigError
from broker.mfa.totp import new_secret
from tests.break_glass.conftest import BG_PASSWORD, HASHER, MAPPING

ROOT = Path(__file__).resolve().parents[2]
SECRET = new_secret()


def _account(**over: Any) -> dict[str, Any]:
    return {"username": "oncall", "password_hash": HASHER.hash(BG_PASSWORD), "totp_secret_env": "BG_TOTP",
            "roles": [{"account": "sandbox-prod", "role": "BreakGlassAdmin"}], **over}


def _config(account: dict[str, Any] | None = None, env: dict[str, str] | None = None, **section: Any) -> Any:
    data = {"mapping": MAPPING, "break_glass": {"when": "always", "accounts": [account or _account()], **section}}
    return parse_config(data, env={"BG_TOTP": SECRET} if env is None else env)


def _problems(*args: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as err:
        _config(*args, **kwargs)
    return err.value.problems


def test_a_strong_account_is_accepted_and_its_secret_read_from_the_environment() -> None:
    config = _config()
    [account] = config.break_glass.accounts
    assert account.totp_secret is not None and account.totp_secret.get_secret_value() == SECRET
    assert SECRET not in config.model_dump_json()  # masked wherever the config is shown or hashed
    assert config.break_glass.session_seconds == 3600 and config.break_glass.when == "always"
    bcrypt12 = bcrypt.hashpw(b"x", bcrypt.gensalt(rounds=12)).decode()
    assert _config(_account(password_hash=bcrypt12)).break_glass.accounts[0].password_hash == bcrypt12


@pytest.mark.parametrize(("password_hash", "why"), [
    (bcrypt.hashpw(b"x", bcrypt.gensalt(rounds=10)).decode(), "bcrypt cost 10 is too low: at least 12"),
    (PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("x"), "argon2id cost too low"),
    (PasswordHasher(type=__import__("argon2").Type.I).hash("x"), "argon2 hashes must be argon2id"),
    ("correct horse battery staple", "never the password itself"),
    ("$2b$12$short", "never the password itself"),
    ("$argon2id$v=19$m=65536,t=3,p=4$garbage", "not a well-formed argon2 hash"),
    ("{SSHA}abcdefgh", "never the password itself"),
])
def test_a_weak_plaintext_or_unknown_hash_is_refused(password_hash: str, why: str) -> None:
    [problem] = _problems(_account(password_hash=password_hash))
    assert problem.startswith("break_glass.accounts[0].password_hash: ") and why in problem


def test_the_totp_secret_is_required_readable_and_long_enough(tmp_path: Path) -> None:
    missing = _account()
    del missing["totp_secret_env"]
    assert any("a TOTP secret is required" in p for p in _problems(missing))
    assert _problems(env={}) == ["break_glass.accounts[0].totp_secret_env: environment variable BG_TOTP is not set"]
    assert any("has 80 bits: at least 160" in p for p in _problems(env={"BG_TOTP": "JBSWY3DPEHPK3PXP"}))
    assert any("not base32" in p for p in _problems(env={"BG_TOTP": "not base32 at all!!"}))
    inline = _account(totp_secret=SECRET)
    assert any("totp_secret: not a key of the file" in p for p in _problems(inline))
    both = _account(totp_secret_file=str(tmp_path / "x"))
    assert any("not both" in p for p in _problems(both))
    secret_file = tmp_path / "oncall.totp"
    secret_file.write_text(SECRET + "\n")
    by_file = _account(totp_secret_file=str(secret_file))
    del by_file["totp_secret_env"]
    assert _config(by_file).break_glass.accounts[0].totp_secret.get_secret_value() == SECRET
    by_file["totp_secret_file"] = str(tmp_path / "absent")
    assert any("totp_secret_file: cannot read" in p for p in _problems(by_file))


def test_unknown_accounts_and_roles_are_named() -> None:
    roles = [{"account": "sandbox-prod", "role": "NoSuchRole"}, {"account": "nowhere", "role": "Admin"},
             {"account": "222222222222", "role": "readonly"}]  # by id, any case: fine
    assert _problems(_account(roles=roles)) == [
        "break_glass.accounts[0].roles[0].role: account 'sandbox-prod' declares no role 'NoSuchRole' in mapping.accounts",
        ("break_glass.accounts[0].roles[1].account: no account 'nowhere' in mapping.accounts "
        "(break-glass roles are declared in the file)"),
    ]


def test_names_and_availability_rule_against_the_other_sections() -> None:
    static = {"type": "static", "name": "people", "users": [{"username": "oncall", "password_hash": HASHER.hash("y")}]}
    data = {"mapping": MAPPING, "directory": static,
            "break_glass": {"accounts": [_account()]}}
    with pytest.raises(ConfigError) as err:
        parse_config(data, env={"BG_TOTP": SECRET})
    assert err.value.problems == ["break_glass.accounts[0].username: 'oncall' is also a directory user: choose another name"]
    data = {"mapping": MAPPING, "break_glass": {"accounts": [_account()]}}
    with pytest.raises(ConfigError) as err:
        parse_config(data, env={"BG_TOTP": SECRET})
    assert err.value.problems == ["break_glass.when: directory_unavailable needs a directory: section (or when: always)"]
    data = {"mapping": MAPPING, "directory": static | {"name": "break_glass", "users": []},
            "break_glass": {"accounts": [_account()]}}
    with pytest.raises(ConfigError) as err:
        parse_config(data, env={"BG_TOTP": SECRET})
    assert any("named 'break_glass' would pass for break-glass sign-ins" in p for p in err.value.problems)
    assert any("username" in p for p in _problems(_account(username="On Call")))
    assert any("declared twice" in p for p in _problems_two())


def _problems_two() -> list[str]:
    data = {"mapping": MAPPING, "break_glass": {"when": "always", "accounts": [_account(), _account()]}}
    with pytest.raises(ConfigError) as err:
        parse_config(data, env={"BG_TOTP": SECRET})
    return err.value.problems


def test_alerts_name_declared_webhooks() -> None:
    hooks = {"webhooks": {"oncall-chat": {"url": "https://chat.example.com/hook", "format": "slack", "unsigned": True}}}
    data = {"mapping": MAPPING, "notifications": hooks,
            "break_glass": {"when": "always", "accounts": [_account()], "alert": ["oncall-chat", "pager"]}}
    with pytest.raises(ConfigError) as err:
        parse_config(data, env={"BG_TOTP": SECRET})
    assert err.value.problems == ["break_glass.alert[1]: no webhook 'pager' in notifications.webhooks (oncall-chat)"]
    data["break_glass"]["alert"] = ["oncall-chat"]
    assert parse_config(data, env={"BG_TOTP": SECRET}).break_glass.alert == ["oncall-chat"]
    data.pop("notifications")
    with pytest.raises(ConfigError) as err:
        parse_config(data, env={"BG_TOTP": SECRET})
    assert err.value.problems == [("break_glass.alert[0]: no webhook 'oncall-chat' in notifications.webhooks "
                                  "(none is declared)")]


def test_check_config_refuses_a_weak_hash(tmp_path: Path) -> None:
    data = {"mapping": MAPPING, "break_glass": {"when": "always", "accounts": [
        _account(password_hash=bcrypt.hashpw(b"x", bcrypt.gensalt(rounds=4)).decode())]}}
    path = tmp_path / "broker.yaml"
    path.write_text(yaml.safe_dump(data))
    run = subprocess.run([sys.executable, "-m", "broker", "check-config", str(path)], capture_output=True, text=True,
                         check=False, env={"BG_TOTP": SECRET, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
                         cwd=ROOT)
    assert run.returncode != 0
    assert "error: break_glass.accounts[0].password_hash: Value error, bcrypt cost 4 is too low: at least 12" in run.stderr
    assert "Traceback" not in run.stderr
