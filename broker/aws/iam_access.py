"""Signed AWS clients, one account at a time, for the commands that read or write IAM
(``broker doctor``, ``broker revoke --apply``) or read AWS Organizations (account discovery);
the server's own STS calls stay unsigned.

Credentials are AWS's usual ones: botocore's chain (environment, ``profile``, instance or
container role) — or, with ``assume_role`` (``arn:aws:iam::{account}:role/BrokerDoctor``), that
role in each account, assumed with the chain's credentials and assumed again shortly before
it expires. Without ``assume_role`` the chain's credentials must belong to the account asked
for: GetCallerIdentity checks it once, so IAM of the wrong account is never read as this one's.

Time: every IAM or STS call is bounded like the broker's STS calls (``broker.aws.deadline``):
``max_attempts`` attempts at most, each within connect + read timeout, none started that could
not end within ``total_timeout``. Whatever stops a call becomes an ``AccessProblem`` naming the
account: a finding for that account, not a crash of the whole command.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.session
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from broker.aws.config import IamAccessConfig
from broker.aws.deadline import Deadline, OutOfTime
from broker.aws.partitions import partition

_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
_BAD_CREDENTIALS = frozenset({
    "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException", "SignatureDoesNotMatch",
    "UnrecognizedClientException", "InvalidAccessKeyId", "RequestExpired",
})
SERVICES = ("iam", "sts", "organizations")
"""The services these clients call (each bounded by the deadline hooks)."""
_RENEW_BEFORE = timedelta(minutes=5)
"""An assumed role's credentials are replaced this long before they expire."""


class AccessProblem(Exception):
    """IAM in one account cannot be reached with the configured credentials, and why."""

    def __init__(self, code: str, account_id: str, reason: str, fix: str) -> None:
        super().__init__(f"{account_id}: {reason}")
        self.code, self.account_id, self.reason, self.fix = code, account_id, reason, fix


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def access_problem(exc: BaseException, account_id: str, doing: str) -> AccessProblem | None:
    """The ``AccessProblem`` a botocore error means for one account, or None for any other error
    (``NoSuchEntity`` and the like: the caller's to interpret). ``doing``: the call, for the reason."""
    if isinstance(exc, AccessProblem):
        return exc
    if isinstance(exc, ClientError):
        code = _error_code(exc)
        if code in _DENIED:
            return AccessProblem("access.denied", account_id, f"{doing} was refused: access denied",
                                 "grant the read-only audit role iam:Get*/iam:List* (see the README's BrokerDoctor policy)")
        if code in _BAD_CREDENTIALS:
            return AccessProblem("access.credentials", account_id, f"{doing}: the credentials were refused ({code})",
                                 "renew the AWS credentials this command runs with")
        if code in ("Throttling", "ThrottlingException"):
            return AccessProblem("access.throttled", account_id, f"{doing} was throttled on every attempt",
                                 "run it again later, or for fewer accounts at once")
        return None
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return AccessProblem("access.no_credentials", account_id, "no AWS credentials were found",
                             "set AWS_PROFILE or the AWS_* environment variables, or run where an instance role is")
    if isinstance(exc, OutOfTime | ConnectTimeoutError | ReadTimeoutError | EndpointConnectionError):
        return AccessProblem("access.unreachable", account_id, f"{doing}: IAM or STS did not answer in time",
                             "check the network path to AWS (proxy, VPC endpoints) and run it again")
    if isinstance(exc, BotoCoreError):
        return AccessProblem("access.failed", account_id, f"{doing} failed: {type(exc).__name__}",
                             "run it again; if it persists, check the AWS credentials and endpoint")
    return None


@dataclass
class _Held:
    credentials: dict[str, str] | None
    """An assumed role's (AccessKeyId, SecretAccessKey, SessionToken); None: the chain's."""
    renew_at: datetime | None
    clients: dict[str, Any]


