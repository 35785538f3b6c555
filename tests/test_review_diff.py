"""The access review's diff (``broker.reports.review_diff``), as a pure function: gained, lost and
reason-changed grants keyed by person, account and role, each explained by the directory, the
mapping, or both; and the snapshot packing the hash is defined on."""

from __future__ import annotations

import hashlib
from typing import Any

from broker.connectors.membership import Membership, Person
from broker.domain import Identity
from broker.mapping import versions
from broker.reports.access import ReportFilter, csv_lines
from broker.reports.review_diff import Side, changes, lines
from broker.reports.review_snapshot import (
    csv_bytes,
    filter_dict,
    filter_of,
    pack_people,
    pack_rows,
    people_of,
    unpack_people,
    unpack_rows,
)

PROD = "111122223333"


def row(user: str, role: str, *, kind: str = "mapping", ref: str = "1", group: str = "ops",
        path: list[str] | None = None, account: str = PROD, via: str = "") -> dict[str, Any]:
    return {
        "account_id": account, "account_alias": "prod", "environment": "", "role_name": role,
        "role_arn": f"arn:aws:iam::{account}:role/{role}", "username": user, "user_id": f"id-{user}",
        "display_name": user, "email": "", "group": group, "path": path or [group], "kind": kind, "ref": ref,
        "via": via, "console": True, "cli": True, "session_cap": 3600, "role_session_name": user,
        "source_identity": user, "mfa": "", "access": "standing", "grant_ends_at": "",
    }


def people(**groups: list[str]) -> dict[str, dict[str, Any]]:
    return {f"id-{u}": {"username": u, "groups": gs} for u, gs in groups.items()}


def state(*mappings: tuple[str, str], rules: tuple[str, ...] = (), roles: tuple[str, ...] = ("Admin", "ReadOnly")) -> versions.State:
    s = versions.empty()
    s["accounts"][PROD] = {"id": PROD, "alias": "prod", "source": "api"}
    for r in roles:
        s["roles"][versions.role_key(PROD, r)] = {"name": r, "account": PROD, "source": "api"}
    for group, role in mappings:
        s["mappings"][versions.mapping_key(group, PROD, role)] = {
            "group": group, "account": PROD, "role": role, "source": "api"}
    for name in rules:
        s["rules"][name] = {"name": name, "pattern": "^AWS-(?P<account>\\d{12})-(?P<role>\\w+)$", "source": "api"}
    return s


def by_user(result: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["username"], c["role_name"]): c for c in result["changes"]}


def test_nothing_changed_nothing_listed():
    side = Side([row("alice", "Admin")], people(alice=["ops"]), state(("ops", "Admin")))
    assert changes(side, side) == {"counts": {"gained": 0, "lost": 0, "reason_changed": 0}, "changes": []}


def test_across_a_mapping_change_and_a_directory_change_each_is_explained_and_both_at_once():
    """alice loses Admin by leaving ops (directory); bob loses ReadOnly by the dev mapping's
    deletion (mapping); carol loses Admin through qa, which she left and whose mapping is gone (both)."""
    old = Side(
        [row("alice", "Admin"), row("bob", "ReadOnly", ref="2", group="dev"),
         row("carol", "Admin", ref="3", group="qa")],
        people(alice=["ops"], bob=["dev"], carol=["qa"]),
        state(("ops", "Admin"), ("dev", "ReadOnly"), ("qa", "Admin")),
    )
    new = Side([], people(alice=["staff"], bob=["dev"], carol=[]), state(("ops", "Admin")))
    touched = {("mappings", versions.mapping_key("dev", PROD, "ReadOnly")): [
        {"number": 7, "actor": "admin:rita", "at": "2026-12-03T10:00:00.000000Z", "via": "api", "op": "deleted"}]}
    result = changes(old, new, touched=touched)
    got = by_user(result)
    assert result["counts"] == {"gained": 0, "lost": 3, "reason_changed": 0}
    alice, bob, carol = got[("alice", "Admin")], got[("bob", "ReadOnly")], got[("carol", "Admin")]
    assert alice["change"] == "lost" and alice["why"] == ["directory"]
    assert alice["explanations"] == [{"cause": "directory", "event": "left_group", "groups": ["ops"],
                                      "text": "alice left group ops"}]
    assert bob["why"] == ["mapping"]
    [deleted] = bob["explanations"]
    assert (deleted["event"], deleted["kind"], deleted["object"]) == (
        "deleted", "mappings", 'mapping "dev" -> 111122223333/ReadOnly')
    assert deleted["versions"][0]["number"] == 7 and deleted["text"].endswith("deleted in version 7 by admin:rita")
    assert carol["why"] == ["directory", "mapping"]
    assert [e["event"] for e in carol["explanations"]] == ["left_group", "deleted"]
    assert carol["before"] == [{"kind": "mapping", "ref": "3", "group": "qa", "via": "", "path": ["qa"]}]
    assert carol["after"] == []
    text = lines(result)
    assert "- alice  prod/Admin  (directory)" in text and "    mapping: " + deleted["text"] in text


