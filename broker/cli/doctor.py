"""`broker doctor`: each mapped account checked through read-only IAM calls against the trust
``broker aws-setup`` generates (the same mapping snapshot and broker side), one report per account.

Credentials: ``doctor:`` (``broker.aws.iam_access``): an audit role assumed in each account, or the
environment's credentials for a single account. The checks are ``broker.aws.doctor``'s; the table
and the JSON ``broker.aws.doctor_report``'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from broker.aws.doctor import AccountReport, check_accounts
from broker.aws.iam_access import IamAccess
from broker.aws.trust import plan
from broker.cli.aws_setup import broker_side, mapping_snapshot
from broker.config import Config


@dataclass
class Diagnosis:
    reports: list[AccountReport]
    notes: list[str] = field(default_factory=list)


def doctor(config: Config, accounts: list[str]) -> Diagnosis:
    """Raises ``NotFound`` naming an ``--account`` the mapping does not register (before any AWS call)."""
    snapshot, note = mapping_snapshot(config)
    broker = broker_side(config)
    trusts = plan(snapshot, broker, accounts)
    notes = [note] if note else []
    if broker.ephemeral_key:
        notes.append("no keys: section: the broker's signing key is ephemeral, so no SAML provider can carry it; "
                     "configure the key files the running broker uses")
    access = IamAccess(config.doctor, session_name="broker-doctor")
    return Diagnosis(check_accounts(access, trusts, broker, run_timeout=config.doctor.run_timeout), notes)
