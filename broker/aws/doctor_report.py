"""`broker doctor`'s reports as a person reads them (a table) and as a pipeline reads them (JSON).

The JSON field names are stable: ``accounts[]{account, alias, severity, checked_at, checks[]{severity,
code, subject, reason, fix}}`` and ``summary{accounts, ok, warning, error, severity}`` (counts of
checks; ``severity``: the worst of all). The admin API answers with the same document and keeps
each account's part in its cache (``account_json`` / ``account_report``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from broker.aws.doctor import AccountReport, Check, worst

MARKS = {"ok": "✔", "warning": "⚠", "error": "✘"}


def account_json(report: AccountReport) -> dict[str, Any]:
    return {"account": report.account_id, "alias": report.alias, "severity": report.severity,
            "checked_at": report.checked_at.isoformat().replace("+00:00", "Z"),
            "checks": [{"severity": c.severity, "code": c.code, "subject": c.subject, "reason": c.reason, "fix": c.fix}
                       for c in report.checks]}


def account_report(data: dict[str, Any]) -> AccountReport:
    """``account_json``'s inverse."""
    checks = tuple(Check(c["subject"], c["severity"], c["code"], c["reason"], c["fix"]) for c in data["checks"])
    return AccountReport(data["account"], data["alias"], checks, datetime.fromisoformat(data["checked_at"]))


def as_json(reports: Sequence[AccountReport]) -> dict[str, Any]:
    counts = Counter(check.severity for report in reports for check in report.checks)
    return {
        "accounts": [account_json(r) for r in reports],
        "summary": {"accounts": len(reports), "ok": counts["ok"], "warning": counts["warning"],
                    "error": counts["error"], "severity": worst(r.severity for r in reports)},
    }


def table(reports: Sequence[AccountReport]) -> str:
    """Per account a heading with its worst mark, then one line per check (and its fix when it has one)."""
    lines = []
    for report in reports:
        label = f"{report.alias} ({report.account_id})" if report.alias else report.account_id
        lines.append(f"{MARKS[report.severity]} {label}")
        width = max(len(check.subject) for check in report.checks)
        for check in report.checks:
            lines.append(f"  {MARKS[check.severity]} {check.subject:<{width}}  {check.reason} [{check.code}]")
            if check.fix:
                lines.append(f"    {'':<{width}}  fix: {check.fix}")
    summary = as_json(reports)["summary"]
    lines.append(f"{summary['accounts']} account(s): {summary['error']} error(s), {summary['warning']} warning(s), "
                 f"{summary['ok']} ok")
    return "\n".join(lines) + "\n"