def test_gains_a_new_account_a_joined_nested_group_and_a_new_rule():
    old = Side([], people(bob=["dev"]), state())
    new = Side(
        [row("dan", "Admin"), row("bob", "Admin", group="engineering", path=["dev", "engineering"]),
         row("bob", "ReadOnly", kind="rule", ref="adfs", group=f"AWS-{PROD}-ReadOnly")],
        people(dan=["ops"], bob=["dev", "engineering", f"AWS-{PROD}-ReadOnly"]),
        state(("ops", "Admin"), ("engineering", "Admin"), rules=("adfs",)),
    )
    got = by_user(changes(old, new))
    dan = got[("dan", "Admin")]
    assert dan["change"] == "gained" and dan["why"] == ["directory", "mapping"]
    assert [e["event"] for e in dan["explanations"]] == ["account_added", "created"]
    bob = got[("bob", "Admin")]
    assert [(e["event"], e.get("groups")) for e in bob["explanations"]] == [
        ("joined_group", ["engineering"]), ("created", None)]  # dev he had; engineering, through dev, is new
    rule = got[("bob", "ReadOnly")]
    assert {(e["event"], e.get("kind")) for e in rule["explanations"]} == {
        ("joined_group", None), ("created", "rules")}


def test_an_account_no_longer_usable_and_a_rule_pattern_changed():
    old = Side([row("erin", "Admin"), row("bob", "ReadOnly", kind="rule", ref="adfs", group=f"AWS-{PROD}-ReadOnly")],
               people(erin=["ops"], bob=[f"AWS-{PROD}-ReadOnly"]), state(("ops", "Admin"), rules=("adfs",)))
    changed = state(("ops", "Admin"), rules=("adfs",))
    changed["rules"]["adfs"] = changed["rules"]["adfs"] | {"pattern": "^aws_(?P<role>\\w+)$"}
    new = Side([], people(bob=[f"AWS-{PROD}-ReadOnly"]), changed)
    got = by_user(changes(old, new))
    assert got[("erin", "Admin")]["explanations"][0]["event"] == "account_removed"
    [updated] = got[("bob", "ReadOnly")]["explanations"]
    assert (updated["event"], updated["fields"]) == ("updated", ["pattern"])


def test_a_reason_that_changes_while_the_role_stays():
    both = state(("ops", "Admin"), ("sre", "Admin"))
    old = Side([row("alice", "Admin"), row("alice", "Admin", ref="2", group="sre")], people(alice=["ops", "sre"]), both)
    new = Side([row("alice", "Admin", ref="2", group="sre")], people(alice=["sre"]), both)
    result = changes(old, new)
    [c] = result["changes"]
    assert c["change"] == "reason_changed" and result["counts"]["reason_changed"] == 1
    assert c["why"] == ["directory"] and c["explanations"][0]["groups"] == ["ops"]
    assert [r["group"] for r in c["before"]] == ["ops", "sre"] and [r["group"] for r in c["after"]] == ["sre"]


