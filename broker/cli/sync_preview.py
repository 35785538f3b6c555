"""`check-config`'s look at the database: what the next start's mapping sync would keep or refuse.

Run before a deployment, it tells an operator which API objects still use a role or account the
edited file no longer declares (the start keeps them, handed over to the API), and which file
declarations the API already owns. It never creates or changes a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from broker.config import Config
from broker.errors import BrokerError, ConfigSyncFailed

CONNECT_TIMEOUT_SECONDS = 5


@dataclass
class SyncPreview:
    problems: list[str] = field(default_factory=list)
    """What would make the start fail."""
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Why the database was not looked at, when it was not."""


def preview_sync(config: Config) -> SyncPreview:
    from broker.db.session import current_revision, head_revision, make_engine
    from broker.db.store import SqlMappingStore

    out = SyncPreview()
    url = make_url(config.database.url)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:" or not Path(url.database).expanduser().exists():
            out.notes.append("the SQLite database does not exist yet: nothing in it to check against")
            return out
    else:
        url = url.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT_SECONDS)})
    db = config.database.model_copy(update={"url": url.render_as_string(hide_password=False)})
    engine = make_engine(db)
    try:
        try:
            have = current_revision(engine)
        except Exception as exc:  # noqa: BLE001 - any failure to connect is a note, not a crash
            out.notes.append(f"the database could not be reached ({type(exc).__name__}): its checks were skipped")
            return out
        if have != head_revision():
            out.notes.append(f"the database schema is at {have or 'nothing'}, not {head_revision()}: its checks were skipped")
            return out
        try:
            plan = SqlMappingStore(engine).plan_config_sync(config.mapping)
        except ConfigSyncFailed as exc:
            out.problems.extend(f"mapping (against the database): {p}" for p in exc.details or [])
            return out
        except BrokerError as exc:
            out.notes.append(f"the database could not be read ({exc.code}): its checks were skipped")
            return out
        out.warnings.extend(f"mapping (against the database): {n}" for n in plan.notices)
        return out
    finally:
        engine.dispose()
