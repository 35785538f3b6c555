"""`broker doctor`: whether each mapped account would let the broker in, read through IAM (read-only).

One account (``check_account``) against what it should hold (``broker.aws.trust.AccountTrust``,
the same plan ``broker aws-setup`` writes):

- the provider. SAML (GetSAMLProvider): its metadata must carry the broker's current signing
  certificate (error) and, while ``keys.next`` is set, the next one (warning). The broker has no
  switch time: ``keys.next`` is "before the switch" by definition, and once it is made current a
  provider without it is the error above. OIDC (GetOpenIDConnectProvider): its client ids must
  hold the account's audience. Its URL is the ARN's (IAM names the provider after its URL), so a
  provider found at the ARN derived from the issuer has the issuer's URL. Thumbprints are not
  compared: IAM validates a well-known CA's certificate itself, and the top intermediate
  certificate AWS would hash cannot be read from Python's TLS client; the ``ok`` line says so.
- each declared role (GetRole): it exists at the declared path, its trust policy lets the broker
  in for the Recipient or client id it sends now (``trust_check.check_role_trust``), and its
  MaxSessionDuration is at least the role's configured maximum (the broker clamps to that).
- orphans (ListRoles, every page): roles that allow this provider in their trust but that no
  declared role is — a review finding.

Every call goes through ``IamAccess`` (bounded in time); whatever stops one (access denied,
no credentials, no answer) replaces that account's checks with one finding, and the other
accounts are still checked (``check_accounts``, a small bounded thread pool).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from lxml import etree

from broker.aws.iam_access import AccessProblem, IamAccess, access_problem
from broker.aws.trust import AccountTrust, BrokerSide, OidcProvider, RoleTrust, SamlProvider
from broker.aws.trust_check import Finding, Severity, check_role_trust
from broker.aws.trust_policy import PolicyError, parse_policy
from broker.domain import FederationPath
from broker.errors import UpstreamRejected
from broker.xml_safety import refuse_unsafe_xml

MAX_WORKERS = 4
"""Accounts checked at once: each holds one IAM connection; IAM's read quota is per account."""

_MD = "urn:oasis:names:tc:SAML:2.0:metadata"
_DS = "http://www.w3.org/2000/09/xmldsig#"
_SEVERITY_ORDER: dict[Severity, int] = {"ok": 0, "warning": 1, "error": 2}


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report: a finding about one subject (the account, its provider, a role)."""

    subject: str
    severity: Severity
    code: str
    reason: str
    fix: str

    @classmethod
    def of(cls, subject: str, finding: Finding) -> Check:
        return cls(subject, finding.severity, finding.code, finding.reason, finding.fix)


@dataclass(frozen=True)
class AccountReport:
    account_id: str
    alias: str | None
    checks: tuple[Check, ...]
    checked_at: datetime
    """When IAM was read (a cached report keeps it)."""

    @property
    def severity(self) -> Severity:
        """The worst severity among its checks."""
        return worst(check.severity for check in self.checks)


def worst(severities: Iterable[Severity]) -> Severity:
    return max(severities, key=_SEVERITY_ORDER.__getitem__, default="ok")


def check_accounts(access: IamAccess, trusts: Sequence[AccountTrust], broker: BrokerSide,
                   *, max_workers: int = MAX_WORKERS, run_timeout: float | None = None) -> list[AccountReport]:
    """Every account's report, in the order given; accounts are checked concurrently. With
    ``run_timeout``, an account whose turn comes after that many seconds is not checked (a
    hung IAM would otherwise cost each account its call bounds in turn)."""
    if not trusts:
        return []
    ends = time.monotonic() + run_timeout if run_timeout is not None else None

    def one(trust: AccountTrust) -> AccountReport:
        if ends is not None and time.monotonic() > ends:
            return AccountReport(trust.account_id, trust.alias, (Check(
                "account", "error", "access.not_checked",
                f"not checked: the run took longer than doctor.run_timeout ({run_timeout:g} s) before its turn",
                "check the accounts above that did not answer (or raise doctor.run_timeout), then run it again"),),
                datetime.now(UTC).replace(microsecond=0))
        return check_account(access, trust, broker)

    with ThreadPoolExecutor(max_workers=min(max_workers, len(trusts)), thread_name_prefix="doctor") as pool:
        return list(pool.map(one, trusts))


def check_account(access: IamAccess, trust: AccountTrust, broker: BrokerSide) -> AccountReport:
    started = datetime.now(UTC).replace(microsecond=0)
    try:
        iam = access.client(trust.account_id, trust.partition)
        checks = provider_checks(iam, trust, broker)
        for role in trust.roles:
            checks.extend(_role_checks(iam, trust, role))
        checks.extend(_orphans(iam, trust))
    except AccessProblem as problem:
        checks = [Check("account", "error", problem.code, problem.reason, problem.fix)]
    return AccountReport(trust.account_id, trust.alias, tuple(checks), started)


def _ask(account_id: str, doing: str, call: Callable[..., Any], **params: Any) -> Any:
    """``call(**params)``'s answer, or None when IAM says NoSuchEntity; any other failure is the
    account's ``AccessProblem``."""
    try:
        return call(**params)
    except (ClientError, BotoCoreError) as exc:
        code = str(exc.response.get("Error", {}).get("Code", "")) if isinstance(exc, ClientError) else ""
        if code == "NoSuchEntity":
            return None
        problem = access_problem(exc, account_id, doing)
        raise (problem or AccessProblem("access.failed", account_id, f"{doing} failed ({code})",
                                        "run it again; if it persists, check IAM in this account")) from exc


