"""`broker check-directory`: what the broker sees of one account, for operators wiring a directory.

Prints the DN, the immutable id, the account status, the groups (nested included, with their
DNs) and the role grants those groups give. With a password it signs in exactly as a user would
(and says why a refusal happened: operators may know what users are never told).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from broker.config import Config, DatabaseConfig
from broker.connectors.base import InspectConnector, PasswordConnector
from broker.connectors.registry import build_connector
from broker.domain import Channel, RoleGrant
from broker.errors import BrokerError, InvalidCredentials
from broker.mapping.model import MappingDocument


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    ok: bool = True

    def add(self, label: str, value: object = "") -> None:
        self.lines.append(f"{label:<10} {value}".rstrip())


def _grants(
    database: DatabaseConfig, groups: tuple[str, ...], mapping: MappingDocument | None = None
) -> tuple[RoleGrant, ...]:
    from broker.db.session import make_engine, migrate
    from broker.db.store import SqlMappingStore
    from broker.mapping.grants import grants_for

    engine = make_engine(database)
    try:
        store = SqlMappingStore(engine)
        if mapping is not None:
            migrate(engine)
            store.sync_config(mapping)
        return grants_for(store, groups).grants
    finally:
        engine.dispose()


def grants_or_file(config: Config, groups: tuple[str, ...]) -> tuple[tuple[RoleGrant, ...], str | None]:
    """The grants ``groups`` give, from the database; when it is not usable (not created yet,
    unreachable), from the configuration file's mapping alone, with a note saying so."""
    try:
        return _grants(config.database, groups), None
    except BrokerError as exc:
        with tempfile.TemporaryDirectory() as tmp:
            scratch = DatabaseConfig(url=f"sqlite:///{Path(tmp) / 'check.db'}")
            grants = _grants(scratch, groups, config.mapping)
        return grants, f"database: {exc.message}; grants come from the configuration file only"


_CHANNELS: tuple[Channel, ...] = ("console", "cli")


def _grant_lines(config: Config, groups: tuple[str, ...], report: Report) -> None:
    grants, note = grants_or_file(config, groups)
    if note:
        report.add("note", note)
    report.add("grants", f"({len(grants)})")
    for g in grants:
        why = ", ".join(sorted({r.describe() for r in g.reasons}))
        channels = ",".join(c for c in _CHANNELS if g.allows(c))
        report.add(
            "", f"{g.account_alias or g.account_id}/{g.role_name}  {g.role_arn}  [{channels}]  ({why})"
        )


def check_directory(
    config: Config, username: str, *, password: Callable[[], str] | None, with_grants: bool = True
) -> Report:
    """``password`` is asked for only when needed (None: lookup only, no bind)."""
    report = Report()
    if config.directory is None:
        report.add("directory", "none configured (no directory: section)")
        report.ok = False
        return report
    d = config.directory
    report.add("directory", f"{d.name} ({d.type}) {' '.join(getattr(d, 'servers', []))}".rstrip())
    connector = build_connector(d)
    try:
        if password is not None:
            if not isinstance(connector, PasswordConnector):
                report.add("bind", "this directory type has no passwords")
                report.ok = False
                return report
            result = connector.login(username, password())
            if isinstance(result, InvalidCredentials):
                report.add("bind", f"REFUSED ({result.reason}); users are told only: {result.message}")
                report.ok = False
            else:
                report.add("bind", "OK")
        else:
            report.add("bind", "skipped (--no-bind)")
        found = connector.inspect(username) if isinstance(connector, InspectConnector) else None
        if found is None:
            report.add(
                "user", f"{username!r}: not found (user_search base, filter and login_attributes decide)"
            )
            report.ok = False
            return report
        i = found.identity
        report.add("dn", found.dn or "(static directory: no DN)")
        report.add("id", i.id)
        report.add("username", i.username)
        report.add("name", i.display_name)
        report.add("email", i.email)
        for name, values in i.attributes:
            report.add("attribute", f"{name} = {', '.join(values)}")
        report.add("status", "usable" if found.usable else "NOT USABLE: " + ", ".join(found.notes))
        report.ok = report.ok and found.usable
        report.add("groups", f"({len(i.groups)})")
        for name in i.groups:
            report.add("", name)
        if found.group_dns:
            report.add("group DNs", f"({len(found.group_dns)})")
            for dn in found.group_dns:
                report.add("", dn)
        if with_grants:
            _grant_lines(config, i.groups, report)
        stats = getattr(connector, "stats", None)
        if stats is not None:
            report.add("requests", " ".join(f"{k}={v}" for k, v in stats.snapshot().items()))
        return report
    finally:
        connector.close()
