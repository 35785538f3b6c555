"""`broker aws-setup`: the AWS side of the trust (IAM provider + role trust policies), per account,
generated from the mapping and the broker's own keys, as CloudFormation or Terraform.

The mapping is read from the database when it is usable (API-managed objects included), else
from the configuration file alone (a note says so). The SAML metadata is the one the broker
serves at /saml/metadata, built by ``broker.minting`` from the configured keys (the next
certificate included while rotating).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from broker.aws.setup_output import SetupFormat, account_files, stackset_files
from broker.aws.trust import AccountTrust, BrokerSide, plan
from broker.cli.existing_database import existing_store
from broker.config import Config, DatabaseConfig
from broker.errors import BrokerError
from broker.mapping.snapshot import MappingSnapshot
from broker.minting.factory import build_minting


@dataclass
class Setup:
    accounts: list[AccountTrust]
    notes: list[str] = field(default_factory=list)


def _from_file(config: Config) -> MappingSnapshot:
    from broker.db.session import make_engine, migrate
    from broker.db.store import SqlMappingStore

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(DatabaseConfig(url=f"sqlite:///{Path(tmp) / 'aws-setup.db'}"))
        try:
            migrate(engine)
            store = SqlMappingStore(engine)
            store.sync_config(config.mapping)
            return store.full_snapshot()
        finally:
            engine.dispose()


def _from_database(config: Config) -> MappingSnapshot | str:
    """The database's mapping, or why it cannot be used (it is never created or changed here)."""
    with existing_store(config) as store:
        if isinstance(store, str):
            return store
        try:
            return store.full_snapshot()
        except BrokerError as exc:
            return f"the database cannot be read ({exc.code})"


def mapping_snapshot(config: Config) -> tuple[MappingSnapshot, str | None]:
    """The whole mapping from the database; when it is not usable, from the file alone (with a note)."""
    found = _from_database(config)
    if isinstance(found, MappingSnapshot):
        return found, None
    return _from_file(config), f"{found}; the mapping comes from the configuration file only"


def broker_side(config: Config) -> BrokerSide:
    with contextlib.redirect_stdout(sys.stderr):  # start-up log lines must not mix with a template on stdout
        minting = build_minting(public_url=config.server.public_url, keys=config.keys, saml_idp=config.saml_idp,
                                oidc=config.oidc, session_tags=config.session_tags)
    return BrokerSide.of(minting)


def aws_setup(config: Config, accounts: list[str]) -> Setup:
    """Raises ``NotFound`` naming an ``--account`` the mapping does not register."""
    snapshot, note = mapping_snapshot(config)
    return Setup(plan(snapshot, broker_side(config), accounts), [note] if note else [])


def write(setup: Setup, out: Path, fmt: SetupFormat, *, stackset: bool = False) -> list[Path]:
    """Every account's files under ``out`` (``broker.aws.setup_output.account_files``), or with
    ``stackset`` one template per group of accounts (``stackset_files``)."""
    files = stackset_files(setup.accounts) if stackset else {
        name: text for trust in setup.accounts for name, text in account_files(trust, fmt).items()}
    written = []
    for name, text in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
