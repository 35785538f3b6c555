"""The mapping engine as a pure function: groups + mapping data → grants, with reasons."""

from __future__ import annotations

import pytest

from broker.groups import display_name, match_key
from broker.mapping.rules import resolve
from broker.mapping.snapshot import AccountRecord, MappingRecord, MappingSnapshot, RoleRecord, RuleRecord

PROD = AccountRecord("111122223333", "prod", "aws", "eu-west-1", "prod", "saml", "broker", None)
GOV = AccountRecord("444455556666", "gov", "aws-us-gov", "us-gov-west-1", None, "web_identity", None, "sts.amazonaws.com")
ADFS = r"^AWS-(?P<account>\d{12}|[a-z-]+)-(?P<role>[\w+=,.@-]+)$"


def snapshot(*mappings: MappingRecord, rules: tuple[RuleRecord, ...] = ()) -> MappingSnapshot:
    roles = [
        RoleRecord(PROD.id, "Admin", "/", 43200),
        RoleRecord(PROD.id, "ReadOnly", "/audit/", 3600),
        RoleRecord(GOV.id, "Deployer", "/", 7200),
    ]
    return MappingSnapshot.build([PROD, GOV], roles, mappings, rules)


def mapping(id_: str, group: str, account: str, role: str, *, cap=None, console=True, cli=True) -> MappingRecord:
    return MappingRecord(id_, group, match_key(group), account, role, cap, console, cli, "api")


@pytest.mark.parametrize(
    "given, name",
    [
        ("AWS-Admins", "AWS-Admins"),
        ("  spaced  ", "spaced"),
        ("CN=AWS-Admins,OU=Groups,DC=example,DC=com", "AWS-Admins"),
        ("cn=Ops\\, Night Shift,ou=groups,dc=x", "Ops, Night Shift"),
        ("CN=caf\\c3\\a9,DC=x", "café"),
        ("cn=a+uid=b,dc=x", "a"),
        ("not=a dn, really", "not=a dn, really"),
        ("role=admin", "admin"),
    ],
)
def test_group_names_reduce_by_the_documented_rule(given, name):
    assert display_name(given) == name


def test_groups_match_case_insensitively_and_as_dns():
    data = snapshot(mapping("1", "AWS-Admins", PROD.id, "Admin"))
    for groups in (["aws-admins"], ["AWS-ADMINS"], ["CN=Aws-Admins,OU=Groups,DC=corp,DC=example"]):
        res = resolve(groups, data)
        assert [g.role_arn for g in res.grants] == ["arn:aws:iam::111122223333:role/Admin"]
        assert res.grants[0].reasons[0].ref == "1" and res.grants[0].reasons[0].group == groups[0]


def test_no_groups_no_grants():
    res = resolve([], snapshot(mapping("1", "ops", PROD.id, "Admin")))
    assert res.grants == () and res.unmatched == ()
    res = resolve(["someone-else"], snapshot(mapping("1", "ops", PROD.id, "Admin")))
    assert res.grants == () and res.unmatched == ("someone-else",)


def test_every_reason_is_kept_and_channels_combine():
    data = snapshot(
        mapping("1", "console-people", PROD.id, "Admin", cap=3600, cli=False),
        mapping("2", "cli-people", PROD.id, "admin", cap=14400, console=False),
    )
    (grant,) = resolve(["console-people", "cli-people"], data).grants
    assert [r.ref for r in grant.reasons] == ["1", "2"]
    assert grant.allows("console") and grant.allows("cli")
    assert grant.max_duration("console") == 3600
    assert grant.max_duration("cli") == 14400
    (only_console,) = resolve(["console-people"], data).grants
    assert not only_console.allows("cli") and only_console.max_duration("cli") == 0


def test_role_maximum_caps_every_grant():
    data = snapshot(mapping("1", "auditors", PROD.id, "ReadOnly", cap=43200))
    (grant,) = resolve(["auditors"], data).grants
    assert grant.max_duration("cli") == 3600
    assert grant.role_arn == "arn:aws:iam::111122223333:role/audit/ReadOnly"
    assert grant.saml_provider_arn == "arn:aws:iam::111122223333:saml-provider/broker"


def test_naming_rules_by_id_and_alias_and_partition():
    rule = RuleRecord("adfs", ADFS, None, True, True, "config")
    data = snapshot(rules=(rule,))
    res = resolve(["AWS-111122223333-ReadOnly", "AWS-gov-Deployer", "AWS-prod-BreakGlass"], data)
    arns = {g.role_arn: g for g in res.grants}
    assert set(arns) == {
        "arn:aws:iam::111122223333:role/audit/ReadOnly",  # registered role: its path and maximum
        "arn:aws-us-gov:iam::444455556666:role/Deployer",
        "arn:aws:iam::111122223333:role/BreakGlass",  # unregistered: AWS default maximum
    }
    assert arns["arn:aws:iam::111122223333:role/BreakGlass"].max_duration("cli") == 3600
    assert arns["arn:aws-us-gov:iam::444455556666:role/Deployer"].audience == "sts.amazonaws.com"
    assert all(r.kind == "rule" and r.ref == "adfs" for g in res.grants for r in g.reasons)


