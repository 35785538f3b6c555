"""`broker doctor` on demand (GET /api/v1/admin/doctor), each account's report reused for
``doctor.cache_seconds`` so that a page reloaded, or polled, never hammers IAM.

The reports live in the shared state (``broker.state``: in-process, or Redis so every worker
sees the same ones), under a key made of the account id and a digest of what the account should
hold (the trust plan, the broker's certificates included): a mapping or key change is checked
afresh at once, without waiting for the cached report to expire. A report saying IAM could not
be read (``access.*``: throttled, unreachable, denied) is kept ``ACCESS_RETRY_SECONDS`` at most:
soon asked again, but a page polled while IAM throttles does not add to it.
Two requests that miss at the same moment both ask IAM (at most once per account each).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence

from broker.aws.doctor import AccountReport, check_accounts
from broker.aws.doctor_report import account_json, account_report
from broker.aws.iam_access import IamAccess
from broker.aws.trust import AccountTrust, BrokerSide
from broker.state import StateStore

ACCESS_RETRY_SECONDS = 30
"""The longest a report saying IAM could not be read is reused (never more than cache_seconds)."""


class ReportCache:
    """Account reports in the shared state, each for ``seconds`` (0: none kept)."""

    def __init__(self, state: StateStore, seconds: int) -> None:
        self.state, self.seconds = state, seconds

    @staticmethod
    def key(trust: AccountTrust) -> str:
        plan = json.dumps(dataclasses.asdict(trust), sort_keys=True, default=str)
        return f"doctor:{trust.account_id}:{hashlib.sha256(plan.encode()).hexdigest()[:32]}"

    def get(self, trust: AccountTrust) -> AccountReport | None:
        if not self.seconds:
            return None
        stored = self.state.get(self.key(trust))
        return account_report(json.loads(stored)) if stored is not None else None

    def put(self, trust: AccountTrust, report: AccountReport, *, seconds: int | None = None) -> None:
        ttl = self.seconds if seconds is None else seconds
        if ttl:
            self.state.set(self.key(trust), json.dumps(account_json(report)), ttl=ttl)


class DoctorOnDemand:
    """The admin API's doctor: the broker side is the running broker's, built once."""

    def __init__(self, *, access: IamAccess, broker: BrokerSide, cache: ReportCache,
                 run_timeout: float | None = None) -> None:
        self.access, self.broker, self.cache, self.run_timeout = access, broker, cache, run_timeout

    def reports(self, trusts: Sequence[AccountTrust]) -> list[AccountReport]:
        """A report per account, in the order given: cached ones as they are, the others from IAM."""
        found: dict[str, AccountReport] = {}
        missing = []
        for trust in trusts:
            cached = self.cache.get(trust)
            if cached is None:
                missing.append(trust)
            else:
                found[trust.account_id] = cached
        for trust, report in zip(missing, check_accounts(self.access, missing, self.broker, run_timeout=self.run_timeout), strict=True):
            failed = any(check.code.startswith("access.") for check in report.checks)
            self.cache.put(trust, report, seconds=min(self.cache.seconds, ACCESS_RETRY_SECONDS) if failed else None)
            found[trust.account_id] = report
        return [found[t.account_id] for t in trusts]