class IamAccess:
    """Clients keyed by account id and service; thread-safe, each built (and its role assumed) once."""

    def __init__(self, config: IamAccessConfig, *, session_name: str,
                 session: botocore.session.Session | None = None) -> None:
        self.config = config
        self.session_name = session_name
        self._session = session or botocore.session.Session(profile=config.profile)
        deadline = Deadline(total=config.total_timeout, attempt=config.connect_timeout + config.read_timeout)
        for service in SERVICES:
            deadline.register(self._session, service)
        self._boto_config = BotoConfig(
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            retries={"mode": "standard", "total_max_attempts": config.max_attempts},
        )
        self._held: dict[str, _Held] = {}
        self._own_account: str | None = None
        self._lock = threading.Lock()
        self._account_locks: dict[str, threading.Lock] = {}
        self._identity_lock = threading.Lock()

    def role_arn(self, account_id: str, partition_name: str) -> str | None:
        template = self.config.assume_role
        return template.format(account=account_id, partition=partition_name) if template else None

    def client(self, account_id: str, partition_name: str = "aws", service: str = "iam") -> Any:
        """A botocore client of ``service`` (iam, organizations) that acts in ``account_id``;
        raises ``AccessProblem``."""
        if service not in SERVICES:
            raise ValueError(f"{service!r} is not one of {SERVICES}")
        with self._lock:
            account_lock = self._account_locks.setdefault(account_id, threading.Lock())
        with account_lock:  # an account's role is assumed once; other accounts go on meanwhile
            held = self._held.get(account_id)
            if held is None or (held.renew_at is not None and datetime.now(UTC) >= held.renew_at):
                held = self._assume(account_id, partition_name)
                self._held[account_id] = held
            client = held.clients.get(service)
            if client is None:
                client = held.clients[service] = self._create(service, partition_name, held.credentials)
            return client

    def _create(self, service: str, partition_name: str, credentials: dict[str, str] | None = None) -> Any:
        keys = credentials or {}
        with self._lock:  # botocore sessions are not thread-safe while creating clients
            return self._session.create_client(
                service, region_name=partition(partition_name).default_region,
                endpoint_url=self.config.endpoint_url, config=self._boto_config,
                aws_access_key_id=keys.get("AccessKeyId"), aws_secret_access_key=keys.get("SecretAccessKey"),
                aws_session_token=keys.get("SessionToken"),
            )

    def _assume(self, account_id: str, partition_name: str) -> _Held:
        arn = self.role_arn(account_id, partition_name)
        if arn is None:
            self._check_own_account(account_id, partition_name)
            return _Held(None, None, {})
        try:
            answer = self._create("sts", partition_name).assume_role(
                RoleArn=arn, RoleSessionName=self.session_name,
                **({"ExternalId": self.config.external_id} if self.config.external_id else {}),
            )
        except (ClientError, BotoCoreError) as exc:
            problem = access_problem(exc, account_id, f"assuming {arn}")
            if problem is None:
                raise AccessProblem("access.assume_failed", account_id,
                                    f"assuming {arn} failed ({_error_code(exc) if isinstance(exc, ClientError) else exc})",
                                    "create the role in the account (see the README) or fix assume_role") from exc
            if problem.code == "access.denied":
                problem.fix = (f"create {arn} trusting the identity this command runs as "
                               "(see the README's BrokerDoctor role), or fix assume_role")
            raise problem from exc
        c = answer["Credentials"]
        expiration: datetime = c["Expiration"]
        keys = {name: c[name] for name in ("AccessKeyId", "SecretAccessKey", "SessionToken")}
        return _Held(keys, expiration.astimezone(UTC) - _RENEW_BEFORE, {})

    def _check_own_account(self, account_id: str, partition_name: str) -> None:
        with self._identity_lock:  # asked once, however many accounts start together
            if self._own_account is None:
                try:
                    identity = self._create("sts", partition_name).get_caller_identity()
                except (ClientError, BotoCoreError) as exc:
                    raise (access_problem(exc, account_id, "GetCallerIdentity")
                           or AccessProblem("access.failed", account_id, f"GetCallerIdentity failed: {exc}",
                                            "check the AWS credentials")) from exc
                self._own_account = str(identity["Account"])
        if self._own_account != account_id:
            raise AccessProblem(
                "access.wrong_account", account_id,
                f"the credentials belong to account {self._own_account}, not {account_id}",
                "set assume_role (arn:aws:iam::{account}:role/BrokerDoctor) to reach every account, "
                "or run with credentials of this account",
            )
