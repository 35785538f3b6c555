"""``require_mfa`` / ``mfa_max_age`` in the mapping's history (a version per change, its diff
naming the field) and through the config sync (a file's mapping with the option)."""

from __future__ import annotations

from broker.audit import AuditContext
from broker.mapping.model import MappingDocument

ALICE = AuditContext(actor="alice")
FILE = MappingDocument.model_validate({
    "accounts": [{"id": "111122223333", "alias": "core", "roles": [{"name": "Admin"}]}],
    "mappings": [{"group": "core-admins", "account": "core", "role": "Admin", "require_mfa": True}],
})


def test_the_option_is_synced_versioned_and_diffed(store):
    store.sync_config(FILE)
    (m,) = store.list_mappings()
    assert m["require_mfa"] is True and m["mfa_max_age"] is None
    made = store.create_mapping(FILE.mappings[0].model_copy(update={"group": "ops", "require_mfa": False}), ALICE)
    before = store.list_versions(limit=1)[0]["number"]
    store.patch_mapping(int(made["id"]), {"mfa_max_age": 900}, ALICE)
    after = store.list_versions(limit=1)[0]["number"]
    (updated,) = store.diff_versions(before, after)["diff"]["mappings"]["updated"]
    assert updated["changes"]["mfa_max_age"] == {"before": None, "after": 900}
    assert next(m for m in store.export().mappings if m.group == "ops").mfa_max_age == 900