def test_a_mapping_deleted_and_made_again_is_replaced_and_a_description_is_no_reason():
    key = versions.mapping_key("ops", PROD, "Admin")
    old_state, new_state = state(("ops", "Admin")), state(("ops", "Admin"))
    new_state["mappings"][key] = new_state["mappings"][key] | {"description": "on call"}
    touched = {("mappings", key): [{"number": 4, "actor": "a", "at": "t", "via": "api", "op": "deleted"},
                                   {"number": 5, "actor": "b", "at": "t", "via": "api", "op": "created"}]}
    old = Side([row("alice", "Admin", ref="1")], people(alice=["ops"]), old_state)
    new = Side([row("alice", "Admin", ref="2")], people(alice=["ops"]), new_state)
    [c] = changes(old, new, touched=touched)["changes"]
    assert c["change"] == "reason_changed" and {e["event"] for e in c["explanations"]} == {"replaced"}
    assert c["explanations"][0]["text"].endswith("in version 5 by b")
    [c] = changes(old, new)["changes"]  # without the history: nothing to say but that it is unexplained
    assert c["why"] == ["other"] and c["explanations"][0]["event"] == "unexplained"


def test_org_targeted_mappings_are_found_by_group_and_role():
    old_state, new_state = state(), state()
    old_state["org_mappings"]["ou:ou-ab12-cdef3456/admin/ops"] = {"group": "ops", "role": "Admin", "accounts": {"ou": "ou-ab12-cdef3456"},
                                                      "source": "api"}
    old = Side([row("alice", "Admin", ref="org-4", via="OU ou-ab12-cdef3456")], people(alice=["ops"]), old_state)
    new = Side([], people(alice=["ops"]), new_state)
    [c] = changes(old, new)["changes"]
    assert c["why"] == ["mapping"] and c["explanations"][0]["kind"] == "org_mappings"
    assert c["before"][0]["via"] == "OU ou-ab12-cdef3456"


def test_packing_hashes_the_csv_and_gives_back_the_rows():
    rows = [row("alice", "Admin"), row("bob", "=cmd", group="a,b")]
    packed = pack_rows(iter(rows))
    csv = b"".join(line.encode() for line in csv_lines(rows))
    assert packed.sha256 == hashlib.sha256(csv).hexdigest() and packed.csv_size == len(csv) and packed.count == 2
    assert b"".join(csv_bytes(packed.csv)) == csv
    assert list(unpack_rows(packed.rows)) == rows
    empty = pack_rows(iter(()))
    assert empty.count == 0 and list(unpack_rows(empty.rows)) == [] and b"".join(csv_bytes(empty.csv)).endswith(b"\r\n")


def test_people_and_filters_round_trip():
    membership = Membership(
        names={"ops": "ops", "eng": "eng"}, parents={"ops": ["eng"]}, max_depth=3,
        people=[Person(Identity(id="u1", username="alice"), ("ops",)), Person(Identity(id="u2", username="bob"), ())],
    )
    got = people_of(membership)
    assert got == {"u1": {"username": "alice", "groups": ["eng", "ops"]}, "u2": {"username": "bob", "groups": []}}
    assert unpack_people(pack_people(got)) == got
    flt = ReportFilter(account="prod", user="alice")
    assert filter_dict(flt) == {"account": "prod", "user": "alice"} and filter_of(filter_dict(flt)) == flt
    assert filter_of(None) == ReportFilter()


def test_a_loss_is_never_explained_by_what_was_created_nor_a_gain_by_what_was_deleted():
    """ops' OU mapping moved from one OU to another: alice (her account under the first) loses
    Admin by the deletion alone; bob (under the second) gains it by the creation alone."""
    first, second = "ou:ou-ab12-aaaaaaaa/admin/ops", "ou:ou-ab12-bbbbbbbb/admin/ops"
    entry = {"group": "ops", "role": "Admin", "source": "api"}
    old_state, new_state = state(), state()
    old_state["org_mappings"][first] = entry | {"accounts": {"ou": "ou-ab12-aaaaaaaa"}}
    new_state["org_mappings"][second] = entry | {"accounts": {"ou": "ou-ab12-bbbbbbbb"}}
    old = Side([row("alice", "Admin", ref="org-1", via="OU ou-ab12-aaaaaaaa")], people(alice=["ops"], bob=["ops"]), old_state)
    new = Side([row("bob", "Admin", ref="org-2", via="OU ou-ab12-bbbbbbbb")], people(alice=["ops"], bob=["ops"]), new_state)
    got = by_user(changes(old, new))
    assert [(e["event"], e["key"]) for e in got[("alice", "Admin")]["explanations"]] == [("deleted", first)]
    assert [(e["event"], e["key"]) for e in got[("bob", "Admin")]["explanations"]] == [("created", second)]
