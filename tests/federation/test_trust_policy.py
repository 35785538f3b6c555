"""The trust-policy evaluator and the per-role trust findings (issue 13 item 3, AWS.md)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from broker.aws.trust_check import Finding, audience_key, check_role_trust, needed_actions
from broker.aws.trust_policy import PolicyError, Request, action_matches, evaluate, parse_policy
from broker.minting.saml_idp import SamlIdp

SAML_ARN = "arn:aws:iam::111122223333:saml-provider/broker"
OTHER_SAML = "arn:aws:iam::111122223333:saml-provider/okta"
OIDC_ARN = "arn:aws:iam::444455556666:oidc-provider/broker.example.com"
RECIPIENT = "https://signin.aws.amazon.com/saml"
REGIONAL = "https://eu-west-1.signin.aws.amazon.com/saml"
SAML_ACTIONS = ["sts:AssumeRoleWithSAML", "sts:TagSession", "sts:SetSourceIdentity"]
WEB_ACTIONS = ["sts:AssumeRoleWithWebIdentity", "sts:TagSession", "sts:SetSourceIdentity"]


def allow(action: Any = SAML_ACTIONS, *, principal: Any = None, condition: Any = None,
          **extra: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": principal or {"Federated": SAML_ARN},
                                 "Action": action}
    statement["Condition"] = condition if condition is not None else {"StringEquals": {"SAML:aud": RECIPIENT}}
    if not statement["Condition"]:
        del statement["Condition"]
    statement.update(extra)
    return statement


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def codes(findings: list[Finding]) -> list[str]:
    return [finding.code for finding in findings]


def saml_check(document: Any, **options: Any) -> list[Finding]:
    options.setdefault("audiences", [RECIPIENT])
    return check_role_trust(document, provider_arn=SAML_ARN, federation="saml", **options)


# ---- correct trusts, written the several ways IAM accepts ----

CORRECT_SAML = {
    "README's policy": policy(allow()),
    "a single statement object, not a list": {"Version": "2012-10-17", "Statement": allow()},
    "sts:* wildcard": policy(allow("sts:*")),
    "sts:AssumeRoleWith* and sts:T?gSession, any case": policy(
        allow(["STS:assumerolewith*", "sts:T?gSession", "sts:setsourceidentity"])),
    "actions split over statements, one a string": policy(
        allow("sts:AssumeRoleWithSAML"), allow(["sts:TagSession", "sts:SetSourceIdentity"])),
    "StringLike with wildcards": policy(allow(condition={"StringLike": {"SAML:aud": "https://*signin.aws.amazon.com/saml"}})),
    "ForAnyValue:StringLike, key in another case": policy(
        allow(condition={"ForAnyValue:StringLike": {"saml:AUD": ["https://signin.aws.amazon.com/sam?", "x"]}})),
    "ForAnyValue:StringEquals with a list (OR)": policy(
        allow(condition={"ForAnyValue:StringEquals": {"SAML:aud": ["https://other", RECIPIENT]}})),
    "ForAllValues:StringEquals": policy(allow(condition={"ForAllValues:StringEquals": {"SAML:aud": [RECIPIENT]}})),
    "a list of Federated principals holding ours": policy(allow(principal={"Federated": [SAML_ARN]})),
    "a Deny that does not apply to the broker": policy(
        allow(), {"Effect": "Deny", "Principal": {"Federated": SAML_ARN}, "Action": "sts:AssumeRoleWithSAML",
                  "Condition": {"StringNotEquals": {"SAML:aud": RECIPIENT}}}),
    "NotAction in a Deny that leaves the broker's actions alone": policy(
        allow(), {"Effect": "Deny", "Principal": "*", "NotAction": "sts:*"}),
    "IfExists on a key the broker does not send": policy(
        allow(condition={"StringEquals": {"SAML:aud": RECIPIENT}, "StringEqualsIfExists": {"SAML:sub_type": "x"}})),
}


@pytest.mark.parametrize("document", CORRECT_SAML.values(), ids=CORRECT_SAML.keys())
def test_a_correct_saml_trust_gives_one_ok_finding(document: dict[str, Any]) -> None:
    assert saml_check(document) == [Finding("ok", "trust.ok",
                                            "the role trusts the broker with every action it needs", "")]


def test_every_regional_recipient_is_checked() -> None:
    both = policy(allow(condition={"StringEquals": {"SAML:aud": [RECIPIENT, REGIONAL]}}))
    assert codes(saml_check(both, audiences=[RECIPIENT, REGIONAL])) == ["trust.ok"]
    only_global = policy(allow())
    [finding] = saml_check(only_global, audiences=[RECIPIENT, REGIONAL])
    assert (finding.severity, finding.code) == ("error", "trust.audience")
    assert REGIONAL in finding.reason and RECIPIENT not in finding.reason and REGIONAL in finding.fix


# ---- one policy per way a trust can be wrong: exactly its finding ----

WRONG_SAML: dict[str, tuple[dict[str, Any] | str, list[tuple[str, str]]]] = {
    "sts:TagSession missing": (
        policy(allow(["sts:AssumeRoleWithSAML", "sts:SetSourceIdentity"])), [("trust.action_missing", "sts:TagSession")]),
    "sts:SetSourceIdentity missing": (
        policy(allow(["sts:AssumeRoleWithSAML", "sts:TagSession"])),
        [("trust.action_missing", "sts:SetSourceIdentity")]),
    "only AssumeRoleWithSAML": (
        policy(allow("sts:AssumeRoleWithSAML")),
        [("trust.action_missing", "sts:TagSession"), ("trust.action_missing", "sts:SetSourceIdentity")]),
    "wrong SAML:aud": (
        policy(allow(condition={"StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml/"}})),
        [("trust.audience", RECIPIENT)]),
    "StringLike that does not match": (
        policy(allow(condition={"StringLike": {"SAML:aud": "https://*.signin.aws.amazon.com/saml"}})),
        [("trust.audience", RECIPIENT)]),
    "StringEquals is case-sensitive": (
        policy(allow(condition={"StringEquals": {"SAML:aud": RECIPIENT.upper()}})), [("trust.audience", RECIPIENT)]),
    "a Deny statement": (
        policy(allow(), {"Sid": "NoFederation", "Effect": "Deny", "Principal": "*", "Action": "sts:*"}),
        [("trust.denied", "NoFederation")]),
    "a Deny of TagSession only": (
        policy(allow(), {"Effect": "Deny", "Principal": {"Federated": SAML_ARN}, "Action": "sts:TagSession"}),
        [("trust.denied", "statement #2")]),
    "trusting another provider": (
        policy(allow(principal={"Federated": OTHER_SAML})), [("trust.other_provider", OTHER_SAML)]),
    "trusting an AWS account only": (
        policy(allow(principal={"AWS": "arn:aws:iam::111122223333:root"}, condition={})),
        [("trust.other_provider", "no federated provider")]),
    "a condition on a key the broker does not send": (
        policy(allow(condition={"StringEquals": {"SAML:aud": RECIPIENT, "SAML:namequalifier": "abc"}})),
        [("trust.condition_unmet", "SAML:namequalifier")]),
    "also trusting another provider": (
        policy(allow(principal={"Federated": [SAML_ARN, OTHER_SAML]})), [("trust.extra_principal", OTHER_SAML)]),
    "NotPrincipal": (
        policy({"Effect": "Allow", "NotPrincipal": {"AWS": "arn:aws:iam::1:root"}, "Action": "sts:*"}),
        [("trust.cannot_evaluate", "NotPrincipal")]),
    "an operator the broker does not evaluate": (
        policy(allow(condition={"StringEquals": {"SAML:aud": RECIPIENT},
                                "DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}})),
        [("trust.cannot_evaluate", "DateGreaterThan")]),
    "not JSON": ("{\"Statement\": [", [("trust.unreadable", "not JSON")]),
}


@pytest.mark.parametrize(("document", "expected"), WRONG_SAML.values(), ids=WRONG_SAML.keys())
def test_each_wrong_trust_gives_its_finding_and_nothing_else(
        document: dict[str, Any] | str, expected: list[tuple[str, str]]) -> None:
    findings = saml_check(document)
    assert codes(findings) == [code for code, _ in expected]
    for finding, (_, word) in zip(findings, expected, strict=True):
        assert word in finding.reason, finding
        assert finding.severity == ("warning" if finding.code in ("trust.extra_principal", "trust.cannot_evaluate")
                                    else "error")
        assert finding.fix and "\n" not in finding.reason


def test_max_session_duration_shorter_than_the_mapping_cap() -> None:
    findings = saml_check(policy(allow()), max_session_duration=3600, session_cap=43200)
    assert codes(findings) == ["role.max_session_too_short"]
    assert "3600" in findings[0].reason and "43200" in findings[0].fix
    assert codes(saml_check(policy(allow()), max_session_duration=43200, session_cap=43200)) == ["trust.ok"]


# ---- web identity ----


def web_allow(condition: Any, action: Any = WEB_ACTIONS) -> dict[str, Any]:
    return allow(action, principal={"Federated": OIDC_ARN}, condition=condition)


def web_check(document: Any, **options: Any) -> list[Finding]:
    return check_role_trust(document, provider_arn=OIDC_ARN, federation="web_identity",
                            audiences=["sts.amazonaws.com"], **options)


def test_web_identity_trust_as_in_the_readme_is_ok() -> None:
    good = policy(web_allow({"StringEquals": {"broker.example.com:aud": "sts.amazonaws.com"}}))
    assert codes(web_check(good)) == ["trust.ok"]
    with_sub = policy(web_allow({"StringEquals": {"broker.example.com:aud": "sts.amazonaws.com"},
                                 "StringLike": {"broker.example.com:sub": "emp-*"}}))
    assert codes(web_check(with_sub, context={"broker.example.com:sub": ["emp-42"]})) == ["trust.ok"]


def test_web_identity_audience_missing_or_wrong() -> None:
    wrong = policy(web_allow({"StringEquals": {"broker.example.com:aud": "my-app"}}))
    [finding] = web_check(wrong)
    assert finding.code == "trust.audience" and "broker.example.com:aud" in finding.reason
    saml_key = policy(web_allow({"StringEquals": {"SAML:aud": RECIPIENT}}))
    assert codes(web_check(saml_key)) == ["trust.condition_unmet"]
    saml_action = policy(web_allow({"StringEquals": {"broker.example.com:aud": "sts.amazonaws.com"}},
                                   action=SAML_ACTIONS))
    assert codes(web_check(saml_action)) == ["trust.action_missing"]


def test_the_audience_key_and_actions_per_path() -> None:
    assert audience_key("saml", SAML_ARN) == "SAML:aud"
    assert audience_key("web_identity", OIDC_ARN) == "broker.example.com:aud"
    assert audience_key("web_identity", "arn:aws:iam::1:oidc-provider/idp.example.com/tenant") == \
        "idp.example.com/tenant:aud"
    assert needed_actions("saml") == tuple(SAML_ACTIONS)
    assert needed_actions("web_identity") == tuple(WEB_ACTIONS)
    with pytest.raises(ValueError, match="oidc-provider"):
        audience_key("web_identity", SAML_ARN)


# ---- the evaluator itself ----


def test_the_document_as_getrole_returns_it_url_encoded() -> None:
    document = policy(allow())
    encoded = quote(json.dumps(document))
    assert encoded.startswith("%7B")
    assert parse_policy(encoded) == parse_policy(document) == parse_policy(json.dumps(document))
    assert codes(saml_check(encoded)) == ["trust.ok"]


@pytest.mark.parametrize(("pattern", "action", "matches"), [
    ("sts:*", "sts:AssumeRoleWithSAML", True),
    ("*", "sts:TagSession", True),
    ("sts:assumerolewithsaml", "sts:AssumeRoleWithSAML", True),
    ("sts:AssumeRole", "sts:AssumeRoleWithSAML", False),
    ("sts:AssumeRole?", "sts:AssumeRoleWithSAML", False),
    ("sts:TagSessio?", "sts:TagSession", True),
    ("sts:Tag.ession", "sts:TagSession", False),
    ("iam:*", "sts:TagSession", False),
])
def test_action_wildcards(pattern: str, action: str, matches: bool) -> None:
    assert action_matches(pattern, action) is matches


def aud_request(*values: str, action: str = "sts:AssumeRoleWithSAML") -> Request:
    return Request(SAML_ARN, action, {"SAML:aud": values} if values else {})


@pytest.mark.parametrize(("condition", "request_", "outcome"), [
    ({"StringNotEquals": {"SAML:aud": "x"}}, aud_request(RECIPIENT), "allow"),
    ({"StringNotEquals": {"SAML:aud": RECIPIENT}}, aud_request(RECIPIENT), "implicit_deny"),
    ({"StringNotEquals": {"SAML:aud": "x"}}, aud_request(), "allow"),  # a missing key: negated is true
    ({"StringEquals": {"SAML:aud": RECIPIENT}}, aud_request(), "implicit_deny"),
    ({"StringEqualsIgnoreCase": {"SAML:aud": RECIPIENT.upper()}}, aud_request(RECIPIENT), "allow"),
    ({"StringNotLike": {"SAML:aud": "https://*"}}, aud_request(RECIPIENT), "implicit_deny"),
    ({"ForAllValues:StringEquals": {"SAML:aud": [RECIPIENT]}}, aud_request(RECIPIENT, "x"), "implicit_deny"),
    ({"ForAllValues:StringEquals": {"SAML:aud": [RECIPIENT]}}, aud_request(), "allow"),  # empty set
    ({"ForAnyValue:StringEquals": {"SAML:aud": [RECIPIENT]}}, aud_request("x", RECIPIENT), "allow"),
    ({"ForAnyValue:StringEquals": {"SAML:aud": [RECIPIENT]}}, aud_request(), "implicit_deny"),
    ({"StringEquals": {"SAML:aud": RECIPIENT, "SAML:sub": "a"}}, aud_request(RECIPIENT), "implicit_deny"),  # AND
    ({"Null": {"SAML:aud": "false"}}, aud_request(RECIPIENT), "allow"),
    ({"Null": {"SAML:aud": "true"}}, aud_request(RECIPIENT), "implicit_deny"),
    ({"StringLike": {"SAML:aud": "${saml:iss}"}}, aud_request(RECIPIENT), "cannot_evaluate"),
    ({"NumericLessThan": {"SAML:aud": "1"}}, aud_request(RECIPIENT), "cannot_evaluate"),
])
def test_condition_operators(condition: dict[str, Any], request_: Request, outcome: str) -> None:
    assert evaluate(policy(allow(condition=condition)), request_).outcome == outcome


def test_deny_wins_and_unknowns_are_never_guessed() -> None:
    unknown_deny = {"Effect": "Deny", "Principal": "*", "Action": "sts:*",
                    "Condition": {"DateLessThan": {"aws:TokenIssueTime": "2026-01-01T00:00:00Z"}}}
    decision = evaluate(policy(allow(), unknown_deny), aud_request(RECIPIENT))
    assert decision.outcome == "cannot_evaluate" and "DateLessThan" in decision.reason
    # an applying Deny settles it even beside an unknown one
    sure_deny = {"Effect": "Deny", "Principal": {"Federated": SAML_ARN}, "Action": "sts:AssumeRoleWithSAML"}
    assert evaluate(policy(allow(), unknown_deny, sure_deny), aud_request(RECIPIENT)).outcome == "explicit_deny"
    # an unknown Allow does not matter when another Allow applies
    unknown_allow = allow(condition={"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}})
    assert evaluate(policy(unknown_allow, allow()), aud_request(RECIPIENT)).outcome == "allow"
    assert evaluate(policy(unknown_allow), aud_request(RECIPIENT)).outcome == "cannot_evaluate"
    aws_star = allow(principal={"AWS": "*"}, condition={})
    assert evaluate(policy(aws_star), aud_request(RECIPIENT)).outcome == "cannot_evaluate"
    assert evaluate(policy(allow(principal="*", condition={})), aud_request()).outcome == "allow"
    with_resource = allow(Resource="*")
    assert evaluate(policy(with_resource), aud_request(RECIPIENT)).outcome == "cannot_evaluate"


@pytest.mark.parametrize("document", [
    "[]", "{}", '{"Statement": []}', '{"Statement": [{"Effect": "allow", "Principal": "*", "Action": "sts:*"}]}',
    '{"Statement": [{"Effect": "Allow", "Principal": "*"}]}',
    '{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "a", "NotAction": "b"}]}',
    '{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": [1]}]}',
    '{"Statement": [{"Effect": "Allow", "Principal": "me", "Action": "sts:*"}]}',
    '{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sts:*", "Condition": {"StringEquals": "x"}}]}',
])
def test_malformed_policies_are_refused(document: str) -> None:
    with pytest.raises(PolicyError):
        parse_policy(document)


# ---- read back from (moto's) IAM ----


def test_trust_policies_read_back_from_iam_through_get_role(moto_sts: str, idp: SamlIdp) -> None:
    """GetRole sends the document URL-encoded; boto3 decodes it to a dict: the evaluator takes either."""
    import boto3

    iam = boto3.client("iam", region_name="us-east-1", endpoint_url=moto_sts,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    metadata = idp.metadata().decode()
    arn = iam.create_saml_provider(Name="trust-check-broker", SAMLMetadataDocument=metadata)["SAMLProviderArn"]
    good = policy(allow(principal={"Federated": arn}))
    lacking = policy(allow(["sts:AssumeRoleWithSAML", "sts:SetSourceIdentity"], principal={"Federated": arn}))
    for name, document, seconds in (("trust-good", good, 43200), ("trust-lacking", lacking, 3600)):
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(document), MaxSessionDuration=seconds)

    def check(name: str) -> list[str]:
        role = iam.get_role(RoleName=name)["Role"]
        read = role["AssumeRolePolicyDocument"]
        assert isinstance(read, (str, dict))
        return codes(check_role_trust(read, provider_arn=arn, federation="saml", audiences=[RECIPIENT],
                                      max_session_duration=role["MaxSessionDuration"], session_cap=43200))

    assert check("trust-good") == ["trust.ok"]
    assert check("trust-lacking") == ["trust.action_missing", "role.max_session_too_short"]

    # without botocore's decoding handler, GetRole's document is IAM's URL-encoded JSON
    from botocore.handlers import json_decode_policies

    iam.meta.events.unregister("after-call.iam", json_decode_policies)
    raw = iam.get_role(RoleName="trust-lacking")["Role"]["AssumeRolePolicyDocument"]
    assert isinstance(raw, str) and raw.startswith("%7B")
    assert codes(check_role_trust(raw, provider_arn=arn, federation="saml", audiences=[RECIPIENT])) == [
        "trust.action_missing"]
