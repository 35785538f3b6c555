"""AWS STS AssumeRoleWithSAML and AssumeRoleWithWebIdentity (botocore model sts/2011-06-15).

One thread-safe botocore client per (partition, region), created on first use and reused
(a new session costs ~50 ms, a call ~5 ms). The calls are unsigned: the broker holds no AWS
keys. ``translate`` is the one place where botocore's exceptions become broker errors a person
can act on ("role X in account Y does not trust this broker's SAML provider ...").

Time: ``sts.max_attempts`` attempts at most (botocore "standard" retries, ``total_max_attempts``),
each bounded by connect_timeout + read_timeout, and no retry starts unless it can end within
``sts.total_timeout`` of the call's start (``broker.aws.deadline``: botocore itself has no overall deadline).

A circuit breaker per endpoint (``broker.breaker``; partition, region and endpoint URL): a call that
times out, or ``sts.breaker_failures`` failed calls in a row, open it; while it is open calls fail
at once with 503 ``sts_unavailable``; after ``sts.breaker_open_seconds`` one call is let through as
the probe, and its answer closes the breaker. So a hung STS costs one ``total_timeout``, not one per
request; an endpoint that answers again is used within about ``breaker_open_seconds``.
"""

from __future__ import annotations

import string
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote_plus

import botocore.session
import botocore.utils
from botocore import UNSIGNED
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    HTTPClientError,
    ParamValidationError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from broker import logs
from broker.aws.config import WORKER_THREADS, StsConfig
from broker.aws.deadline import Deadline, OutOfTime
from broker.aws.partitions import partition
from broker.breaker import Breaker, BreakerState, Outcome
from broker.domain import Channel, RoleGrant, TemporaryCredentials
from broker.errors import (
    BrokerError,
    ChannelNotAllowed,
    StsError,
    StsExpiredToken,
    StsIdpCommunicationError,
    StsIdpRejectedClaim,
    StsInvalidIdentityToken,
    StsInvalidRequest,
    StsPolicyTooLarge,
    StsRegionDisabled,
    StsRoleNotTrusted,
    StsThrottled,
    StsUnavailable,
)

log = logs.get_logger("broker.aws")
MIN_DURATION, MAX_DURATION = 900, 43200
Call = Literal["AssumeRoleWithSAML", "AssumeRoleWithWebIdentity"]


def clamp_duration(*, grant: RoleGrant, channel: Channel, requested: int | None = None) -> int:
    """DurationSeconds = min(requested, mapping cap, role maximum), never below AWS's 900 s.

    AWS does not clamp: a DurationSeconds above the role's MaxSessionDuration fails the call,
    so the broker clamps from its own role records (``grant.max_duration`` is min(cap, role max)).
    """
    allowed = grant.max_duration(channel)
    if allowed <= 0:
        raise ChannelNotAllowed(
            f"the mapping does not allow {'the console' if channel == 'console' else 'the command line'} "
            f"for role {grant.role_name} in account {grant.account_id}"
        )
    wanted = allowed if requested is None else min(requested, allowed)
    return max(MIN_DURATION, min(wanted, MAX_DURATION))