def _subject(arn: str) -> str:
    """How the report names an IAM object: its ARN's resource part (``role/audit/ReadOnly``)."""
    return arn.split(":", 5)[-1]


def provider_checks(iam: Any, trust: AccountTrust, broker: BrokerSide) -> list[Check]:
    provider = trust.provider
    subject = _subject(provider.arn)
    if isinstance(provider, SamlProvider):
        found = _ask(trust.account_id, "GetSAMLProvider", iam.get_saml_provider, SAMLProviderArn=provider.arn)
    else:
        found = _ask(trust.account_id, "GetOpenIDConnectProvider", iam.get_open_id_connect_provider,
                     OpenIDConnectProviderArn=provider.arn)
    if found is None:
        kind = "SAML" if isinstance(provider, SamlProvider) else "OIDC"
        return [Check(subject, "error", "provider.missing", f"the account has no IAM {kind} provider {provider.arn}",
                      "create it: deploy the broker aws-setup template, or see the README's create-*-provider command")]
    if isinstance(provider, SamlProvider):
        findings = (_metadata_findings(str(found.get("SAMLMetadataDocument", "")), broker)
                    + _encryption_findings(found, provider))
        decrypts = ", and decrypts the broker's encrypted assertions" if provider.assertion_encryption_mode else ""
        findings = findings or [Finding("ok", "provider.ok",
                                        f"the SAML provider carries the broker's signing certificates{decrypts}", "")]
    else:
        findings = _oidc_findings(found, provider)
    return [Check.of(subject, finding) for finding in findings]


def _certificates(metadata: str) -> list[bytes] | None:
    """The DER of every X509Certificate in the IdP metadata IAM holds; None when it cannot be read."""
    raw = metadata.encode("utf-8")
    try:
        refuse_unsafe_xml(raw)
        # a parser per call: lxml parsers are not to be shared between threads (accounts run concurrently)
        root = etree.fromstring(raw, etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=True))
    except (UpstreamRejected, etree.XMLSyntaxError):
        return None
    found = []
    for node in root.iter(f"{{{_DS}}}X509Certificate"):
        try:
            found.append(base64.b64decode("".join((node.text or "").split()), validate=True))
        except (binascii.Error, ValueError):
            return None
    return found


def _metadata_findings(metadata: str, broker: BrokerSide) -> list[Finding]:
    certificates = _certificates(metadata)
    if certificates is None:
        return [Finding("error", "saml.metadata_unreadable", "the provider's SAML metadata cannot be read",
                        "upload the metadata the broker serves at /saml/metadata (UpdateSAMLProvider)")]
    findings = []
    if broker.current_certificate is not None and broker.current_certificate not in certificates:
        findings.append(Finding(
            "error", "saml.current_key_missing",
            "the provider's metadata lacks the broker's current signing certificate: AWS refuses every assertion",
            "upload the metadata the broker serves at /saml/metadata (UpdateSAMLProvider, or redeploy aws-setup)"))
    if broker.next_certificate is not None and broker.next_certificate not in certificates:
        findings.append(Finding(
            "warning", "saml.next_key_missing",
            "the provider's metadata lacks the next signing certificate (keys.next): making it current now breaks sign-in",
            "upload the metadata the broker serves at /saml/metadata before making keys.next current"))
    return findings


