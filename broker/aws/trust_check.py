"""Whether one mapped role would let the broker in: its trust policy and MaxSessionDuration, as findings.

``check_role_trust`` evaluates the trust policy (``broker.aws.trust_policy``) for every request
the broker may make to the role (AWS.md "The AWS side of the trust"):

- SAML: ``sts:AssumeRoleWithSAML`` + ``sts:TagSession`` + ``sts:SetSourceIdentity`` from the
  SAML provider, with ``SAML:aud`` = each Recipient the broker may use for the account;
- web identity: ``sts:AssumeRoleWithWebIdentity`` + the same two from the OIDC provider, with
  ``<issuer host>:aud`` = the audience (the key is the provider ARN's resource part).

Each finding names one cause, with a one-line reason and fix; the same cause found for several
requests is reported once. No finding is an error or warning: one ``ok`` finding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from broker.aws.trust import SAML_ACTIONS, WEB_IDENTITY_ACTIONS
from broker.aws.trust_policy import Decision, Policy, PolicyError, Request, Tri, evaluate, parse_policy
from broker.domain import FederationPath

Severity = Literal["ok", "warning", "error"]


@dataclass(frozen=True, slots=True)
class Finding:
    severity: Severity
    code: str
    reason: str
    fix: str


def needed_actions(federation: FederationPath) -> tuple[str, ...]:
    """What the broker asks STS for on this path (AWS.md)."""
    return SAML_ACTIONS if federation == "saml" else WEB_IDENTITY_ACTIONS


def audience_key(federation: FederationPath, provider_arn: str) -> str:
    """The trust-policy condition key that carries the audience: ``SAML:aud`` or ``<issuer host>:aud``."""
    kind = "saml-provider/" if federation == "saml" else "oidc-provider/"
    _, sep, name = provider_arn.partition(f":{kind}")
    if not sep or not name or not provider_arn.startswith("arn:"):
        raise ValueError(f"{provider_arn!r} is not an IAM {kind[:-1]} ARN")
    return "SAML:aud" if federation == "saml" else f"{name}:aud"


def check_role_trust(
    policy: str | Mapping[str, object] | Policy,
    *,
    provider_arn: str,
    federation: FederationPath,
    audiences: Sequence[str],
    needed_actions: Sequence[str] | None = None,
    context: Mapping[str, Sequence[str]] | None = None,
    max_session_duration: int | None = None,
    session_cap: int | None = None,
) -> list[Finding]:
    """The findings for one role: ``policy`` is its trust policy as GetRole returns it (or decoded).

    ``audiences``: every aud value the broker may send to this account (regional recipients
    included). ``context``: further request-context keys the broker sends (e.g. ``<host>:sub``).
    ``max_session_duration``: the role's MaxSessionDuration; ``session_cap``: the longest session
    the mapping may ask for this role.
    """
    if not audiences:
        raise ValueError("no audience to check the trust policy against")
    actions = tuple(needed_actions) if needed_actions is not None else _default_actions(federation)
    key = audience_key(federation, provider_arn)
    findings: list[Finding] = []
    try:
        parsed = parse_policy(policy)
    except PolicyError as exc:
        findings.append(Finding("error", "trust.unreadable", f"the trust policy cannot be read: {exc}",
                                "replace the role's trust policy with the one aws-setup generates"))
    else:
        findings.extend(_trust_findings(parsed, provider_arn, key, audiences, actions, context or {}))
    if max_session_duration is not None and session_cap is not None and max_session_duration < session_cap:
        findings.append(Finding(
            "error", "role.max_session_too_short",
            f"MaxSessionDuration is {max_session_duration} s but the mapping may ask for {session_cap} s; "
            "STS refuses such requests",
            f"set the role's MaxSessionDuration to {session_cap} (or lower the mapping's max_session_duration)"))
    if not findings:
        findings.append(Finding("ok", "trust.ok", "the role trusts the broker with every action it needs", ""))
    return findings


def _default_actions(federation: FederationPath) -> tuple[str, ...]:
    return needed_actions(federation)


def _trust_findings(policy: Policy, provider_arn: str, key: str, audiences: Sequence[str],
                    actions: Sequence[str], context: Mapping[str, Sequence[str]]) -> list[Finding]:
    causes: dict[tuple[str, str], list[str]] = {}
    """(code, subject) → the actions (or audiences, for trust.audience) it blocks, in order."""
    for audience in audiences:
        values = {name: tuple(items) for name, items in context.items()}
        values[key] = (audience,)
        for action in actions:
            decision = evaluate(policy, Request(provider_arn, action, values))
            if decision.allowed:
                continue
            code, subject = _cause(decision, provider_arn, action, key)
            blocked = causes.setdefault((code, subject), [])
            item = audience if code == "trust.audience" else action
            if item not in blocked:
                blocked.append(item)
    result = [_finding(code, subject, blocked, provider_arn, key) for (code, subject), blocked in causes.items()]
    result.sort(key=lambda finding: finding.code != "trust.audience")
    extra = _other_principals(policy, provider_arn)
    if extra and not any(finding.code == "trust.other_provider" for finding in result):
        result.append(Finding(
            "warning", "trust.extra_principal",
            f"the role also trusts {', '.join(extra)}; the group decision is then not the broker's alone",
            "remove the other principals from the trust policy"))
    return result


def _cause(decision: Decision, provider_arn: str, action: str, key: str) -> tuple[str, str]:
    """Why ``action`` is refused: a finding code and its subject (a statement, the principals, keys...)."""
    if decision.outcome == "explicit_deny":
        return "trust.denied", decision.reason
    if decision.outcome == "cannot_evaluate":
        return "trust.cannot_evaluate", decision.reason
    allows = [result for result in decision.results if result.statement.effect == "Allow"]
    ours = [result for result in allows if result.principal is Tri.YES]
    if not ours:
        others = sorted({arn for result in allows for arn in result.statement.federated()} - {provider_arn})
        return "trust.other_provider", ", ".join(others) if others else "no federated provider"
    acting = [result for result in ours if result.action is Tri.YES]
    if not acting:
        return "trust.action_missing", action
    failed = {name.lower() for result in acting for name in result.failed_keys}
    if key.lower() in failed:
        return "trust.audience", key
    return "trust.condition_unmet", ", ".join(sorted({name for result in acting for name in result.failed_keys}))


def _finding(code: str, subject: str, blocked: Sequence[str], provider_arn: str, key: str) -> Finding:
    listed = ", ".join(blocked)
    if code == "trust.denied":
        return Finding("error", code, f"{subject} denies the broker's {listed}",
                       "remove or narrow the Deny statement in the role's trust policy")
    if code == "trust.cannot_evaluate":
        return Finding("warning", code, f"whether {listed} is allowed cannot be told: {subject}",
                       "check this role by hand, or use the trust policy aws-setup generates")
    if code == "trust.other_provider":
        return Finding("error", code, f"the role trusts {subject}, not {provider_arn}",
                       f"make {provider_arn} the trust policy's Federated principal")
    if code == "trust.action_missing":
        return Finding("error", code, f"the trust policy does not allow {subject} from {provider_arn}",
                       f"add {subject} to the Action list of the statement that trusts the broker")
    if code == "trust.audience":
        return Finding("error", code, f"the trust policy's {key} condition does not accept {listed}",
                       f"allow {key} = {listed} (StringEquals, or ForAnyValue:StringLike for several)")
    return Finding("error", code,
                   f"the trust policy's condition on {subject} is not met by what the broker sends ({listed})",
                   "condition the trust on the audience (and sub where the mapping allows it) only")


def _other_principals(policy: Policy, provider_arn: str) -> list[str]:
    found: list[str] = []
    for statement in policy.statements:
        if statement.effect != "Allow" or statement.not_principal:
            continue
        names: list[str] = []
        if statement.principal == "*":
            names.append("*")
        elif isinstance(statement.principal, Mapping):
            for kind, ids in statement.principal.items():
                names.extend(item if kind == "Federated" else f"{kind}:{item}" for item in ids)
        found.extend(name for name in names if name != provider_arn and name not in found)
    return found