class StsClients:
    """botocore STS clients keyed by (partition, region); thread-safe, each built once."""

    def __init__(
        self,
        *,
        config: StsConfig,
        endpoint_url: Callable[[], str | None] | None = None,
        pool_connections: int = WORKER_THREADS,
    ) -> None:
        self._session = botocore.session.Session()
        # STS answers ISO 8601 timestamps: the standard library reads them ~20x faster than
        # botocore's default (dateutil), on every issuance.
        self._session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse_timestamp)
        self._endpoint = endpoint_url or (lambda: config.endpoint_url)
        self._boto_config = BotoConfig(
            signature_version=UNSIGNED,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            # total_max_attempts counts the first attempt; botocore's own "max_attempts" counts retries.
            retries={"mode": "standard", "total_max_attempts": config.max_attempts},
            # One connection per worker thread: a call never waits for a pooled connection.
            max_pool_connections=pool_connections,
        )
        self._clients: dict[tuple[str, str], Any] = {}
        self._breakers: dict[tuple[str, str], Breaker] = {}
        self._breaker_failures, self._breaker_open = config.breaker_failures, config.breaker_open_seconds
        self._lock = threading.Lock()
        # The form body: botocore's urllib encoding walks a SAML assertion byte by byte in Python.
        self._session.register("before-call.sts", _encode_form_body)
        Deadline(total=config.total_timeout, attempt=config.attempt_timeout).register(self._session, "sts")

    def client(self, partition_name: str, region: str) -> Any:
        key = (partition_name, region)
        client = self._clients.get(key)
        if client is None:
            with self._lock:  # botocore sessions are not thread-safe while creating clients
                client = self._clients.get(key)
                if client is None:
                    client = self._session.create_client(
                        "sts", region_name=region, endpoint_url=self._endpoint(), config=self._boto_config
                    )
                    self._breakers[key] = Breaker(
                        "sts", f"{partition_name}/{region} {client.meta.endpoint_url}",
                        failures=self._breaker_failures, open_seconds=self._breaker_open,
                    )
                    self._clients[key] = client
        return client

    @property
    def breaker_open_seconds(self) -> float:
        return self._breaker_open

    def breaker(self, partition_name: str, region: str) -> Breaker:
        """The circuit breaker of the client ``client(partition_name, region)`` (built with it)."""
        breaker = self._breakers.get((partition_name, region))
        if breaker is None:
            self.client(partition_name, region)
            breaker = self._breakers[(partition_name, region)]
        return breaker

    def breakers(self) -> list[BreakerState]:
        """Every endpoint's breaker so far (/readyz, /metrics): one per client built."""
        with self._lock:
            made = list(self._breakers.values())
        return [b.snapshot() for b in made]


_FORM_SAFE = frozenset(string.ascii_letters + string.digits + "_.-~")
_FORM_QUOTE = {c: f"%{c:02X}" for c in range(128) if chr(c) not in _FORM_SAFE} | {ord(" "): "+"}


def form_quote(value: str) -> str:
    """``urllib.parse.quote_plus``, which on Python 3.11 percent-encodes a base64 value (``+``,
    ``/``, ``=``) one byte at a time in Python: ~0.5 ms for a 10 KB SAML assertion. ASCII text
    goes through one ``str.translate`` instead; anything else through ``quote_plus``."""
    return value.translate(_FORM_QUOTE) if value.isascii() else quote_plus(value)


def form_body(params: Mapping[str, Any]) -> bytes:
    """``application/x-www-form-urlencoded``, byte for byte what botocore's ``urlencode`` sends."""
    return "&".join(f"{form_quote(str(k))}={form_quote(str(v))}" for k, v in params.items()).encode("ascii")


def _encode_form_body(**event: Any) -> None:
    """botocore ``before-call`` hook (keywords only): the Query-protocol body dict of its
    ``params``, encoded by ``form_body``."""
    params: dict[str, Any] = event["params"]
    body = params.get("body")
    if isinstance(body, dict):
        params["body"] = form_body(body)


