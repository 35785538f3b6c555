"""`broker report access`: the access report (``broker.reports.access``) on standard output."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from broker.config import Config, DatabaseConfig
from broker.connectors.registry import build_connector
from broker.errors import BadRequest, BrokerError
from broker.mapping.snapshot import MappingSnapshot
from broker.reports.access import ReportFilter, batched, csv_lines, json_chunks, membership_of, rows


def _snapshot(database: DatabaseConfig, config: Config | None = None) -> MappingSnapshot:
    from broker.db.session import make_engine, migrate
    from broker.db.store import SqlMappingStore

    engine = make_engine(database)
    try:
        store = SqlMappingStore(engine)
        if config is not None:
            migrate(engine)
            store.sync_config(config.mapping)
        return store.full_snapshot()
    finally:
        engine.dispose()


def mapping_snapshot(config: Config) -> tuple[MappingSnapshot, str | None]:
    """The whole mapping from the database; when it cannot be used, the configuration file's
    mapping alone, with a note saying so (as ``broker check-directory`` does)."""
    try:
        return _snapshot(config.database), None
    except BrokerError as exc:
        with tempfile.TemporaryDirectory() as tmp:
            scratch = DatabaseConfig(url=f"sqlite:///{Path(tmp) / 'report.db'}")
            return _snapshot(
                scratch, config
            ), f"database: {exc.message}; the mapping comes from the configuration file only"


def access_report(
    config: Config, flt: ReportFilter, *, format: Literal["csv", "json"], write: Callable[[str], object]
) -> str | None:
    """Write the report through ``write`` (streamed); returns a note for standard error, if any."""
    if config.directory is None:
        raise BadRequest("the access report needs a directory: section")
    snapshot, note = mapping_snapshot(config)
    directory = build_connector(config.directory)
    try:
        membership = membership_of(directory)
        report = rows(membership, snapshot, flt)
        for chunk in batched(csv_lines(report) if format == "csv" else json_chunks(report)):
            write(chunk)
    finally:
        directory.close()
    return note
