"""`broker check-config`: every problem of a configuration file in one pass, and warnings.

``check_config_file(path)`` returns a ``ConfigCheck``: ``problems`` (the file is unusable: field
errors, unknown keys with "did you mean", cross-references, each with its path) and
``warnings`` (the broker would start, but something is probably not what was meant). Further
checks append to either list; the command prints both and fails only on problems.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from broker.config import Config, load_config
from broker.errors import ConfigError
from broker.notify.config import problems as notify_problems


@dataclass
class ConfigCheck:
    source: str
    config: Config | None = None
    """None when there are problems."""
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Checks that could not run (the database could not be reached, ...)."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.config is None or self.problems:
            return f"{self.source}: {len(self.problems)} problem(s)"
        m = self.config.mapping
        return (
            f"{self.source}: OK ({len(m.accounts)} account(s), {sum(len(a.roles) for a in m.accounts)} role(s), "
            f"{len(m.mappings)} mapping(s), {len(m.rules)} rule(s) declared)"
        )


def config_warnings(config: Config) -> list[str]:
    """What a valid file probably did not mean."""
    warnings: list[str] = []
    for i, dest in enumerate(config.audit.forward):
        if dest.type == "syslog" and dest.tls is None and not dest.host_port()[0].startswith("127."):
            warnings.append(f"audit.forward[{i}]: tls: none — the audit events cross the network unencrypted")
    if config.server.public_url.startswith("https://") and not config.mfa.encrypts:
        warnings.append(
            "mfa: no encryption_key_env or encryption_key_file: TOTP secrets are stored unencrypted in the "
            "database (anyone who reads it can make the codes); set one in production"
        )
    if config.server.public_url.startswith("https://") and config.mfa.enrolment == "open":
        warnings.append(
            "mfa.enrolment: open — whoever has a person's password and signs in before them sets up their "
            "first second factor; set enrolment: invite in production (admins issue enrolment codes)"
        )
    if config.directory is None and not config.upstream:
        warnings.append(
            "no directory: and no upstream: section: nobody can sign in (only admin tokens reach the admin API)"
        )
    return warnings


def forward_problems(config: Config, env: Mapping[str, str]) -> list[str]:
    """``audit.forward``: the webhook headers' environment variables the start would miss."""
    from broker.audit_forward.config import WebhookDestination
    from broker.audit_forward.webhook import missing_headers

    return [p for i, d in enumerate(config.audit.forward) if isinstance(d, WebhookDestination)
            for p in missing_headers(d, env, path=f"audit.forward[{i}]")]


def check_config_file(
    path: str | os.PathLike[str], *, env: dict[str, str] | None = None, database: bool = True
) -> ConfigCheck:
    """The file's own problems and warnings; then, when ``database`` and the file's database can
    be reached, what the next start's mapping sync would keep (warnings) or refuse (problems)."""
    from broker.cli.sync_preview import preview_sync

    check = ConfigCheck(source=str(Path(path)))
    try:
        check.config = load_config(path, env=env)
    except ConfigError as exc:
        check.problems.extend(exc.problems)
        return check
    check.warnings.extend(config_warnings(check.config))
    check.problems.extend(forward_problems(check.config, os.environ if env is None else env))
    check.problems.extend(notify_problems(check.config.notifications, os.environ if env is None else env))
    try:
        check.config.mfa.encryption_key(os.environ if env is None else env)
    except ValueError as exc:  # an unset variable, an unreadable file, a key of the wrong size
        check.problems.append(str(exc))
    if database:
        against_db = preview_sync(check.config)
        check.problems.extend(against_db.problems)
        check.warnings.extend(against_db.warnings)
        check.notes.extend(against_db.notes)
    return check
