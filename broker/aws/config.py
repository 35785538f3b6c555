"""Configuration of the AWS side: the `sts:` section (STS calls and the console federation endpoint)
and the signed IAM access of `broker doctor` (`doctor:`) and `broker revoke` (`revoke:`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from broker.aws.partitions import PartitionName
from broker.mapping.model import Federation, Region, RoleSpec, SamlFederation

_URL = r"^https?://[^\s?#]+$"
_ASSUME_ROLE = r"^arn:(\{partition\}|aws[a-z-]*):iam::(\{account\}|\d{12}):role/([\w+=,.@/-]|\{account\}|\{partition\})+$"
"""A role ARN whose only braces are the two placeholders ``str.format`` fills in (IAM names have none)."""

WORKER_THREADS = 40
"""Threads one worker process runs blocking steps in: anyio's default thread limiter, which the
app leaves as it is (every plain ``def`` route and dependency takes one of its 40 tokens).
Each STS client's connection pool holds as many connections, so no issuance waits for one."""


class StsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["aws", "sandbox"] = "sandbox"
    """sandbox: moto's STS in-process and a local console page, labelled SANDBOX (needs the
    `sandbox` extra); aws: the real AWS STS and federation endpoints (requires `keys:`)."""
    endpoint_url: Annotated[str, Field(pattern=_URL)] | None = None
    """Send every STS call here instead of the partition's regional endpoint (tests, VPC endpoints)."""
    sandbox_port: Annotated[int, Field(ge=0, le=65535)] = 0
    """sandbox mode: the port on 127.0.0.1 where moto's STS (the one the broker issues from) serves
    the AWS CLI and SDKs too; `awsbroker configure` writes http://127.0.0.1:<port> into the profiles
    as endpoint_url. 0: any free port, chosen at the first STS call (the broker tells the CLI)."""
    federation_endpoint: Annotated[str, Field(pattern=_URL)] | None = None
    """Use this URL instead of https://signin.<partition host>/federation for getSigninToken and the login URL."""
    connect_timeout: Annotated[float, Field(gt=0, le=60)] = 3.0
    """Seconds to open a connection to STS or the federation endpoint."""
    read_timeout: Annotated[float, Field(gt=0, le=120)] = 10.0
    """Seconds to wait for an answer from STS or the federation endpoint."""
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    """STS attempts per call, the first included (botocore "standard" retries ``total_max_attempts``:
    throttling, 5xx, connection errors and timeouts are retried)."""
    total_timeout: Annotated[float, Field(gt=0, le=600)] = 15.0
    """Seconds one STS call may take, retries included: a retry starts only if it can end
    (connect_timeout + read_timeout) within this time of the call's start, else the call fails
    with 503 ``sts_unavailable``. At least connect_timeout + read_timeout (one whole attempt). The
    only excess is botocore's backoff pause before a retry that then does not start (jittered,
    exponential: at most 0.05 x 2^(n-1) s after a timeout or 5xx, 2^(n-1) s after throttling)."""
    breaker_failures: Annotated[int, Field(ge=1, le=100)] = 3
    """Consecutive failed STS calls (refused, 5xx after retries) that open the circuit breaker of that
    endpoint (partition, region, endpoint URL): calls then fail at once with 503 ``sts_unavailable``.
    A call that timed out (``total_timeout``, a read or connect timeout) opens it at once."""
    breaker_open_seconds: Annotated[float, Field(ge=0.1, le=300)] = 1.0
    """Seconds an open breaker refuses calls; then ONE call goes through as a probe (the others are
    still refused): its success closes the breaker, its failure opens it again for this long."""

    @model_validator(mode="after")
    def _one_attempt_fits(self) -> StsConfig:
        if self.total_timeout < self.attempt_timeout:
            raise ValueError(
                f"total_timeout ({self.total_timeout:g} s) must be at least connect_timeout + read_timeout "
                f"({self.attempt_timeout:g} s): one attempt must fit"
            )
        return self

    @property
    def attempt_timeout(self) -> float:
        """The longest one attempt can take: opening the connection, then waiting for the answer."""
        return self.connect_timeout + self.read_timeout


