"""A person's logins in the shared state, indexed by person so that they can all be ended at once
(``broker revoke --user``): every signed-in portal session (``broker.web.sessions``), every CLI
login (a refresh-token family, ``broker.oauth.tokens``) and every device code approved but not yet
collected (``broker.oauth.device``) is written with ``StateStore.set_indexed`` under
``logins:<sha256(casefolded username)>``.

Ending a family ends its access and refresh tokens too: both are valid only while their family's
record exists. Keys expire by themselves as before; the index follows its longest-lived key.

CLI logins live in the durable store (``state.durable: database``, ``broker.db.durable_state``)
and sessions and device codes in the shared state: the same index name in each, both ended.
"""

from __future__ import annotations

from broker.oauth import secret_hash
from broker.state.base import StateStore


def login_index(username: str) -> str:
    """The index key of one person's logins (case-insensitive, as directories compare usernames)."""
    return f"logins:{secret_hash(username.casefold())}"


def end_logins(state: StateStore, username: str, *, durable: StateStore | None = None) -> int:
    """End every portal session, CLI login and approved device code of ``username``; how many there
    were. ``durable``: the store of CLI logins when it is not ``state``."""
    index = login_index(username)
    ended = state.delete_indexed(index)
    if durable is not None and durable is not state:
        ended += durable.delete_indexed(index)
    return ended