def test_rules_never_invent_accounts_or_reserved_roles():
    rule = RuleRecord("adfs", ADFS, None, True, True, "api")
    res = resolve(["AWS-999999999999-Admin", "AWS-prod-AWSReservedSSO_Admin_abc"], snapshot(rules=(rule,)))
    assert res.grants == ()
    assert len(res.notes) == 2 and "999999999999" in res.notes[0] and "AWSReservedSSO" in res.notes[1]


def test_rule_must_match_the_whole_group_name():
    rule = RuleRecord("r", r"AWS-(?P<account>\d{12})-(?P<role>Admin)", None, True, True, "api")
    assert resolve(["xAWS-111122223333-Admin"], snapshot(rules=(rule,))).grants == ()
    assert resolve(["AWS-111122223333-Adminx"], snapshot(rules=(rule,))).grants == ()
    assert len(resolve(["AWS-111122223333-Admin"], snapshot(rules=(rule,))).grants) == 1


def test_mapping_and_rule_to_the_same_role_make_one_grant():
    rule = RuleRecord("adfs", ADFS, 900, False, True, "api")
    data = snapshot(mapping("7", "ops", PROD.id, "Admin", cli=False), rules=(rule,))
    (grant,) = resolve(["ops", "AWS-prod-Admin"], data).grants
    assert [(r.kind, r.ref) for r in grant.reasons] == [("mapping", "7"), ("rule", "adfs")]
    assert grant.max_duration("console") == 43200 and grant.max_duration("cli") == 900


# ---- naming rules in RE2: linear time, a bound on the name, Python-only syntax refused ----

NESTED = r"^AWS-(?P<account>\d{12}|[a-z-]+)-(?P<role>([\w+=,.@-]+)+)$"  # exponential for Python's re


_NESTED_CHECK = """
import json
from tests.test_mapping_rules import NESTED, RuleRecord, resolve, snapshot
almost = "AWS-prod-" + "a" * 48 + "!"  # 2**48 backtracking paths before Python's re gives up
res = resolve([almost, "AWS-prod-Admin"], snapshot(rules=(RuleRecord("nested", NESTED, None, True, True, "api"),)))
print(json.dumps({"arns": [g.role_arn for g in res.grants], "unmatched": list(res.unmatched)}))
"""


def test_a_nested_quantifier_rule_answers_at_once():
    """In a child process: a backtracking engine would hold its GIL (and so this test) for ever."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    try:
        done = subprocess.run(
            [sys.executable, "-c", _NESTED_CHECK], cwd=root, capture_output=True, text=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail("resolving one group name against a nested-quantifier rule did not finish")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out == {"arns": ["arn:aws:iam::111122223333:role/Admin"], "unmatched": ["AWS-prod-" + "a" * 48 + "!"]}


@pytest.mark.parametrize(
    "pattern, reason",
    [
        (r"^(?=AWS)AWS-(?P<account>\d{12})-(?P<role>\w+)$", "invalid perl operator"),  # look-ahead
        (r"^(?P<account>\d{12})-(?P<role>\w+)-(?P=role)$", "invalid perl operator: (?P"),  # back-reference
        (r"^(?P<account>\d{12})-(?P<role>\w+)\Z", "invalid escape sequence"),  # Python's \Z is RE2's \z
    ],
)
def test_python_only_syntax_is_refused_with_re2s_reason(pattern, reason):
    from pydantic import ValidationError

    from broker.mapping.model import RuleSpec

    with pytest.raises(ValidationError) as err:
        RuleSpec(name="r", pattern=pattern)
    (e,) = err.value.errors()
    assert e["type"] == "invalid_regex" and "RE2" in e["msg"] and reason in e["msg"], e["msg"]


def test_a_group_name_over_the_bound_is_not_tried_against_rules():
    from broker.mapping.patterns import MAX_GROUP_LENGTH

    rule = RuleRecord("any", r"^AWS-(?P<account>[a-z]+)-(?P<role>Admin)(?:-x*)?$", None, True, True, "api")
    at_bound = "AWS-prod-Admin-" + "x" * (MAX_GROUP_LENGTH - 15)
    over = at_bound + "x"
    assert len(resolve([at_bound], snapshot(rules=(rule,))).grants) == 1
    res = resolve([over], snapshot(rules=(rule,)))
    assert res.grants == () and res.unmatched == (over,)
    assert any(f"longer than {MAX_GROUP_LENGTH}" in n for n in res.notes), res.notes


def test_a_stored_rule_re2_cannot_compile_is_skipped_with_a_note():
    """A rule stored before RE2 was required never matches; the others still do."""
    old = RuleRecord("old", r"^(?=AWS)AWS-(?P<account>\d{12})-(?P<role>\w+)$", None, True, True, "api")
    adfs = RuleRecord("adfs", ADFS, None, True, True, "api")
    res = resolve(["AWS-111122223333-Admin"], snapshot(rules=(old, adfs)))
    assert [r.ref for g in res.grants for r in g.reasons] == ["adfs"]
    assert any("'old'" in n and "RE2" in n for n in res.notes), res.notes


def test_rule_classes_are_ascii_as_in_re2():
    """``\\d`` is ASCII in RE2: Arabic-Indic digits are no account id (Python's ``\\d`` took them)."""
    rule = RuleRecord("adfs", ADFS, None, True, True, "api")
    res = resolve(["AWS-\u0661\u0661\u0661\u0661\u0662\u0662\u0662\u0662\u0663\u0663\u0663\u0663-Admin"], snapshot(rules=(rule,)))
    assert res.grants == () and res.notes == ()
