"""What AWS Organizations says about the accounts: every account with its OU path and tags
(``organizations:`` section; read-only: ListRoots, ListOrganizationalUnitsForParent,
ListAccountsForParent, ListTagsForResource).

Discovery walks the organization from its root, breadth first, through the management account
(or a delegated administrator) with a read-only role assumed there (``broker.aws.iam_access``),
so the broker itself holds no AWS keys. Each call is bounded by the access config's deadline
hooks, and the whole walk by ``discovery_timeout``: an organization too large or too slow for it
ends the walk with an ``AccessProblem`` instead of a partial inventory (a partial inventory
would drop accounts from OU-targeted mappings).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from broker.aws.config import OrganizationsConfig
from broker.aws.iam_access import AccessProblem, IamAccess, access_problem


@dataclass(frozen=True, slots=True)
class OrgAccount:
    id: str
    name: str
    email: str
    status: str
    """ACTIVE, SUSPENDED or PENDING_CLOSURE (Organizations' Account.Status)."""
    ou_path: tuple[str, ...]
    """The OU ids from the root's first child down to the account's parent (empty: under the root)."""
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.status == "ACTIVE"


@dataclass(frozen=True, slots=True)
class OrgInventory:
    root_id: str
    accounts: tuple[OrgAccount, ...]
    ou_names: Mapping[str, str]
    """OU id -> name."""

    def in_ou(self, ou_id: str) -> list[OrgAccount]:
        """The accounts under an OU, nested OUs included (the root id: every account)."""
        if ou_id == self.root_id:
            return list(self.accounts)
        return [a for a in self.accounts if ou_id in a.ou_path]

    def tagged(self, key: str, value: str) -> list[OrgAccount]:
        return [a for a in self.accounts if a.tags.get(key) == value]


class _Budget:
    """The whole walk's time: each call first checks that the walk may still go on."""

    def __init__(self, seconds: float, account_id: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.account_id, self.clock = account_id, clock
        self.ends = clock() + seconds
        self.seconds = seconds

    def check(self, doing: str) -> None:
        if self.clock() > self.ends:
            raise AccessProblem("access.unreachable", self.account_id,
                                f"discovery took longer than {self.seconds:g} s (stopped before {doing})",
                                "raise organizations.discovery_timeout, or check the network path to AWS")


def _pages(client: Any, operation: str, key: str, budget: _Budget, **params: Any) -> Iterator[dict[str, Any]]:
    paginator = client.get_paginator(operation)
    for page in paginator.paginate(**params):
        yield from page[key]
        budget.check(operation)


def discover(config: OrganizationsConfig, access: IamAccess | None = None) -> OrgInventory:
    """The organization as the management account sees it now; raises ``AccessProblem``."""
    account = config.management_account
    access = access or IamAccess(config, session_name="broker-discovery")
    budget = _Budget(config.discovery_timeout, account)
    try:
        client = access.client(account, config.partition, "organizations")
        return _walk(client, budget)
    except AccessProblem as problem:
        raise _for_discovery(problem) from None
    except (ClientError, BotoCoreError) as exc:
        found = access_problem(exc, account, "reading AWS Organizations")
        if found is not None:
            raise _for_discovery(found) from exc
        code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else type(exc).__name__
        raise AccessProblem("access.failed", account, f"reading AWS Organizations failed ({code})",
                            "give organizations.management_account the management (or a delegated "
                            "administrator) account's id") from exc


_DISCOVERY_FIXES = {
    "access.denied": "give the discovery role organizations:ListRoots, ListOrganizationalUnitsForParent, "
                     "ListAccountsForParent and ListTagsForResource (read-only)",
    "access.assume_failed": "create organizations.assume_role in the management account, trusting the identity "
                            "discovery runs as, or fix assume_role",
    "access.wrong_account": "set organizations.assume_role, or run with credentials of the management account",
}


def _for_discovery(problem: AccessProblem) -> AccessProblem:
    """The problem with the fix that applies to discovery (``iam_access`` words its fixes for IAM reads)."""
    problem.fix = _DISCOVERY_FIXES.get(problem.code, problem.fix)
    return problem


def _walk(client: Any, budget: _Budget) -> OrgInventory:
    roots = list(_pages(client, "list_roots", "Roots", budget))
    if not roots:
        raise AccessProblem("access.failed", budget.account_id, "the organization has no root",
                            "check organizations.management_account")
    root_id = roots[0]["Id"]
    ou_names: dict[str, str] = {}
    found: list[tuple[dict[str, Any], tuple[str, ...]]] = []
    parents: list[tuple[str, tuple[str, ...]]] = [(root_id, ())]
    while parents:
        parent, path = parents.pop(0)
        for acc in _pages(client, "list_accounts_for_parent", "Accounts", budget, ParentId=parent):
            found.append((acc, path))
        for ou in _pages(client, "list_organizational_units_for_parent", "OrganizationalUnits", budget,
                         ParentId=parent):
            ou_names[ou["Id"]] = ou.get("Name", "")
            parents.append((ou["Id"], (*path, ou["Id"])))
    accounts = []
    for acc, path in found:
        tags = {t["Key"]: t["Value"] for t in _pages(client, "list_tags_for_resource", "Tags", budget,
                                                      ResourceId=acc["Id"])}
        accounts.append(OrgAccount(id=acc["Id"], name=acc.get("Name", ""), email=acc.get("Email", ""),
                                   status=acc.get("Status", ""), ou_path=path, tags=tags))
    accounts.sort(key=lambda a: a.id)
    return OrgInventory(root_id=root_id, accounts=tuple(accounts), ou_names=ou_names)
