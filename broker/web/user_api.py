"""The user API under /api/v1: who am I, my roles, credentials, a console URL.

Thin: every decision is ``broker.flow.Flow``'s (directory re-read, grants, mint, STS, audit).
Authentication is ``Caller`` (broker.web.deps): the CLI's bearer tokens, portal sessions, or HTTP
Basic with the directory password when ``api.password_login`` is on — resolved inside the
endpoint's worker thread, so one request is one thread hand-off.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from awsbroker import delivery
from broker.mapping.model import MAX_SESSION, MIN_SESSION
from broker.web.deps import CallerDep, ServicesDep, decision_context
from broker.web.errors import Error

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Error, "description": text}
    for status, text in {
        400: "malformed_json, bad_request",
        401: "unauthenticated, invalid_credentials: log in again (awsbroker login)",
        403: "role_not_granted, channel_not_allowed, csrf_failed, sts_role_not_trusted, sts_region_disabled, ...",
        413: "body_too_large",
        422: "missing_field, unknown_field, invalid_type, invalid_value, invalid_input, session_tag_invalid",
        429: "rate_limited (HTTP Basic sign-ins); see Retry-After",
        502: "sts_error and its kinds, console_signin_failed: AWS refused",
        503: "directory_unavailable, storage_unavailable, state_unavailable, sts_unavailable, sts_throttled, ...",
    }.items()
}
"""What the user API can answer besides success (README: Error codes)."""

router = APIRouter(prefix="/api/v1", tags=["user"], responses=ERRORS)


Account = Annotated[str, Field(min_length=1, max_length=63, description="12-digit account id or alias")]
RoleName = Annotated[str, Field(min_length=1, max_length=64)]


class CredentialsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    account: Account
    role: RoleName
    duration_seconds: Annotated[int, Field(ge=MIN_SESSION, le=MAX_SESSION)] | None = None


class CredentialProcess(BaseModel):
    """The AWS CLI ``credential_process`` shape (Version 1)."""

    Version: int = 1
    AccessKeyId: str
    SecretAccessKey: str
    SessionToken: str
    Expiration: str = Field(description="RFC 3339, UTC")


class ConsoleLinkOut(BaseModel):
    url: str = Field(description="the sign-in URL: a bearer credential for 15 minutes; never log it")
    destination: str
    expires_at: str = Field(description="RFC 3339, UTC")


class CliConfigOut(BaseModel):
    """What `awsbroker configure` writes into each profile besides credential_process."""

    sandbox: bool = Field(description="true: the broker issues from its SANDBOX STS (moto), not from AWS")
    endpoint_url: str | None = Field(
        description="sandbox only: the loopback endpoint where the AWS CLI and SDKs reach the sandbox's STS "
                    "(the one that issued the credentials); written as endpoint_url into each profile. "
                    "null for real AWS")


class Me(BaseModel):
    username: str
    id: str = Field(description="the immutable id (SourceIdentity, the ID token's sub)")
    display_name: str
    email: str
    groups: list[str]
    source: str = Field(description="the connector that signed the person in")


class Durations(BaseModel):
    console: int
    cli: int


class MyRole(BaseModel):
    account_id: str
    account_alias: str | None
    environment: str | None
    role_name: str
    role_arn: str
    region: str
    console: bool
    cli: bool
    max_session_duration: Durations = Field(description="seconds, per channel")
    access: str = Field(description="standing, or eligible: request it first (POST /api/v1/requests)")
    mfa_max_age: dict[str, int | None] = Field(
        default_factory=dict, description="step-up MFA, per channel (console, cli): the oldest second factor "
        "issuance accepts (seconds); null: none is needed")


class ConsoleRequest(CredentialsRequest):
    service: Annotated[str, Field(min_length=1, max_length=63)] | None = None
    region: Annotated[str, Field(min_length=1, max_length=32)] | None = None


@router.get("/whoami", summary="The signed-in person, as the directory sees them now", response_model=Me)
def whoami(caller: CallerDep, services: ServicesDep) -> dict[str, Any]:
    current = services.flow.current_identity(caller.identity())
    return {
        "username": current.username,
        "id": current.id,
        "display_name": current.display_name,
        "email": current.email,
        "groups": list(current.groups),
        "source": current.source,
    }


@router.get("/roles", summary="Every account role I may use, with console/CLI permissions and maximum durations",
            response_model=list[MyRole])
def my_roles(caller: CallerDep, services: ServicesDep) -> list[dict[str, Any]]:
    current = services.flow.current_identity(caller.identity())
    return [
        {
            "account_id": g.account_id,
            "account_alias": g.account_alias,
            "environment": g.environment,
            "role_name": g.role_name,
            "role_arn": g.role_arn,
            "region": g.region,
            "console": g.allows("console"),
            "cli": g.allows("cli"),
            "max_session_duration": {"console": g.max_duration("console"), "cli": g.max_duration("cli")},
            "access": "eligible" if g.eligible else "standing",
            "mfa_max_age": {c: g.mfa_max_age(c, services.flow.mfa_default_max_age) for c in ("console", "cli")},
        }
        for g in services.flow.roles_of(current).grants
    ]


@router.get("/cli-config", summary="What the CLI writes into AWS config profiles (the sandbox's STS endpoint)",
            response_model=CliConfigOut)
def cli_config(caller: CallerDep, services: ServicesDep) -> CliConfigOut:
    caller.identity()
    endpoint = services.aws.sandbox_sts_endpoint()
    return CliConfigOut(sandbox=endpoint is not None, endpoint_url=endpoint)


REGION_HEADER = "X-Aws-Region"
"""On a credentials answer: the account's default region (the portal's AWS_REGION); the body stays
the credential_process shape."""


# The issuance endpoints build their JSON themselves and answer it as is: FastAPI's response
# validation and encoding of a dict cost as much as the rest of the web layer (the models
# document the shape).
@router.post("/credentials", summary="Temporary credentials, in the credential_process shape",
             response_model=CredentialProcess,
             responses={200: {"headers": {REGION_HEADER: {"description": "the account's default region",
                                                          "schema": {"type": "string"}}}}})
def credentials(body: CredentialsRequest, request: Request, caller: CallerDep, services: ServicesDep) -> JSONResponse:
    with services.flow.one_audit_write():  # the Basic sign-in, if any, and the issuance
        issued = services.flow.credentials(
            identity=caller.identity(), account=body.account, role=body.role, duration=body.duration_seconds,
            ctx=decision_context(request),
        )
    return JSONResponse(delivery.credential_process(issued.credentials), headers={REGION_HEADER: issued.grant.region})


@router.post("/console", summary="A console sign-in URL (valid 15 minutes; a bearer credential: do not log it)",
             response_model=ConsoleLinkOut)
def console(body: ConsoleRequest, request: Request, caller: CallerDep, services: ServicesDep) -> JSONResponse:
    with services.flow.one_audit_write():  # the Basic sign-in, if any, and the issuance
        link = services.flow.console(
            identity=caller.identity(),
            account=body.account,
            role=body.role,
            service=body.service,
            region=body.region,
            duration=body.duration_seconds,
            ctx=decision_context(request),
        )
    return JSONResponse({"url": link.url, "destination": link.destination, "expires_at": delivery.rfc3339(link.expires_at)})