def parse_timestamp(value: Any) -> datetime:
    """botocore timestamp parser: ISO 8601 by ``datetime.fromisoformat`` (no zone: UTC, as AWS
    means it), anything else (epoch seconds, RFC 822) by botocore's own."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return botocore.utils.parse_timestamp(value)


def _credentials(answer: dict[str, Any], grant: RoleGrant) -> TemporaryCredentials:
    c = answer["Credentials"]
    return TemporaryCredentials(
        access_key_id=c["AccessKeyId"],
        secret_access_key=c["SecretAccessKey"],
        session_token=c["SessionToken"],
        expiration=c["Expiration"].astimezone(UTC),
        role_arn=grant.role_arn,
        assumed_role_arn=answer.get("AssumedRoleUser", {}).get("Arn", ""),
        source_identity=answer.get("SourceIdentity"),
    )


class StsGateway:
    """Implements ``broker.aws.CredentialsIssuer`` on botocore."""

    def __init__(self, *, clients: StsClients, issuer: str, saml_recipient: Callable[[RoleGrant], str] | None = None) -> None:
        self.clients = clients
        self.issuer = issuer
        self._recipient = saml_recipient or (lambda g: partition(g.partition).saml_acs)

    def assume_with_saml(self, *, grant: RoleGrant, saml_assertion: str, duration: int) -> TemporaryCredentials:
        """``saml_assertion``: the base64 Response carrying exactly this grant's Role value."""
        if grant.saml_provider_arn is None:
            raise StsInvalidRequest(f"account {grant.account_id} is not set up for SAML federation")
        answer = self._call(
            grant, "AssumeRoleWithSAML",
            RoleArn=grant.role_arn,
            PrincipalArn=grant.saml_provider_arn,
            SAMLAssertion=saml_assertion,
            DurationSeconds=duration,
        )
        return _credentials(answer, grant)

    def assume_with_web_identity(
        self, *, grant: RoleGrant, token: str, session_name: str, duration: int
    ) -> TemporaryCredentials:
        answer = self._call(
            grant, "AssumeRoleWithWebIdentity",
            RoleArn=grant.role_arn,
            RoleSessionName=session_name,
            WebIdentityToken=token,
            DurationSeconds=duration,
        )
        return _credentials(answer, grant)

    def _call(self, grant: RoleGrant, call: Call, **params: Any) -> dict[str, Any]:
        """One STS call through the endpoint's circuit breaker; botocore's errors translated."""
        client = self.clients.client(grant.partition, grant.region)
        breaker = self.clients.breaker(grant.partition, grant.region)
        if not breaker.allow():
            raise StsUnavailable(
                f"AWS STS in {grant.region} is not answering (it failed or timed out just now; the broker "
                f"tries it again within {self.clients.breaker_open_seconds:g} s); try again shortly"
            )
        method = client.assume_role_with_saml if call == "AssumeRoleWithSAML" else client.assume_role_with_web_identity
        with breaker.call() as outcome:
            try:
                answer: dict[str, Any] = method(**params)
            except (ClientError, BotoCoreError) as exc:
                error = translate(exc, grant=grant, call=call, issuer=self.issuer,
                                  recipient=self._recipient(grant) if call == "AssumeRoleWithSAML" else None)
                if isinstance(exc, ParamValidationError):
                    outcome.release()  # never sent
                elif not isinstance(error, StsUnavailable):
                    self._answered(outcome, breaker)  # a refusal is an answer
                elif outcome.fail(timeout=isinstance(exc, (OutOfTime, ReadTimeoutError, ConnectTimeoutError))):
                    log.warning("sts_endpoint_down", endpoint=breaker.target, error_type=type(exc).__name__,
                                retry_seconds=self.clients.breaker_open_seconds)
                raise error from None
        self._answered(outcome, breaker)
        return answer

    @staticmethod
    def _answered(outcome: Outcome, breaker: Breaker) -> None:
        if outcome.succeed():  # (after the block: breaker.call reported it already; this says what it did)
            log.info("sts_endpoint_back", endpoint=breaker.target)


_THROTTLING = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException", "SlowDown"}
_INVALID = {"ValidationError", "InvalidParameterValue", "InvalidParameterCombination", "MissingParameter",
            "MalformedPolicyDocument", "InvalidAction"}


