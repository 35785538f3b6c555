"""`check-config`'s look at the database: what the next start's mapping sync would keep or refuse.

Run before a deployment, it tells an operator which API objects still use a role or account the
edited file no longer declares (the start keeps them, handed over to the API), and which file
declarations the API already owns. It never creates or changes a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from broker.cli.existing_database import existing_store
from broker.config import Config
from broker.errors import BrokerError, ConfigSyncFailed


@dataclass
class SyncPreview:
    problems: list[str] = field(default_factory=list)
    """What would make the start fail."""
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Why the database was not looked at, when it was not."""


def preview_sync(config: Config) -> SyncPreview:
    out = SyncPreview()
    with existing_store(config) as store:
        if isinstance(store, str):
            out.notes.append(f"{store}: its checks were skipped")
            return out
        try:
            plan = store.plan_config_sync(config.mapping)
        except ConfigSyncFailed as exc:
            out.problems.extend(f"mapping (against the database): {p}" for p in exc.details or [])
            return out
        except BrokerError as exc:
            out.notes.append(f"the database could not be read ({exc.code}): its checks were skipped")
            return out
    out.warnings.extend(f"mapping (against the database): {n}" for n in plan.notices)
    return out