def _encryption_findings(found: dict[str, Any], provider: SamlProvider) -> list[Finding]:
    """The provider's encrypted-assertion settings against the account's opt-in (GetSAMLProvider's
    AssertionEncryptionMode, PrivateKeyList and SAMLProviderUUID). IAM returns only the private
    keys' ids, so whether a key matches the broker's certificate cannot be told from here."""
    mode = found.get("AssertionEncryptionMode")
    if provider.assertion_encryption_mode is None:
        if mode == "Required":
            return [Finding("error", "saml.encryption_required",
                            "the provider requires encrypted assertions but the broker sends this account plain ones: "
                            "AWS refuses every one",
                            "opt the account in (federation.assertion_encryption) or set the provider's "
                            "AssertionEncryptionMode to Allowed")]
        return []
    findings = []
    uuid = found.get("SAMLProviderUUID")
    if uuid and provider.provider_id and uuid != provider.provider_id:
        findings.append(Finding(
            "error", "saml.provider_id_mismatch",
            f"the broker posts encrypted assertions to the ACS of provider id {provider.provider_id}, "
            f"but this provider's id is {uuid}: AWS refuses them",
            f"set federation.assertion_encryption.provider_id to {uuid}"))
    if not found.get("PrivateKeyList"):
        findings.append(Finding(
            "error", "saml.private_key_missing",
            "the broker encrypts assertions for this provider but it holds no private key: AWS cannot decrypt them",
            f"aws iam update-saml-provider --saml-provider-arn {provider.arn} --add-private-key file://KEY.pem"))
    if mode not in ("Allowed", "Required"):
        findings.append(Finding(
            "error", "saml.encryption_off",
            "the broker encrypts assertions for this provider but its AssertionEncryptionMode is not set",
            f"aws iam update-saml-provider --saml-provider-arn {provider.arn} "
            f"--assertion-encryption-mode {provider.assertion_encryption_mode}"))
    elif mode == "Allowed" and provider.assertion_encryption_mode == "Required":
        findings.append(Finding(
            "warning", "saml.encryption_not_required",
            "the mapping says encryption is required, but the provider also accepts plain assertions",
            f"aws iam update-saml-provider --saml-provider-arn {provider.arn} --assertion-encryption-mode Required"))
    return findings


def _oidc_findings(found: dict[str, Any], provider: OidcProvider) -> list[Finding]:
    client_ids = [str(c) for c in found.get("ClientIDList", [])]
    missing = [c for c in provider.client_ids if c not in client_ids]
    if missing:
        return [Finding("error", "oidc.audience_missing",
                        f"the OIDC provider's client ids ({', '.join(client_ids) or 'none'}) lack {', '.join(missing)}: "
                        "STS refuses the broker's ID tokens", f"add the client id {', '.join(missing)} "
                        "(AddClientIDToOpenIDConnectProvider, or redeploy aws-setup)")]
    thumbprints = found.get("ThumbprintList") or []
    note = (f"; its {len(thumbprints)} thumbprint(s) are not compared (AWS validates the issuer's CA itself)"
            if thumbprints else "")
    return [Finding("ok", "provider.ok", f"the OIDC provider accepts the audience {provider.client_ids[0]}{note}", "")]


def _role_checks(iam: Any, trust: AccountTrust, role: RoleTrust) -> list[Check]:
    subject = _subject(role.arn)
    found = _ask(trust.account_id, f"GetRole {role.name}", iam.get_role, RoleName=role.name)
    if found is None:
        return [Check(subject, "error", "role.missing", f"the account has no role {role.name}",
                      "create it with the trust policy aws-setup generates, or remove it from the mapping")]
    actual = found["Role"]
    if actual.get("Path", "/") != role.path:
        return [Check(subject, "error", "role.path_mismatch",
                      f"the role is at path {actual.get('Path')}, not {role.path}: {role.arn} does not exist",
                      f"set the role's path to {actual.get('Path')} in the mapping")]
    federation: FederationPath = "saml" if isinstance(trust.provider, SamlProvider) else "web_identity"
    findings = check_role_trust(actual.get("AssumeRolePolicyDocument", ""), provider_arn=trust.provider.arn,
                                federation=federation, audiences=[role.audience],
                                max_session_duration=int(actual.get("MaxSessionDuration", 3600)),
                                session_cap=role.max_session_duration)
    return [Check.of(subject, finding) for finding in findings]


def _trusts_provider(document: Any, provider_arn: str) -> bool:
    """An Allow statement of this trust policy names the provider as its Federated principal."""
    try:
        policy = parse_policy(document)
    except PolicyError:
        return False
    return any(s.effect == "Allow" and not s.not_principal and provider_arn in s.federated()
               for s in policy.statements)


def _orphans(iam: Any, trust: AccountTrust) -> list[Check]:
    declared = {role.name.lower() for role in trust.roles}  # IAM role names ignore case

    def every_role() -> list[dict[str, Any]]:
        return [role for page in iam.get_paginator("list_roles").paginate() for role in page["Roles"]]

    checks = []
    for found in _ask(trust.account_id, "ListRoles", every_role) or ():
        name = str(found["RoleName"])
        if name.lower() in declared or not _trusts_provider(found.get("AssumeRolePolicyDocument", ""),
                                                           trust.provider.arn):
            continue
        checks.append(Check(
            _subject(str(found["Arn"])), "warning", "role.orphan",
            f"the role {name} trusts the broker's provider but the mapping declares no such role",
            "declare it in the mapping (if a naming rule reaches it) or remove the broker from its trust"))
    return checks
