"""Access policies as the configuration gives them: durations, business hours across daylight
saving, RE2 ticket patterns, and the references mappings make to policies."""

from __future__ import annotations

from datetime import datetime

import pytest

from broker.config import parse_config
from broker.errors import ConfigError
from broker.jit.policy import AccessPolicy, BusinessHours
from broker.jit.requests import parse_duration


@pytest.mark.parametrize(("given", "seconds"), [(7200, 7200), ("7200", 7200), ("2h", 7200), ("90m", 5400),
                                                ("1h30m", 5400), ("45s", 45), (" 2H ", 7200)])
def test_durations_in_seconds_or_hours_and_minutes(given, seconds):
    assert parse_duration(given) == seconds


@pytest.mark.parametrize("given", ["", "soon", "2 hours", "-5", 0, -1, "h", "1d", True])
def test_what_is_not_a_duration(given):
    assert parse_duration(given) is None


def test_business_hours_follow_the_zone_across_daylight_saving():
    hours = BusinessHours(timezone="Europe/Berlin", start="09:00", end="17:00")
    assert hours.contains(datetime.fromisoformat("2026-07-06T07:30:00+00:00"))  # Monday 09:30 CEST (UTC+2)
    assert not hours.contains(datetime.fromisoformat("2026-12-07T07:30:00+00:00"))  # Monday 08:30 CET (UTC+1)
    assert hours.contains(datetime.fromisoformat("2026-12-07T08:30:00+00:00"))
    assert not hours.contains(datetime.fromisoformat("2026-12-05T10:00:00+00:00"))  # Saturday


def test_policy_fields_are_checked_when_the_file_is_read():
    policy = AccessPolicy(approver_groups=["CN=AWS-Admins,OU=Groups,DC=corp"], max_duration="2h",
                          ticket_pattern=r"INC-\d+")
    assert policy.max_duration == 7200 and policy.ticket_ok("INC-12") and not policy.ticket_ok("xINC-12")
    assert policy.approver_groups_of(["cn=aws-admins,ou=people,dc=corp", "dev"]) == ["aws-admins"]
    bad = {"jit": {"policies": {"p": {"approver_groups": [], "max_duration": "13h", "ticket_pattern": "(?=x)",
                                      "auto_approve": {"business_hours": {"timezone": "Mars/Olympus"}}}}}}
    with pytest.raises(ConfigError) as err:
        parse_config(bad, env={})
    text = str(err.value)
    for where in ("jit.policies.p.approver_groups", "jit.policies.p.max_duration", "jit.policies.p.ticket_pattern",
                  "jit.policies.p.auto_approve.business_hours.timezone"):
        assert where in text, (where, text)


def test_an_eligible_mapping_needs_a_declared_policy():
    mapping = {"accounts": [{"id": "222222222222", "alias": "prod", "roles": [{"name": "ReadOnly"}]}],
               "mappings": [{"group": "g", "account": "prod", "role": "ReadOnly", "access": "eligible",
                             "policy": "nope"},
                            {"group": "h", "account": "prod", "role": "ReadOnly", "access": "eligible"}]}
    with pytest.raises(ConfigError) as err:
        parse_config({"mapping": mapping}, env={})
    text = str(err.value)
    assert "mapping.mappings[0].policy: no access policy 'nope' in jit.policies" in text
    assert "access: eligible needs policy:" in text
