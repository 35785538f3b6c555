"""An IAM role trust policy, parsed and evaluated the way IAM does for one AssumeRole* request.

Pure: no I/O, no AWS call. ``parse_policy`` takes the document as IAM's GetRole returns it
(URL-encoded JSON), as plain JSON, or as the dict boto3 decodes it into. ``evaluate`` answers
whether a request (principal, action, request-context keys) would be allowed:

- an explicit Deny that applies wins; else an Allow that applies allows; else implicit deny;
- Principal: ``"*"``, ``{"Federated": ARN | [ARN, ...]}`` (other principal types never match a
  federated request); Action / NotAction with IAM's wildcards ``*`` and ``?``, case-insensitive;
- Condition: operators AND, keys within an operator AND, values of a key OR; key names
  case-insensitive. String operators (StringEquals, StringNotEquals, StringEqualsIgnoreCase,
  StringNotEqualsIgnoreCase, StringLike, StringNotLike), with the ``ForAnyValue:`` /
  ``ForAllValues:`` set prefixes and the ``IfExists`` suffix, and ``Null``. A key missing from the
  request makes a positive operator false and a negated one true (IAM User Guide,
  reference_policies_elements_condition_operators; reference_policies_condition-single-vs-multi-valued-context-keys).

What this module does not evaluate (NotPrincipal, other condition operators, policy variables,
``{"AWS": "*"}`` for a federated request, Resource in a trust policy) is never guessed: the
statement's outcome is *unknown* and the decision is ``cannot_evaluate`` with the reason, unless
another statement settles the request regardless (an applying Deny, or an Allow with no unknown
Deny beside it).

Why not a library: parliament (PyPI) is a linter (grammar, action names, resource formats), and
policyuniverse extracts principals and a few condition keys for "internet accessible" checks;
neither evaluates condition operators against a request context.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import Literal
from urllib.parse import unquote

Effect = Literal["Allow", "Deny"]
Outcome = Literal["allow", "explicit_deny", "implicit_deny", "cannot_evaluate"]


class PolicyError(ValueError):
    """The document is not a trust policy IAM would accept (the message says why)."""


class Tri(Enum):
    """A three-valued answer: a statement part matches, does not, or cannot be told."""

    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Condition:
    operator: str
    """As written, e.g. ``ForAnyValue:StringLike``."""
    key: str
    """As written, e.g. ``SAML:aud`` (compared case-insensitively)."""
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Statement:
    index: int
    sid: str | None
    effect: Effect
    principal: str | Mapping[str, tuple[str, ...]] | None
    """``"*"``, or principal type → values; None when the statement has no Principal."""
    not_principal: bool
    actions: tuple[str, ...]
    not_action: bool
    conditions: tuple[Condition, ...]
    has_resource: bool

    @property
    def label(self) -> str:
        """How a finding names it: its Sid, else its position."""
        return f"Sid “{self.sid}”" if self.sid else f"statement #{self.index + 1}"

    def federated(self) -> tuple[str, ...]:
        """The Federated principals it names (``("*",)`` for ``"Principal": "*"``)."""
        if self.principal == "*":
            return ("*",)
        if isinstance(self.principal, Mapping):
            return self.principal.get("Federated", ())
        return ()


@dataclass(frozen=True, slots=True)
class Policy:
    statements: tuple[Statement, ...]


@dataclass(frozen=True, slots=True)
class Request:
    """One AssumeRole* request as IAM evaluates the trust policy for it."""

    principal: str
    """The Federated principal: the SAML or OIDC provider ARN."""
    action: str
    context: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Request-context keys (any case) → their values."""

    def value(self, key: str) -> tuple[str, ...] | None:
        wanted = key.lower()
        for name, values in self.context.items():
            if name.lower() == wanted:
                return values
        return None


@dataclass(frozen=True, slots=True)
class StatementResult:
    statement: Statement
    principal: Tri
    action: Tri
    conditions: Tri
    failed_keys: tuple[str, ...]
    """Condition keys (as written) whose test was false."""
    unknown: tuple[str, ...]
    """Why a part is UNKNOWN (empty when nothing is)."""

    @property
    def applies(self) -> Tri:
        parts = (self.principal, self.action, self.conditions)
        if Tri.NO in parts:
            return Tri.NO
        if Tri.UNKNOWN in parts:
            return Tri.UNKNOWN
        return Tri.YES


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    results: tuple[StatementResult, ...]
    reason: str = ""
    """For ``cannot_evaluate``: what could not be evaluated; for ``explicit_deny``: the statement's label."""

    @property
    def allowed(self) -> bool:
        return self.outcome == "allow"


# ---- parsing ----


