"""``notifications:``: the webhooks access policies (``notify:``) and break-glass (``alert:``) name.

A webhook's URL is a secret (Slack's and Teams' carry their token in the path): give it inline
(``url``, masked in every dump and in ``effective_config_hash``), from an environment variable
(``url_env``) or from a file (``url_file``). Every delivery is signed with an HMAC-SHA256 key
from ``secret_env`` or ``secret_file``, unless the webhook says ``unsigned: true`` (Slack and
Teams check nothing of the kind). Env variables and files are read when the broker starts
(``resolve``); ``broker check-config`` reports what that would miss (``problems``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from broker.audit_forward.config import is_loopback
from broker.config_sources import from_env, from_file
from broker.errors import ConfigError

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
WebhookName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Format = Literal["slack", "teams", "json"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookConfig(_Section):
    url: SecretStr | None = None
    """https://... (http:// only to a loopback address). A secret: never logged, masked."""
    url_env: Annotated[str, Field(pattern=_ENV_NAME)] | None = None
    """The environment variable holding the URL."""
    url_file: Path | None = None
    """A file holding the URL (a mounted secret); surrounding whitespace ignored."""
    format: Format = "json"
    """``slack`` (incoming webhook: text + blocks), ``teams`` (an Adaptive Card message: Workflows
    or an incoming webhook), ``json`` (the notification as is)."""
    secret_env: Annotated[str, Field(pattern=_ENV_NAME)] | None = None
    """The environment variable holding the HMAC key of ``X-Broker-Signature``."""
    secret_file: Path | None = None
    """A file holding the HMAC key (its bytes, surrounding whitespace stripped)."""
    unsigned: bool = False
    """True: no signature (the receiver checks none, e.g. Slack or Teams); no key is then given."""
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0
    """Bound of each network step of one attempt (connect, write, read)."""
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 12
    """Attempts before a notification is given up (``failed``, kept in the outbox table)."""
    max_backoff_seconds: Annotated[float, Field(ge=1, le=86400)] = 300.0
    """After a failed attempt: 1 s, 2 s, 4 s ... (jittered) up to this, then retried."""

    @model_validator(mode="after")
    def _one_of_each(self) -> WebhookConfig:
        urls = [k for k in ("url", "url_env", "url_file") if getattr(self, k) is not None]
        if len(urls) != 1:
            raise ValueError("give the URL once: url, url_env or url_file")
        keys = [k for k in ("secret_env", "secret_file") if getattr(self, k) is not None]
        if self.unsigned and keys:
            raise ValueError(f"unsigned: true and {keys[0]} contradict each other")
        if not self.unsigned and len(keys) != 1:
            raise ValueError("an HMAC key is required: secret_env or secret_file (or unsigned: true)")
        if self.url is not None:
            problem = url_problem(self.url.get_secret_value())
            if problem:
                raise ValueError(f"url: {problem}")
        return self


class NotificationsConfig(_Section):
    """The ``notifications:`` section."""

    webhooks: dict[WebhookName, WebhookConfig] = Field(default_factory=dict, max_length=64)
    """Named webhooks; a policy's ``notify:`` (and break-glass's ``alert:``) names them."""
    interval_seconds: Annotated[float, Field(gt=0, le=60)] = 1.0
    """How often each worker's delivery thread looks for due notifications."""


def url_problem(url: str) -> str | None:
    """What is wrong with a webhook URL, never quoting it (it is a secret)."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        return "no credentials in the URL's authority"
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return None
    return "must be an https:// URL (http:// only to a loopback address)"


@dataclass(frozen=True)
class Webhook:
    """A webhook ready to deliver to: its URL and key read (``resolve``). ``repr`` hides both."""

    name: str
    config: WebhookConfig
    url: SecretStr
    key: SecretStr | None


def _read(name: str, path: str, *, env_key: str | None, file: Path | None, inline: SecretStr | None,
          env: Mapping[str, str], problems: list[str]) -> str | None:
    if inline is not None:
        return inline.get_secret_value()
    where = f"notifications.webhooks.{name}.{path}"
    if env_key is not None:
        return from_env(f"{where}_env", env_key, env, problems)
    assert file is not None
    text = from_file(f"{where}_file", file, problems)
    value = None if text is None else text.strip()
    if value == "":
        problems.append(f"{where}_file: {file} is empty")
    return value or None


def resolve_all(config: NotificationsConfig, env: Mapping[str, str]) -> tuple[dict[str, Webhook], list[str]]:
    """Every webhook with its URL and key read, and what could not be read (each with its path)."""
    out: dict[str, Webhook] = {}
    problems: list[str] = []
    for name, hook in config.webhooks.items():
        url = _read(name, "url", env_key=hook.url_env, file=hook.url_file, inline=hook.url, env=env,
                    problems=problems)
        if url is not None and (problem := url_problem(url)):
            problems.append(f"notifications.webhooks.{name}: the URL {problem}")
            url = None
        key = None if hook.unsigned else _read(name, "secret", env_key=hook.secret_env, file=hook.secret_file,
                                                  inline=None, env=env, problems=problems)
        if url is not None and (hook.unsigned or key is not None):
            out[name] = Webhook(name, hook, SecretStr(url), None if key is None else SecretStr(key))
    return out, problems


def problems(config: NotificationsConfig, env: Mapping[str, str]) -> list[str]:
    """``broker check-config``: the URLs and keys the start would miss."""
    return resolve_all(config, env)[1]


def resolve(config: NotificationsConfig, env: Mapping[str, str]) -> dict[str, Webhook]:
    """The webhooks, ready; a URL or key that cannot be read is a ConfigError (start-up)."""
    hooks, found = resolve_all(config, env)
    if found:
        raise ConfigError(found)
    return hooks
