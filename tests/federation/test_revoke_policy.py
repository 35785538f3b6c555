"""``broker.aws.revoke``: the deny-older-sessions policy of IAM User Guide
id_roles_use_revoke-sessions, for a whole role or one person, and its merging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broker.aws.revoke import INLINE_POLICY_LIMIT, Person, merge, revocation_time, size, statement
from broker.errors import RevocationTooLarge

T = datetime(2026, 12, 2, 15, 30, tzinfo=UTC)
ALICE = Person("alice", "guid-alice")
BOB = Person("bob", "guid-bob")


def _conditions(document: dict) -> list[dict]:
    return [s["Condition"] for s in document["Statement"]]


def test_the_whole_role_policy_is_the_documented_one() -> None:
    document = merge(None, T)
    assert document["Version"] == "2012-10-17"
    (only,) = document["Statement"]
    assert {k: only[k] for k in ("Effect", "Action", "Resource", "Condition")} == {
        "Effect": "Deny", "Action": "*", "Resource": "*",
        "Condition": {"DateLessThan": {"aws:TokenIssueTime": "2026-12-02T15:30:00Z"}},
    }


def test_one_person_is_matched_by_source_identity_on_both_paths() -> None:
    """SAML sessions carry it from the assertion, web identity ones from the ID token's claim: the
    immutable id, so a renamed account or another case of the username still matches."""
    document = merge(None, T, ALICE.match())
    assert _conditions(document) == [{"DateLessThan": {"aws:TokenIssueTime": "2026-12-02T15:30:00Z"},
                                      "StringEquals": {"aws:SourceIdentity": "guid-alice"}}]
    assert Person("Alice", "guid-alice").match() == ALICE.match()


def test_the_time_is_rounded_up_to_the_second() -> None:
    assert revocation_time(T + timedelta(microseconds=1)) == T + timedelta(seconds=1)
    assert revocation_time(T) == T


def test_merging_keeps_other_persons_and_replaces_the_same_persons_statement() -> None:
    first = merge(None, T, ALICE.match())
    both = merge(first, T + timedelta(minutes=1), BOB.match())
    again = merge(both, T + timedelta(minutes=2), ALICE.match())
    by_person = {tuple(c["StringEquals"].values()): c["DateLessThan"]["aws:TokenIssueTime"] for c in _conditions(again)}
    assert by_person == {("guid-alice",): "2026-12-02T15:32:00Z", ("guid-bob",): "2026-12-02T15:31:00Z"}
    older = merge(again, T, ALICE.match())  # an earlier time never weakens a statement
    assert older == again


def test_a_whole_role_statement_supersedes_the_persons_statements_it_covers() -> None:
    persons = merge(merge(None, T, ALICE.match()), T, BOB.match())
    whole = merge(persons, T + timedelta(seconds=5))
    assert _conditions(whole) == [{"DateLessThan": {"aws:TokenIssueTime": "2026-12-02T15:30:05Z"}}]
    assert merge(whole, T, ALICE.match()) == whole  # already covered
    later = merge(whole, T + timedelta(minutes=1), ALICE.match())
    assert len(later["Statement"]) == 2  # the whole-role one stays, alice's later one is added


def test_a_statement_someone_else_wrote_is_kept_as_it_is() -> None:
    foreign = {"Sid": "Manual", "Effect": "Deny", "Action": "s3:*", "Resource": "*"}
    merged = merge({"Version": "2012-10-17", "Statement": foreign}, T)
    assert merged["Statement"][-1] == foreign and len(merged["Statement"]) == 2


def test_a_policy_over_iams_limit_is_refused_with_the_way_out() -> None:
    document = None
    with pytest.raises(RevocationTooLarge) as caught:
        for n in range(200):
            document = merge(document, T, Person(f"user{n}", f"id-{n:04d}").match(), role="arn:aws:iam::1:role/A")
    assert document is not None and size(document) <= INLINE_POLICY_LIMIT
    assert caught.value.code == "revocation_too_large"
    assert "arn:aws:iam::1:role/A" in caught.value.message and "--role" in caught.value.message


def test_statement_ids_are_iam_sids() -> None:
    for s in (statement(T), statement(T, ALICE.match()), statement(T, BOB.match())):
        assert s["Sid"].isalnum()


def test_a_statement_whose_sessions_have_all_expired_is_dropped_at_the_next_merge() -> None:
    """No session outlives 12 hours: revoking again a day later leaves only the new statement."""
    old = merge(merge(None, T, ALICE.match()), T, BOB.match())
    later = T + timedelta(hours=12)
    kept = merge(old, T + timedelta(hours=11), ALICE.match())  # bob's sessions may still live: kept
    assert len(kept["Statement"]) == 2
    dropped = merge(old, later, ALICE.match())
    assert [s["Condition"]["StringEquals"] for s in dropped["Statement"]] == [{"aws:SourceIdentity": "guid-alice"}]
    assert dropped["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"] == "2026-12-03T03:30:00Z"