def parse_policy(document: str | Mapping[str, object] | Policy) -> Policy:
    """The policy from GetRole's URL-encoded JSON, plain JSON, or boto3's decoded dict."""
    if isinstance(document, Policy):
        return document
    data: object = document
    if isinstance(document, str):
        text = document.strip()
        if text.startswith("%"):
            text = unquote(text)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PolicyError(f"the trust policy is not JSON: {exc.msg} at character {exc.pos}") from exc
    if not isinstance(data, Mapping):
        raise PolicyError("the trust policy is not a JSON object")
    raw = data.get("Statement")
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise PolicyError("the trust policy has no Statement")
    return Policy(tuple(_statement(index, item) for index, item in enumerate(raw)))


def _strings(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return tuple(str(item) for item in value)
    raise PolicyError(f"{where} must be a string or a non-empty list of strings")


def _condition_values(value: object, where: str) -> tuple[str, ...]:
    """Condition values: strings, or booleans/numbers which IAM compares as their text."""
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, bool):
            out.append("true" if item else "false")
        elif isinstance(item, (str, int, float)):
            out.append(str(item))
        else:
            raise PolicyError(f"{where} must be strings")
    if not out:
        raise PolicyError(f"{where} has no value")
    return tuple(out)


def _statement(index: int, item: object) -> Statement:
    where = f"statement #{index + 1}"
    if not isinstance(item, Mapping):
        raise PolicyError(f"{where} is not a JSON object")
    effect = item.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicyError(f"{where}: Effect must be “Allow” or “Deny”")
    sid = item.get("Sid")
    if "Action" in item and "NotAction" in item:
        raise PolicyError(f"{where} has both Action and NotAction")
    if "Action" not in item and "NotAction" not in item:
        raise PolicyError(f"{where} has no Action")
    not_action = "NotAction" in item
    actions = _strings(item["NotAction" if not_action else "Action"], f"{where}: Action")
    not_principal = "NotPrincipal" in item
    principal = _principal(item.get("NotPrincipal" if not_principal else "Principal"), where)
    conditions: list[Condition] = []
    block = item.get("Condition", {})
    if not isinstance(block, Mapping):
        raise PolicyError(f"{where}: Condition must be a JSON object")
    for operator, tests in block.items():
        if not isinstance(tests, Mapping):
            raise PolicyError(f"{where}: Condition “{operator}” must map keys to values")
        for key, values in tests.items():
            conditions.append(Condition(str(operator), str(key),
                                        _condition_values(values, f"{where}: {operator} {key}")))
    return Statement(index=index, sid=sid if isinstance(sid, str) and sid else None,
                     effect="Allow" if effect == "Allow" else "Deny", principal=principal,
                     not_principal=not_principal, actions=actions, not_action=not_action,
                     conditions=tuple(conditions),
                     has_resource="Resource" in item or "NotResource" in item)


def _principal(value: object, where: str) -> str | Mapping[str, tuple[str, ...]] | None:
    if value is None:
        return None
    if value == "*":
        return "*"
    if isinstance(value, Mapping) and value:
        return {str(kind): _strings(ids, f"{where}: Principal {kind}") for kind, ids in value.items()}
    raise PolicyError(f"{where}: Principal must be “*” or an object of principal types")


# ---- matching ----


@lru_cache(maxsize=512)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """IAM's wildcards: ``*`` any run of characters, ``?`` exactly one; everything else literal."""
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def action_matches(pattern: str, action: str) -> bool:
    """An Action entry (``sts:*``, ``sts:AssumeRoleWith*``, ``sts:TagSessio?``) against an action."""
    return _wildcard(pattern, True).fullmatch(action) is not None


_STRING_OPERATORS: dict[str, tuple[bool, bool, bool]] = {
    # base operator → (negated, wildcards, ignore case)
    "stringequals": (False, False, False),
    "stringnotequals": (True, False, False),
    "stringequalsignorecase": (False, False, True),
    "stringnotequalsignorecase": (True, False, True),
    "stringlike": (False, True, False),
    "stringnotlike": (True, True, False),
}


