"""`broker review snapshot|list|show|changes|attest`: access reviews in the configured database
(``broker.db.reviews``), as text or JSON. Only a database that exists and is migrated is used
(``broker.cli.existing_database``); the directory is the configuration's (``directory:``)."""

from __future__ import annotations

import json
from collections.abc import Callable

from broker.audit import AuditContext
from broker.cli.existing_database import usable_store
from broker.config import Config
from broker.connectors.membership import Membership
from broker.connectors.registry import build_connector
from broker.errors import BadRequest
from broker.reports import review_diff
from broker.reports.access import ReportFilter, membership_of
from broker.reports.review_snapshot import csv_bytes


def _membership(config: Config) -> Membership:
    if config.directory is None:
        raise BadRequest("an access review needs a directory: section")
    directory = build_connector(config.directory)
    try:
        return membership_of(directory)
    finally:
        directory.close()


def snapshot(config: Config, flt: ReportFilter, *, title: str | None, actor: str) -> str:
    membership = _membership(config)
    with usable_store(config) as store:
        meta = store.create_review_snapshot(membership, flt, AuditContext(actor=actor), title=title)
    return (
        f"snapshot {meta['id']}: {meta['rows']} row(s), {meta['people']} people, mapping version "
        f"{meta['mapping_version']}, sha256 {meta['hash']}"
    )


def list_lines(config: Config, *, limit: int) -> list[str]:
    with usable_store(config) as store:
        items = store.list_review_snapshots(limit=limit)
    if not items:
        return ["no snapshots yet: `broker review snapshot` takes one"]
    return [
        f"{s['id']:>6}  {s['at']}  {s['actor']}  {s['rows']} row(s)  {s['attestations']} attestation(s)  "
        f"{s['hash'][:16]}  {s['title'] or ''}  {json.dumps(s['filter']) if s['filter'] else ''}".rstrip()
        for s in items
    ]


def show(config: Config, *, number: int, as_json: bool, write: Callable[[bytes], object] | None = None) -> str:
    """The snapshot's metadata and attestations; with ``write``, its CSV bytes written through it."""
    with usable_store(config) as store:
        if write is not None:
            for chunk in csv_bytes(store.review_snapshot_csv(number)):
                write(chunk)
            return ""
        meta = store.get_review_snapshot(number)
    if as_json:
        return json.dumps(meta, indent=2)
    lines = [
        f"snapshot {meta['id']}: {meta['at']} by {meta['actor']}" + (f" — {meta['title']}" if meta["title"] else ""),
        f"  filter: {json.dumps(meta['filter']) if meta['filter'] else 'none'}",
        f"  {meta['rows']} row(s), {meta['people']} people, mapping version {meta['mapping_version']}",
        f"  sha256 of its CSV: {meta['hash']}",
    ]
    for a in meta["attestations"]:
        lines.append(f"  attested {a['at']} by {a['actor']}: {a['decision'] or '-'} {a['comment']}".rstrip())
    return "\n".join(lines)


def changes(config: Config, *, number: int, against: int | None, as_json: bool) -> str:
    with usable_store(config) as store:
        store.get_review_snapshot(number)  # an unknown snapshot is said before the directory is read
        membership = _membership(config) if against is None else None
        result = store.review_changes(number, against=against, membership=membership)
    if as_json:
        return json.dumps(result, indent=2)
    counts = result["counts"]
    head = (
        f"from snapshot {number} to " + (f"snapshot {against}" if against else "now")
        + f": {counts['gained']} gained, {counts['lost']} lost, {counts['reason_changed']} with another reason"
    )
    return "\n".join([head, *review_diff.lines(result)])


def attest(config: Config, *, number: int, decision: str | None, comment: str, actor: str) -> str:
    with usable_store(config) as store:
        a = store.attest_review_snapshot(number, AuditContext(actor=actor), decision=decision, comment=comment)
    return f"attestation {a['id']} of snapshot {number} by {a['actor']} at {a['at']}: {a['decision'] or '-'}"
