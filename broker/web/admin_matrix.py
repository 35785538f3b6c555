"""The accounts × groups matrix of the admin home page, from the whole mapping (a snapshot).

Rows are registered accounts (filtered by environment, in pages); columns are the groups the
mappings name (plain and OU/tag-targeted), filtered by a group name, at most ``MAX_COLUMNS``;
a group the filter names exactly that no mapping names is a column too, so what a naming rule
gives it shows. A cell is what that one group gives in that account: each role with the mapping
rows or naming rules that give it (``broker.mapping.rules.resolve``, the one implementation
issuance uses), each a link to its edit page.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

from broker.domain import GrantReason
from broker.groups import normalize
from broker.mapping.rules import resolve
from broker.mapping.snapshot import AccountRecord, MappingSnapshot

ROWS_PER_PAGE = 50
MAX_COLUMNS = 25


def reason_href(kind: str, ref: str) -> str:
    """The page of the mapping row (``12``, ``org-3``) or naming rule behind a grant's reason."""
    if kind == "rule":
        return "/admin/rules/" + quote(ref, safe="")
    return "/admin/mappings/" + quote(ref, safe="")


def reason_label(reason: GrantReason) -> str:
    what = f"rule {reason.ref}" if reason.kind == "rule" else f"mapping {reason.ref}"
    return what + (f" via {reason.via}" if reason.via else "")


@dataclass(frozen=True)
class CellRole:
    role: str
    reasons: tuple[GrantReason, ...]


@dataclass(frozen=True)
class Matrix:
    accounts: list[AccountRecord]
    groups: list[str]
    cells: dict[tuple[str, str], list[CellRole]]
    environments: list[str]
    total_accounts: int
    total_groups: int
    page: int
    pages: int
    environment: str
    group: str

    def cell(self, account_id: str, group: str) -> list[CellRole]:
        return self.cells.get((account_id, group), [])

    def page_href(self, number: int) -> str:
        params = {k: v for k, v in (("environment", self.environment), ("group", self.group)) if v}
        if number > 1:
            params["page"] = str(number)
        return "/admin" + (f"?{urlencode(params)}" if params else "")


def mapped_groups(snapshot: MappingSnapshot) -> list[str]:
    """Every group a mapping names (display names, once each by match key), sorted."""
    names: dict[str, str] = {}
    for records in snapshot.mappings_by_group.values():
        for m in records:
            names.setdefault(m.group_key, m.group)
    for org_records in snapshot.org_mappings_by_group.values():
        for om in org_records:
            names.setdefault(om.group_key, om.group)
    return sorted(names.values(), key=str.casefold)


def build(snapshot: MappingSnapshot, *, environment: str = "", group: str = "", page: int = 1) -> Matrix:
    environment, group = environment.strip(), group.strip()
    accounts = sorted(snapshot.accounts.values(), key=lambda a: ((a.alias or a.id).casefold(), a.id))
    environments = sorted({a.environment for a in accounts if a.environment}, key=str.casefold)
    if environment:
        accounts = [a for a in accounts if (a.environment or "").casefold() == environment.casefold()]
    groups = mapped_groups(snapshot)
    if group:
        wanted = group.casefold()
        groups = [g for g in groups if wanted in g.casefold()]
        if normalize(group)[1] not in {normalize(g)[1] for g in groups}:
            groups.insert(0, group)  # what the naming rules give a group no mapping names
    pages = max(1, -(-len(accounts) // ROWS_PER_PAGE))
    page = min(max(page, 1), pages)
    shown = accounts[(page - 1) * ROWS_PER_PAGE: page * ROWS_PER_PAGE]
    ids = {a.id for a in shown}
    columns = groups[:MAX_COLUMNS]
    cells: dict[tuple[str, str], list[CellRole]] = {}
    for name in columns:
        for grant in resolve([name], snapshot).grants:
            if grant.account_id in ids:
                cells.setdefault((grant.account_id, name), []).append(CellRole(grant.role_name, grant.reasons))
    return Matrix(shown, columns, cells, environments, len(accounts), len(groups), page, pages, environment, group)