def _condition(condition: Condition, request: Request) -> tuple[Tri, str]:
    """One key's test; the reason when UNKNOWN."""
    operator = condition.operator
    lowered = operator.lower()
    qualifier = ""
    for prefix in ("foranyvalue:", "forallvalues:"):
        if lowered.startswith(prefix):
            qualifier, lowered = prefix[:-1], lowered[len(prefix):]
    if_exists = lowered.endswith("ifexists")
    if if_exists:
        lowered = lowered[: -len("ifexists")]
    present = request.value(condition.key)
    if lowered == "null" and not qualifier and not if_exists:
        wants_absent = {value.lower() for value in condition.values}
        if not wants_absent <= {"true", "false"}:
            return Tri.UNKNOWN, f"Null on {condition.key} with a value other than true/false"
        return _tri(("true" if present is None else "false") in wants_absent), ""
    if lowered not in _STRING_OPERATORS:
        return Tri.UNKNOWN, f"condition operator “{operator}” is not evaluated by the broker"
    if any("${" in value for value in condition.values):
        return Tri.UNKNOWN, f"policy variables in {operator} {condition.key} are not evaluated by the broker"
    negated, wildcards, ignore_case = _STRING_OPERATORS[lowered]
    if present is None:
        if if_exists:
            return Tri.YES, ""
        if qualifier == "forallvalues":
            return Tri.YES, ""  # an empty set: every one of its values matches
        if qualifier == "foranyvalue":
            return Tri.NO, ""
        return _tri(negated), ""

    def hit(value: str) -> bool:
        if wildcards:
            return any(_wildcard(pattern, ignore_case).fullmatch(value) for pattern in condition.values)
        if ignore_case:
            return value.lower() in {pattern.lower() for pattern in condition.values}
        return value in condition.values

    each = [hit(value) != negated for value in present]
    if qualifier == "forallvalues":
        return _tri(all(each)), ""
    if qualifier == "foranyvalue":
        return _tri(any(each)), ""
    # a single-valued operator: positive operators match when a value matches, negated ones
    # when no value matches
    return _tri(all(each) if negated else any(each)), ""


def _tri(value: bool) -> Tri:
    return Tri.YES if value else Tri.NO


def _principal_matches(statement: Statement, request: Request) -> tuple[Tri, str]:
    if statement.not_principal:
        return Tri.UNKNOWN, f"{statement.label} uses NotPrincipal, which the broker does not evaluate"
    if statement.principal is None:
        return Tri.UNKNOWN, f"{statement.label} names no Principal"
    if statement.principal == "*":
        return Tri.YES, ""
    if isinstance(statement.principal, Mapping):
        federated = statement.principal.get("Federated", ())
        if request.principal in federated or "*" in federated:
            return Tri.YES, ""
        if "*" in statement.principal.get("AWS", ()):
            return Tri.UNKNOWN, (f"{statement.label}: whether {{\"AWS\": \"*\"}} covers a federated "
                                 "principal is not evaluated by the broker")
    return Tri.NO, ""


def evaluate_statement(statement: Statement, request: Request) -> StatementResult:
    unknown: list[str] = []
    principal, why = _principal_matches(statement, request)
    if why:
        unknown.append(why)
    matched = any(action_matches(pattern, request.action) for pattern in statement.actions)
    action = _tri(matched != statement.not_action)
    failed: list[str] = []
    conditions = Tri.YES
    for condition in statement.conditions:
        answer, why = _condition(condition, request)
        if answer is Tri.NO:
            failed.append(condition.key)
            conditions = Tri.NO
        elif answer is Tri.UNKNOWN:
            unknown.append(f"{statement.label}: {why}")
            if conditions is Tri.YES:
                conditions = Tri.UNKNOWN
    if statement.has_resource:
        unknown.append(f"{statement.label} has a Resource, which a trust policy does not take")
        if conditions is Tri.YES:
            conditions = Tri.UNKNOWN
    return StatementResult(statement, principal, action, conditions, tuple(failed), tuple(unknown))


def evaluate(policy: Policy | str | Mapping[str, object], request: Request) -> Decision:
    """IAM's decision for ``request``: an applying Deny wins, then an applying Allow, else implicit deny."""
    results = tuple(evaluate_statement(statement, request) for statement in parse_policy(policy).statements)
    denies = [result for result in results if result.statement.effect == "Deny"]
    allows = [result for result in results if result.statement.effect == "Allow"]
    for result in denies:
        if result.applies is Tri.YES:
            return Decision("explicit_deny", results, result.statement.label)
    unknown_deny = [result for result in denies if result.applies is Tri.UNKNOWN]
    if unknown_deny:
        return Decision("cannot_evaluate", results, "; ".join(_reasons(unknown_deny)))
    if any(result.applies is Tri.YES for result in allows):
        return Decision("allow", results)
    unknown_allow = [result for result in allows if result.applies is Tri.UNKNOWN]
    if unknown_allow:
        return Decision("cannot_evaluate", results, "; ".join(_reasons(unknown_allow)))
    return Decision("implicit_deny", results)


def _reasons(results: Sequence[StatementResult]) -> list[str]:
    return [why for result in results for why in result.unknown]
