""""Did you mean": for an account or role a person asked for and does not have, the closest of
their own grants (difflib). Nothing outside the person's grants is ever named, so the hint tells
them no more than `awsbroker roles` would."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from broker.domain import RoleGrant

MAX_LISTED = 10


CUTOFF, NEAR_BEST = 0.6, 0.05


def _close(word: str, candidates: Sequence[str]) -> list[str]:
    """The candidates as close to ``word`` as the closest (case-insensitive), at most 3."""
    by_lower = {c.lower(): c for c in candidates}
    matcher = difflib.SequenceMatcher(b=word.lower())
    scored = []
    for lower, original in by_lower.items():
        matcher.set_seq1(lower)
        score = matcher.ratio()
        if score >= CUTOFF:
            scored.append((score, original))
    scored.sort(key=lambda x: -x[0])
    return [name for score, name in scored[:3] if score >= scored[0][0] - NEAR_BEST]


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def not_granted_hint(grants: Sequence[RoleGrant], *, account: str, role: str) -> tuple[str, list[dict[str, Any]]]:
    """(a sentence for the error message, details entries ``{"field", "code": "did_you_mean", "message"}``
    one per suggestion); an empty sentence when the person has no grant at all."""
    if not grants:
        return "", []
    names = list(dict.fromkeys(g.account_alias or g.account_id for g in grants))
    wanted = account.lower()
    mine = [g for g in grants if g.account_id == account or (g.account_alias or "").lower() == wanted]
    if not mine:
        ids = {g.account_id: g.account_alias or g.account_id for g in grants}
        close = list(dict.fromkeys(ids.get(m, m) for m in _close(account, [*names, *ids])))
        details = [{"field": "account", "code": "did_you_mean", "message": c} for c in close]
        if close:
            return f"did you mean account {' or '.join(close)}?", details
        return f"your accounts: {_listed(names)}", details
    label = mine[0].account_alias or mine[0].account_id
    roles = list(dict.fromkeys(g.role_name for g in mine))
    close = _close(role, roles)
    details = [{"field": "role", "code": "did_you_mean", "message": c} for c in close]
    if close:
        return f"did you mean role {' or '.join(close)} in {label}?", details
    return f"your roles in {label}: {_listed(roles)}", details