class IamAccessConfig(BaseModel):
    """How a command reaches IAM in each mapped account (signed calls; the server never makes them).

    Credentials: botocore's chain (environment, ``profile``, instance or container role) — or, with
    ``assume_role``, the credentials of that role in each account, assumed with the chain's. The
    broker itself still holds no AWS keys.
    """

    model_config = ConfigDict(extra="forbid")

    assume_role: Annotated[str, Field(pattern=_ASSUME_ROLE)] | None = None
    """The role to assume in each account, ``{account}`` (and ``{partition}``) filled in, e.g.
    ``arn:aws:iam::{account}:role/BrokerDoctor``. None: the chain's credentials call IAM directly."""
    external_id: Annotated[str, Field(min_length=2, max_length=1224)] | None = None
    """The ExternalId the assumed role's trust policy asks for, if any."""
    profile: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    """A named profile of the AWS config files (default: the environment's, then ``default``)."""
    endpoint_url: Annotated[str, Field(pattern=_URL)] | None = None
    """Send the IAM and STS calls here (tests: moto's server)."""
    connect_timeout: Annotated[float, Field(gt=0, le=60)] = 3.0
    read_timeout: Annotated[float, Field(gt=0, le=120)] = 10.0
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    total_timeout: Annotated[float, Field(gt=0, le=600)] = 20.0
    """Seconds one IAM or STS call may take, retries included (as ``sts.total_timeout``)."""

    @model_validator(mode="after")
    def _one_attempt_fits(self) -> IamAccessConfig:
        if self.total_timeout < self.connect_timeout + self.read_timeout:
            raise ValueError(f"total_timeout ({self.total_timeout:g} s) must be at least connect_timeout + "
                             f"read_timeout ({self.connect_timeout + self.read_timeout:g} s): one attempt must fit")
        return self


class DoctorConfig(IamAccessConfig):
    """`broker doctor` and GET /api/v1/admin/doctor: read-only IAM calls in each account."""

    cache_seconds: Annotated[int, Field(ge=0, le=86400)] = 300
    """How long the admin API reuses an account's result before asking IAM again (0: never reuse)."""
    run_timeout: Annotated[float, Field(gt=0, le=3600)] = 120.0
    """Seconds one doctor run may spend starting accounts: an account not started by then is
    reported ``access.not_checked`` (those already started end within their own call bounds)."""


OU_OR_ROOT = r"^(ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}|r-[0-9a-z]{4,32})$"
"""Organizations' OrganizationalUnitId / RootId patterns (the API reference)."""


class OrgRegistration(BaseModel):
    """How `broker org discover --apply` registers an account it finds that the mapping lacks."""

    model_config = ConfigDict(extra="forbid")

    ous: list[Annotated[str, Field(pattern=OU_OR_ROOT)]] = Field(default_factory=list)
    """Only accounts under these OUs (nested OUs included) or the root; empty: the whole organization."""
    federation: Federation = Field(default_factory=SamlFederation)
    default_region: Region | None = None
    roles: list[RoleSpec] = Field(default_factory=list)
    """The roles every registered account declares (their trust comes from `broker aws-setup`)."""
    environment_tag: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    """The account tag whose value becomes the account's `environment` (e.g. `env`)."""


class OrganizationsConfig(IamAccessConfig):
    """`organizations:`: discover the accounts (with their OUs and tags) from AWS Organizations."""

    management_account: Annotated[str, Field(pattern=r"^\d{12}$")]
    """The management account, or a delegated administrator for Organizations, that discovery reads."""
    partition: PartitionName = "aws"
    discovery_timeout: Annotated[float, Field(gt=0, le=3600)] = 300.0
    """Seconds one whole discovery may take (every call included); past it, it stops with an error."""
    registration: OrgRegistration | None = None
    """What a newly discovered account is registered with; None: discovery only reports."""

    @model_validator(mode="after")
    def _registration_fits_any_account(self) -> OrganizationsConfig:
        """The template must make a valid account of any id in the partition: its region and its
        roles' managed policies (AWS managed ones only: a customer policy names one account)."""
        reg = self.registration
        if reg is None:
            return self
        from pydantic import ValidationError

        from broker.mapping.model import AccountSpec

        try:
            AccountSpec(id="000000000000", partition=self.partition, federation=reg.federation,
                        default_region=reg.default_region, roles=list(reg.roles))
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                where = ".".join(["registration", *(str(part) for part in error["loc"])])
                text = ("a customer managed policy belongs to one account: a registration template may name "
                        "AWS managed policies only (arn:<partition>:iam::aws:policy/...)"
                        if error["type"] == "foreign_policy" else error["msg"])
                problems.append(f"{where}: {text}")
            raise ValueError("; ".join(problems)) from None
        return self
