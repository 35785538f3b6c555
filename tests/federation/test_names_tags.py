"""RoleSessionName / SourceIdentity sanitising and session tag limits (AWS.md, SECURITY.md)."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from broker.domain import Identity
from broker.errors import SessionTagInvalid
from broker.minting.config import SessionTagsConfig
from broker.minting.names import role_session_name, source_identity
from broker.minting.tags import SessionTags, TagPolicy

AWS_NAME = re.compile(r"^[A-Za-z0-9_+=,.@-]{2,64}$")


@pytest.mark.parametrize("value", ["alice", "alice@example.com", "a.b-c_d+e=f,g", "x" * 64, "ab"])
def test_names_that_already_fit_are_kept(value: str) -> None:
    assert role_session_name(value) == value
    assert source_identity(value) == value


@pytest.mark.parametrize(
    "value",
    ["josé", "DOMAIN\\bob", "a", "", "x" * 65, "Bob Smith", "<script>alert(1)</script>", "alice\x00", "aws:admin",
     "AWS:evil", "日本語", "a/b:c", "o'brien", "-" * 80],
)
def test_odd_values_are_made_to_fit_deterministically(value: str) -> None:
    name, sid = role_session_name(value), source_identity(value)
    assert AWS_NAME.match(name) and AWS_NAME.match(sid)
    assert not sid.lower().startswith("aws:")
    assert role_session_name(value) == name and source_identity(value) == sid  # same input, same output


def test_sanitising_keeps_different_people_apart_and_stays_readable() -> None:
    assert role_session_name("josé") != role_session_name("jose")
    assert role_session_name("a b") != role_session_name("a-b")
    assert role_session_name("josé").startswith("jose.")
    assert role_session_name("DOMAIN\\bob").startswith("DOMAIN-bob.")
    assert source_identity("aws:admin").startswith("aws-admin.")


def _person(**attrs: tuple[str, ...]) -> Identity:
    return Identity(id="id-1", username="alice", attributes=tuple(attrs.items()))


def _policy(*tags: dict[str, object]) -> TagPolicy:
    return TagPolicy(SessionTagsConfig.model_validate({"tags": list(tags)}))


def test_tags_come_from_the_configured_attributes_only() -> None:
    policy = _policy({"key": "Department", "attribute": "department", "transitive": True},
                     {"key": "Team", "attribute": "team"}, {"key": "Missing", "attribute": "nothere"})
    tags = policy.tags_for(_person(department=("Platform",), team=("b", "a", "b"), title=("CEO",)))
    assert tags.tags == (("Department", "Platform"), ("Team", "a:b"))  # several values: sorted, joined
    assert tags.transitive == ("Department",)
    assert tags.claim() == {"principal_tags": {"Department": ["Platform"], "Team": ["a:b"]},
                            "transitive_tag_keys": ["Department"]}


def test_a_value_aws_would_refuse_is_refused_with_the_attribute_named() -> None:
    policy = _policy({"key": "Team", "attribute": "team"})
    with pytest.raises(SessionTagInvalid, match="'team'"):
        policy.tags_for(_person(team=("x" * 257,)))
    with pytest.raises(SessionTagInvalid, match="'team'"):
        policy.tags_for(_person(team=("a<b>",)))
    assert policy.tags_for(_person(team=("x" * 256,))).tags == (("Team", "x" * 256),)
    assert policy.tags_for(_person(team=("Ünïcode team 1",))).tags == (("Team", "Ünïcode team 1"),)


def test_session_tag_limits() -> None:
    SessionTags(tuple((f"k{i}", "v") for i in range(50)))
    with pytest.raises(SessionTagInvalid, match="at most 50"):
        SessionTags(tuple((f"k{i}", "v") for i in range(51)))
    SessionTags(((("k" * 128), "v"),))
    with pytest.raises(SessionTagInvalid):
        SessionTags(((("k" * 129), "v"),))
    with pytest.raises(SessionTagInvalid, match="twice"):
        SessionTags((("Team", "a"), ("team", "b")))
    with pytest.raises(SessionTagInvalid, match="transitive"):
        SessionTags((("Team", "a"),), ("Other",))


@pytest.mark.parametrize(
    "tags, problem",
    [
        ([{"key": f"k{i}", "attribute": "a"} for i in range(51)], "at most 50"),
        ([{"key": "k" * 129, "attribute": "a"}], "at most 128"),
        ([{"key": "Team", "attribute": "a"}, {"key": "TEAM", "attribute": "b"}], "listed twice"),
        ([{"key": "aws:Team", "attribute": "a"}], "reserved"),
        ([{"key": "Te<am", "attribute": "a"}], "letters, digits"),
    ],
)
def test_the_configuration_refuses_tags_aws_would_refuse(tags: list[dict[str, str]], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        SessionTagsConfig.model_validate({"tags": tags})
