"""The grants a set of directory groups gives, from a mapping store: one read, then ``resolve``.

What every issuance asks (``broker.flow.Flow.grants_for``) and what the operator tools ask
without a running broker (``broker check-directory``, ``broker preview``).
"""

from __future__ import annotations

from collections.abc import Iterable

from broker.mapping.rules import Resolution, resolve
from broker.mapping.store import MappingStore


def grants_for(store: MappingStore, groups: Iterable[str]) -> Resolution:
    """The roles ``groups`` reach, each with the mappings or rules that grant it."""
    groups = list(groups)
    return resolve(groups, store.snapshot_for(groups))
