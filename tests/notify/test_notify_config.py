"""``notifications:`` and a policy's ``notify:``: refused with a clear message and its path when
a name is not declared, a key is missing, a URL is not https; the URL and key are secrets —
masked in dumps and in the effective config hash, read from the environment or a file at start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.cli.check_config import check_config_file
from broker.config import parse_config
from broker.errors import ConfigError
from broker.readiness import config_hash
from tests.notify.conftest import notify_sections

SLACK = "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX"


def _problems(data: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config(data, env=env or {})
    return err.value.problems


def test_a_policy_naming_an_undeclared_webhook_is_refused_with_its_path():
    data = notify_sections({"chat": {"url": SLACK, "unsigned": True}})
    data["jit"]["policies"]["prod-readonly"]["notify"] = ["chat", "pager"]
    problems = _problems(data)
    assert any(p.startswith("jit.policies.prod-readonly.notify[1]: no webhook 'pager' in notifications.webhooks (chat)")
               for p in problems), problems


@pytest.mark.parametrize(("hook", "says"), [
    ({"url": SLACK}, "an HMAC key is required: secret_env or secret_file (or unsigned: true)"),
    ({"url": SLACK, "unsigned": True, "secret_env": "K"}, "unsigned: true and secret_env contradict each other"),
    ({"url": SLACK, "url_env": "U", "unsigned": True}, "give the URL once: url, url_env or url_file"),
    ({"unsigned": True}, "give the URL once"),
    ({"url": "http://hooks.example.org/T0KEN", "unsigned": True}, "must be an https:// URL"),
    ({"url_env": "U", "unsigned": True, "format": "discord"}, "notifications.webhooks.chat.format"),
    ({"url_env": "U", "unsigned": True, "max_attempts": 0}, "notifications.webhooks.chat.max_attempts"),
])
def test_a_bad_webhook_is_refused_clearly(hook: dict[str, Any], says: str):
    problems = _problems(notify_sections({"chat": hook}))
    assert any(says in p for p in problems), problems
    assert not any("T0KEN" in p or "XXXXsecret" in p for p in problems)  # never the URL itself


def test_the_url_is_masked_in_dumps_and_the_effective_config_hash():
    data = notify_sections({"chat": {"url": SLACK, "unsigned": True}})
    one = parse_config(data, env={})
    data["notifications"]["webhooks"]["chat"]["url"] = SLACK.replace("XXXX", "YYYY")
    other = parse_config(data, env={})
    assert "XXXXsecret" not in repr(one.notifications) and "XXXXsecret" not in str(one.model_dump(mode="json"))
    assert config_hash(one) == config_hash(other)
    assert one.jit.policies["prod-readonly"].notify == ["chat"]
    assert one.jit.policies["prod-readonly"].pending_expiry == 86400 and one.jit.sweep_seconds == 30


def _file(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "broker.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_check_config_names_an_unset_variable_and_an_unreadable_file(tmp_path: Path):
    data = notify_sections({
        "chat": {"url_env": "CHAT_URL", "secret_file": str(tmp_path / "missing-key"), "format": "slack"},
        "pager": {"url_file": str(tmp_path / "pager-url"), "secret_env": "PAGER_KEY"},
    })
    data["database"] = {"url": f"sqlite:///{tmp_path / 'b.db'}"}
    (tmp_path / "pager-url").write_text("http://pager.example.org/T0KEN\n", encoding="utf-8")
    check = check_config_file(_file(tmp_path, data), env={"PAGER_KEY": "k"}, database=False)
    assert "notifications.webhooks.chat.url_env: environment variable CHAT_URL is not set" in check.problems
    assert any(p.startswith("notifications.webhooks.chat.secret_file: cannot read") for p in check.problems)
    assert "notifications.webhooks.pager: the URL must be an https:// URL (http:// only to a loopback address)" \
        in check.problems
    assert not any("T0KEN" in p for p in check.problems)

    (tmp_path / "key").write_text("k3y\n", encoding="utf-8")
    (tmp_path / "pager-url").write_text("https://pager.example.org/T0KEN\n", encoding="utf-8")
    data["notifications"]["webhooks"]["chat"]["secret_file"] = str(tmp_path / "key")
    ok = check_config_file(_file(tmp_path, data), env={"PAGER_KEY": "k", "CHAT_URL": SLACK}, database=False)
    assert ok.problems == []


def test_the_broker_does_not_start_without_a_webhooks_key(app_factory):
    data = notify_sections({"chat": {"url": SLACK, "secret_env": "HOOK_KEY"}})
    with pytest.raises(ConfigError) as err:
        app_factory(env={}, **data)
    assert err.value.problems == ["notifications.webhooks.chat.secret_env: environment variable HOOK_KEY is not set"]
