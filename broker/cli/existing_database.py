"""The configured database as the operator commands look at it (`check-config`, `aws-setup`):
only when it exists, answers within ``CONNECT_TIMEOUT_SECONDS`` and is migrated — it is never
created or changed here. When it is not usable, the reason, for a note."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

from broker.config import Config
from broker.db import outbox
from broker.db.session import current_revision, head_revision, make_engine
from broker.db.store import SqlMappingStore
from broker.errors import StorageUnavailable

CONNECT_TIMEOUT_SECONDS = 5


@contextmanager
def existing_store(config: Config) -> Iterator[SqlMappingStore | str]:
    """The store of the configured database, or why it cannot be looked at (``does not exist
    yet``, ``could not be reached (...)``, ``schema is at ...``); its connections are closed after."""
    url = make_url(config.database.url)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:" or not Path(url.database).expanduser().exists():
            yield "the SQLite database does not exist yet"
            return
    else:
        url = url.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT_SECONDS)})
    engine = make_engine(config.database.model_copy(update={"url": url.render_as_string(hide_password=False)}))
    try:
        try:
            have = current_revision(engine)
        except Exception as exc:  # noqa: BLE001 - any failure to connect is a reason, not a crash
            yield f"the database could not be reached ({type(exc).__name__})"
            return
        if have != head_revision():
            yield f"the database schema is at {have or 'nothing'}, not {head_revision()} (run `broker migrate`)"
            return
        # its audit events (revoke, org discover, restore) are forwarded like the server's
        yield SqlMappingStore(outbox.with_destinations(engine, [d.key for d in config.audit.forward]))
    finally:
        engine.dispose()


@contextmanager
def usable_store(config: Config) -> Iterator[SqlMappingStore]:
    """``existing_store`` for the commands that need it (audit, history, review): the reason it
    cannot be used is a ``StorageUnavailable`` (``storage_unavailable``)."""
    with existing_store(config) as store:
        if isinstance(store, str):
            raise StorageUnavailable(store)
        yield store