def translate(
    exc: ClientError | BotoCoreError, *, grant: RoleGrant, call: Call, issuer: str, recipient: str | None = None
) -> BrokerError:
    """THE mapping from botocore's exceptions to the broker's StsError family."""
    who = f"role {grant.role_name} in account {grant.account_id}"
    region = grant.region
    if isinstance(exc, ParamValidationError):
        return StsInvalidRequest(f"the broker built an invalid {call} request for {who}: {exc}")
    if isinstance(exc, OutOfTime):
        return StsUnavailable(f"AWS STS in {region} did not answer in time ({exc}); try again shortly")
    if isinstance(exc, (BotoConnectionError, HTTPClientError)) or not isinstance(exc, ClientError):
        return StsUnavailable(f"AWS STS in {region} cannot be reached ({type(exc).__name__}); try again shortly")

    error = exc.response.get("Error", {})
    code = error.get("Code", "") or "Unknown"
    aws_message = error.get("Message", "")
    meta = exc.response.get("ResponseMetadata", {})
    status = meta.get("HTTPStatusCode", 0)
    details = {
        "aws_code": code,
        "aws_message": aws_message,
        "aws_request_id": meta.get("RequestId"),
        "account_id": grant.account_id,
        "role_arn": grant.role_arn,
    }
    saml = call == "AssumeRoleWithSAML"
    provider = grant.saml_provider_arn if saml else f"{issuer} (client id {grant.audience})"
    if code in ("AccessDenied", "AccessDeniedException"):
        if saml:
            text = (f"{who} does not trust this broker's SAML provider {grant.saml_provider_arn}: its trust policy "
                    f"must allow sts:AssumeRoleWithSAML, sts:TagSession and sts:SetSourceIdentity for that provider "
                    f"with saml:aud = {recipient}")
        else:
            text = (f"{who} does not trust this broker as OIDC provider {issuer}: its trust policy must allow "
                    f"sts:AssumeRoleWithWebIdentity, sts:TagSession and sts:SetSourceIdentity for that provider "
                    f"with aud = {grant.audience}")
        return StsRoleNotTrusted(text, details=details)
    if code == "InvalidIdentityToken":
        if saml:
            text = (f"AWS rejected the SAML assertion for {who}: {aws_message}. The IAM SAML provider "
                    f"{grant.saml_provider_arn} must hold this broker's current metadata (GET /saml/metadata); "
                    f"`broker preview-assertion` shows what the broker sends")
        else:
            text = (f"AWS rejected the ID token for {who}: {aws_message}. The account's IAM OIDC provider must be "
                    f"{issuer} with client id {grant.audience}; `broker preview-assertion --format jwt` shows the token")
        return StsInvalidIdentityToken(text, details=details)
    if code in ("ExpiredTokenException", "ExpiredToken"):
        return StsExpiredToken(
            f"AWS found the broker's {'assertion' if saml else 'ID token'} for {who} expired: check the broker's clock (NTP)",
            details=details,
        )
    if code == "IDPRejectedClaim":
        return StsIdpRejectedClaim(
            f"AWS rejected a claim of the broker's {'assertion' if saml else 'ID token'} for {who} "
            f"(provider {provider}): {aws_message}",
            details=details,
        )
    if code == "IDPCommunicationError":
        return StsIdpCommunicationError(
            f"AWS could not fetch {issuer}/.well-known/openid-configuration or its JWKS for {who}: the issuer must be "
            f"reachable from the internet over https",
            details=details,
        )
    if code == "RegionDisabledException":
        return StsRegionDisabled(
            f"STS is not activated in {region} for account {grant.account_id}: an administrator activates it in "
            f"IAM account settings, or the account's default region is changed",
            details=details,
        )
    if code == "PackedPolicyTooLarge":
        return StsPolicyTooLarge(
            f"the session tags for {who} are too large for AWS: configure fewer or shorter session_tags",
            details=details,
        )
    if code in _THROTTLING:
        return StsThrottled(details=details)
    if code in _INVALID:
        hint = ""
        if "DurationSeconds" in aws_message or "MaxSessionDuration" in aws_message:
            hint = (f" (the broker records a maximum session of {grant.role_max_session} s for this role: make it "
                    f"match the role's MaxSessionDuration in IAM)")
        return StsInvalidRequest(f"AWS refused the {call} request for {who}: {aws_message}{hint}", details=details)
    if status >= 500 or code in ("ServiceUnavailable", "InternalFailure", "InternalError"):
        return StsUnavailable(f"AWS STS in {region} failed ({code}); try again shortly", details=details)
    return StsError(f"AWS STS refused {call} for {who}: {code}: {aws_message}", details=details)
