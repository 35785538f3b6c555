"""The AWS side: STS calls and the console sign-in, per partition.

The interface, for the flow (``broker.aws.factory.build_aws`` builds the implementations once):

- ``CredentialsIssuer`` — ``sts.StsGateway``: AssumeRoleWithSAML / AssumeRoleWithWebIdentity,
  one reused client per (partition, region), AWS errors translated in ``sts.translate``.
- ``ConsoleSignin`` — ``signin.FederationSignin`` (AWS) or ``sandbox.SandboxConsole`` (SANDBOX):
  a console login URL from temporary credentials.

Pure helpers: ``partitions`` (ARNs, ACS/recipients, audiences, endpoints), ``sts.clamp_duration``,
``trust`` (each account's IAM provider and role trust policies, from the mapping),
``cloudformation`` (that trust as a template, for ``broker aws-setup``), ``trust_policy`` (an IAM
trust policy evaluated for one request) and ``trust_check`` (a role's trust findings). Signed IAM
per account: ``iam_access``; on it ``doctor`` (``broker doctor``'s read-only checks per account),
``doctor_report`` (its table and JSON) and ``doctor_cache`` (the admin API's, cached per account).
This package imports neither FastAPI, ``broker.web`` nor ``broker.db``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from broker.domain import ConsoleLink, RoleGrant, TemporaryCredentials


class CredentialsIssuer(Protocol):
    def assume_with_saml(self, *, grant: RoleGrant, saml_assertion: str, duration: int) -> TemporaryCredentials: ...

    def assume_with_web_identity(
        self, *, grant: RoleGrant, token: str, session_name: str, duration: int
    ) -> TemporaryCredentials: ...


class ConsoleSignin(Protocol):
    sandbox: bool

    def console_link(
        self,
        *,
        credentials: TemporaryCredentials,
        partition_name: str,
        destination: str,
        session_duration: int,
        now: datetime,
    ) -> ConsoleLink: ...
