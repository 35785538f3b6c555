"""The broker's error tree.

Every error a user can see is a ``BrokerError``: it carries a stable machine ``code``
and the HTTP ``status`` it maps to, as class attributes (the authlib style). Foreign
exceptions (SQLAlchemy, ldap3, botocore, lxml, httpx, ...) are translated into this tree
in one place per package; a user never sees a stack trace.

Every error is raised the same way, message first: ``UpstreamRejected()`` (the class's own
message), ``UpstreamRejected("what the person is told")``, and ``reason=`` for the audit log
only: ``UpstreamRejected(reason="wrong_audience")``. ``reason`` is on every error (None unless
a class or a raise site sets one). RFC 6749 / RFC 8628 answers of the token endpoint are not
in this tree: they are broker.oauth.errors.

    BrokerError
    ├── BadRequest (400)
    │   ├── MalformedJSON            malformed_json
    │   ├── InvalidInput (422)       invalid_input
    │   │   ├── InvalidAccountId     invalid_account_id
    │   │   ├── InvalidRoleName      invalid_role_name
    │   │   ├── ReservedRole         reserved_role
    │   │   ├── InvalidRegex         invalid_regex
    │   │   ├── InvalidPolicyArn     invalid_policy_arn
    │   │   ├── WrongPartition       wrong_partition      (a managed policy ARN of another partition than its account's)
    │   │   ├── ForeignPolicy        foreign_policy       (a customer managed policy of another account)
    │   │   ├── UnknownAccount       unknown_account
    │   │   ├── UnknownRole          unknown_role
    │   │   ├── InvalidImport        invalid_import
    │   │   ├── SessionTagInvalid    session_tag_invalid
    │   │   ├── RevocationTooLarge   revocation_too_large (a role's revocation policy over IAM's inline-policy limit)
    │   │   ├── InvalidCursor        invalid_cursor       (an audit export cursor that this broker did not give)
    │   │   ├── InvalidDuration      invalid_duration     (an access request's duration: seconds or 2h, at least 15 minutes)
    │   │   ├── DurationAbovePolicy  duration_above_policy (longer than the access policy's max_duration)
    │   │   ├── ReasonRequired       reason_required      (the access policy wants a reason)
    │   │   └── TicketInvalid        ticket_invalid       (the access policy wants a ticket id matching its pattern)
    │   ├── SsoRequestInvalid        sso_request_invalid  (unknown, expired, reused or foreign sign-in request: state / InResponseTo)
    │   └── WebAuthnInvalid          webauthn_invalid     (a WebAuthn answer that does not verify; broker.mfa.webauthn)
    │       ├── WebAuthnOrigin       webauthn_origin      (made for another origin than server.public_url's)
    │       ├── WebAuthnChallenge    webauthn_challenge   (a challenge unknown, used, expired or of another session)
    │       ├── WebAuthnUnknownCredential webauthn_unknown_credential (not one of this person's credentials)
    │       └── WebAuthnSignCount    webauthn_sign_count  (the signature counter did not grow: possible clone)
    ├── Unauthenticated (401)        unauthenticated
    │   ├── InvalidCredentials       invalid_credentials  (wrong password, unknown user, disabled/locked/expired: one answer)
    │   └── UpstreamRejected         upstream_rejected    (the IdP's answer was refused; ``reason`` for the audit log only)
    │       ├── UpstreamReplay       upstream_replay      (an assertion ID or a code already used)
    │       ├── UpstreamDenied       upstream_denied      (the IdP said no: error=access_denied, a non-Success status)
    │       └── UpstreamUserUnknown  upstream_user_not_in_directory (directory enrichment found no usable account)
    ├── Forbidden (403)              forbidden
    │   ├── CsrfFailed               csrf_failed          (a form without this session's CSRF token, or cross-origin)
    │   ├── ChannelNotAllowed        channel_not_allowed
    │   ├── RoleNotGranted           role_not_granted
    │   ├── NotEligible              not_eligible         (a request for a role the person is not eligible to)
    │   ├── GrantRequired            grant_required       (an eligible role without an active approved grant: request it)
    │   ├── GrantEnding              grant_ending         (the grant ends in less than STS's 15-minute minimum session)
    │   ├── SelfApproval             self_approval        (approving one's own request)
    │   ├── NotApprover              not_approver         (not in the policy's approver groups now, as the directory says)
    │   ├── BreakGlassUnavailable    break_glass_unavailable (a break-glass sign-in while the directory answers)
    │   ├── MfaRequired              mfa_required         (the role needs a second factor of this sign-in, no older than its max age)
    │   ├── MfaCodeInvalid           mfa_code_invalid     (a TOTP or recovery code that is not one of the person's)
    │   ├── MfaCodeReused            mfa_code_reused      (a TOTP code already used, or a time step no later than the last used)
    │   ├── EnrolmentCodeRequired    enrolment_code_required (a first factor under mfa.enrolment: invite without a code)
    │   └── EnrolmentCodeInvalid     enrolment_code_invalid (an enrolment code wrong, used, expired or another person's)
    ├── NotFound (404)               not_found
    │   ├── UnknownIdentityProvider  unknown_identity_provider
    │   ├── UnknownSnapshot          unknown_snapshot     (no access-review snapshot of that number)
    │   └── UnknownRequest           unknown_request      (no access request of that id that this person may see)
    ├── Conflict (409)               conflict
    │   ├── Duplicate                duplicate
    │   ├── ReadOnly                 read_only
    │   ├── InUse                    in_use
    │   ├── DeletesNotAllowed        deletes_not_allowed  (an import that deletes objects, without allow_deletes=true)
    │   ├── RestoreAccountRemoved    restore_account_removed (a mapping version names an account removed since)
    │   ├── RetentionNotConfigured   retention_not_configured (an audit purge without audit.retention_days)
    │   ├── RequestExists            request_exists       (a pending request or an active grant of that role already)
    │   ├── RequestNotPending        request_not_pending  (approve, deny or cancel of a request already decided)
    │   ├── AlreadyApproved          already_approved     (a second approval by the same approver)
    │   ├── GrantNotActive           grant_not_active     (ending a grant that is not active)
    │   ├── MfaNotEnrolled           mfa_not_enrolled     (a step-up with a factor the person has not enrolled)
    │   └── MfaAlreadyEnrolled       mfa_already_enrolled (enrolling TOTP while one is enrolled: remove it first)
    ├── PayloadTooLarge (413)        body_too_large
    ├── UnsupportedMediaType (415)   unsupported_media_type
    ├── TooManyRequests (429)        rate_limited         (password guessing, user-code guessing; Retry-After)
    ├── ConfigError                  config_invalid       (start-up only, never HTTP)
    │   └── SigningKeyError          signing_key_invalid
    ├── ConfigSyncFailed             config_sync_failed   (start-up only: the file's mapping cannot be applied; details name each object)
    ├── StsError (502)               sts_error            (AWS STS refused; broker.aws.sts.translate)
    │   ├── StsRoleNotTrusted (403)        sts_role_not_trusted
    │   ├── StsInvalidIdentityToken        sts_invalid_identity_token
    │   ├── StsExpiredToken                sts_expired_token
    │   ├── StsIdpRejectedClaim (403)      sts_idp_rejected_claim
    │   ├── StsIdpCommunicationError       sts_idp_communication_error
    │   ├── StsRegionDisabled (403)        sts_region_disabled
    │   ├── StsPolicyTooLarge              sts_policy_too_large
    │   ├── StsInvalidRequest              sts_invalid_request
    │   ├── StsThrottled (503)             sts_throttled
    │   └── StsUnavailable (503)           sts_unavailable
    ├── ConsoleSigninError (502)     console_signin_failed (the AWS federation endpoint refused)
    │   └── ConsoleSigninUnavailable (503) console_signin_unavailable
    └── Unavailable (503)            unavailable
        ├── StorageUnavailable       storage_unavailable
        ├── DirectoryUnavailable     directory_unavailable (LDAP/AD outage; broker.connectors.ldap_pool.translate)
        ├── StateUnavailable         state_unavailable     (Redis outage; broker.state.redis)
        ├── MfaUnavailable           mfa_unavailable       (a stored TOTP secret the configured mfa.encryption_key cannot read)
        ├── UpstreamUnavailable      upstream_unavailable  (the IdP's metadata, discovery, JWKS or token endpoint; broker.connectors.upstream)
        └── ShuttingDown             shutting_down         (a request cut at the shutdown grace period; broker.draining)
"""

from __future__ import annotations

from typing import Any


class BrokerError(Exception):
    """``BrokerError(message=None, *, details=None, reason=None)``: the message a client sees (the
    class's own when None), ``details`` for the answer's ``details`` list, and ``reason``, a
    machine word for the audit log and operators only (never part of the answer)."""

    code: str = "internal_error"
    status: int = 500
    message: str = "internal error"
    headers: dict[str, str] | None = None
    reason: str | None = None

    def __init__(self, message: str | None = None, *, details: Any = None, reason: str | None = None) -> None:
        self.message = message or self.message
        self.details = details
        if reason is not None:
            self.reason = reason
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, reason={self.reason!r})"

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


class BadRequest(BrokerError):
    code, status, message = "bad_request", 400, "bad request"


class MalformedJSON(BadRequest):
    code, message = "malformed_json", "the request body is not valid JSON"


class InvalidInput(BadRequest):
    code, status, message = "invalid_input", 422, "the request is invalid"


class InvalidAccountId(InvalidInput):
    code, message = "invalid_account_id", "an AWS account id is exactly 12 digits"


class InvalidRoleName(InvalidInput):
    code, message = "invalid_role_name", "an IAM role name is 1-64 characters of [A-Za-z0-9+=,.@_-]"


class ReservedRole(InvalidInput):
    code = "reserved_role"
    message = "roles named AWSReservedSSO_* belong to IAM Identity Center and cannot be assumed by federation"


class InvalidRegex(InvalidInput):
    code, message = "invalid_regex", "the naming rule pattern is not usable"


class InvalidPolicyArn(InvalidInput):
    code, message = "invalid_policy_arn", "not a managed policy ARN (arn:<partition>:iam::<account id or aws>:policy/name)"


class WrongPartition(InvalidInput):
    code, message = "wrong_partition", "a managed policy ARN names another partition than its account's"


class ForeignPolicy(InvalidInput):
    code, message = "foreign_policy", "a customer managed policy of another account cannot be attached to this account's roles"


class UnknownAccount(InvalidInput):
    code, message = "unknown_account", "no such AWS account is registered"


class UnknownRole(InvalidInput):
    code, message = "unknown_role", "no such role is registered in that account"


class InvalidImport(InvalidInput):
    code, message = "invalid_import", "the import document is invalid"


class SessionTagInvalid(InvalidInput):
    code, message = "session_tag_invalid", "a directory attribute cannot become an AWS session tag"


class RevocationTooLarge(InvalidInput):
    code, message = "revocation_too_large", "the revocation policy would exceed IAM's limit for a role's inline policies"


class InvalidCursor(InvalidInput):
    code, message = "invalid_cursor", "not a cursor this broker gave (pass the X-Next-Cursor of the previous page)"


class SsoRequestInvalid(BadRequest):
    """A sign-in callback that matches no pending sign-in of this browser: missing, unknown,
    expired or already used ``state`` / ``InResponseTo``, or another browser's. ``reason`` is
    for the audit log only."""

    code, message = "sso_request_invalid", "this sign-in request is unknown, expired or already used: start again"
    reason = "unknown_request"


class Unauthenticated(BrokerError):
    code, status, message = "unauthenticated", 401, "authentication required"
    headers: dict[str, str] | None = {"WWW-Authenticate": 'Bearer realm="broker"'}  # noqa: RUF012 - read, never mutated


class InvalidCredentials(Unauthenticated):
    """One answer for a wrong password, an unknown user and a disabled, locked or expired account.

    A password connector *returns* it (a value: wrong password is not an outage); the web layer
    raises it. ``reason`` says which case it was, for the audit log and operators only: it is
    never part of the answer a client sees.
    """

    code, message = "invalid_credentials", "invalid username or password"
    headers = None
    reason = "invalid_credentials"


class UpstreamRejected(Unauthenticated):
    """The identity provider's answer (SAML Response, authorization response, ID token) was refused.

    ``reason`` (``invalid_signature``, ``wrong_audience``, ``expired``, ``nonce_mismatch``, ...)
    goes to the audit log and to operators only; the answer a client sees names no detail.
    """

    code, message = "upstream_rejected", "the identity provider's answer was refused"
    headers = None
    reason = "rejected"


class UpstreamReplay(UpstreamRejected):
    code, message = "upstream_replay", "this sign-in answer was already used"


class UpstreamDenied(UpstreamRejected):
    code, message = "upstream_denied", "the identity provider did not sign you in"


class UpstreamUserUnknown(UpstreamRejected):
    code, message = "upstream_user_not_in_directory", "your account is not usable in the directory"


class Forbidden(BrokerError):
    code, status, message = "forbidden", 403, "not allowed"


class CsrfFailed(Forbidden):
    code, message = "csrf_failed", "the form is stale or did not come from this site: reload the page and try again"


class ChannelNotAllowed(Forbidden):
    code, message = "channel_not_allowed", "the mapping does not allow this role on this channel (console or CLI)"


class RoleNotGranted(Forbidden):
    code, message = "role_not_granted", "you are not entitled to that role"


class NotFound(BrokerError):
    code, status, message = "not_found", 404, "not found"


class UnknownIdentityProvider(NotFound):
    code, message = "unknown_identity_provider", "no identity provider of that name is configured"


class UnknownSnapshot(NotFound):
    code, message = "unknown_snapshot", "no access-review snapshot of that number"


class Conflict(BrokerError):
    code, status, message = "conflict", 409, "conflict"


class Duplicate(Conflict):
    code, message = "duplicate", "an object with that identity already exists"


class ReadOnly(Conflict):
    code = "read_only"
    message = "this object is declared in the configuration file and is read-only through the API"


class InUse(Conflict):
    code, message = "in_use", "the object is still referenced"


class DeletesNotAllowed(Conflict):
    code = "deletes_not_allowed"
    message = "the import would delete objects the document does not mention; apply it with allow_deletes=true"


class RestoreAccountRemoved(Conflict):
    code = "restore_account_removed"
    message = "the version names an account that was removed since; register it again first"


class RetentionNotConfigured(Conflict):
    code = "retention_not_configured"
    message = "audit.retention_days is not set: the audit trail is kept forever, nothing to purge"


class PayloadTooLarge(BrokerError):
    code, status, message = "body_too_large", 413, "the request body is too large"


class UnsupportedMediaType(BrokerError):
    code, status, message = "unsupported_media_type", 415, "the request body's Content-Type is not accepted here"


class TooManyRequests(BrokerError):
    """A rate limit (broker.ratelimit): the window decays by itself; ``retry_after`` seconds."""

    code, status, message = "rate_limited", 429, "too many attempts; wait a few minutes and try again"

    def __init__(self, message: str | None = None, *, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))
        self.headers = {"Retry-After": str(self.retry_after)}


class ConfigError(BrokerError):
    """Start-up only: the configuration file is invalid. ``details`` lists every problem."""

    code, status, message = "config_invalid", 500, "the configuration is invalid"

    def __init__(self, problems: list[str], *, source: str = "") -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        text = f"{where}{len(problems)} problem(s) in the configuration:\n" + "\n".join(
            f"  - {p}" for p in problems
        )
        super().__init__(text, details=problems)


class ConfigSyncFailed(BrokerError):
    """Start-up only: the configuration file's mapping cannot be brought into the database
    (an alias already used by an API account, ...). ``details`` lists every problem, each naming
    its object; nothing was changed."""

    code, status, message = "config_sync_failed", 500, "the configuration file's mapping cannot be applied to the database"


class SigningKeyError(ConfigError):
    """Start-up only: a signing key or certificate file is missing, unreadable, too open or unusable."""

    code = "signing_key_invalid"


class StsError(BrokerError):
    """AWS STS refused an AssumeRoleWith* call; ``details`` carries AWS's code, message and request id."""

    code, status, message = "sts_error", 502, "AWS STS refused the request"


class StsRoleNotTrusted(StsError):
    code, status, message = "sts_role_not_trusted", 403, "the role does not trust this broker"


class StsInvalidIdentityToken(StsError):
    code, message = "sts_invalid_identity_token", "AWS rejected the broker's SAML assertion or ID token"


class StsExpiredToken(StsError):
    code, message = "sts_expired_token", "AWS considers the broker's assertion or token expired (check clocks)"


class StsIdpRejectedClaim(StsError):
    code, status, message = "sts_idp_rejected_claim", 403, "AWS rejected a claim of the broker's assertion or token"


class StsIdpCommunicationError(StsError):
    code, message = "sts_idp_communication_error", "AWS could not fetch the broker's OIDC keys"


class StsRegionDisabled(StsError):
    code, status, message = "sts_region_disabled", 403, "STS is not activated in that region for the account"


class StsPolicyTooLarge(StsError):
    code, message = "sts_policy_too_large", "the session tags and policies are too large for AWS"


class StsInvalidRequest(StsError):
    code, message = "sts_invalid_request", "AWS STS refused the request as invalid"


class StsThrottled(StsError):
    code, status, message = "sts_throttled", 503, "AWS STS is throttling the broker; try again shortly"
    headers = {"Retry-After": "5"}  # noqa: RUF012 - read, never mutated


class StsUnavailable(StsError):
    code, status, message = "sts_unavailable", 503, "AWS STS cannot be reached"


class ConsoleSigninError(BrokerError):
    code, status, message = "console_signin_failed", 502, "the AWS federation endpoint refused the console sign-in"


class ConsoleSigninUnavailable(ConsoleSigninError):
    code, status, message = "console_signin_unavailable", 503, "the AWS federation endpoint cannot be reached"


class Unavailable(BrokerError):
    code, status, message = "unavailable", 503, "a service the broker depends on is unavailable"


class StorageUnavailable(Unavailable):
    code, message = "storage_unavailable", "the database is unavailable"


class DirectoryUnavailable(Unavailable):
    code, message = "directory_unavailable", "the directory (LDAP / Active Directory) is unavailable"


class StateUnavailable(Unavailable):
    code, message = "state_unavailable", "the shared state store (Redis) is unavailable"


class MfaUnavailable(Unavailable):
    code, message = ("mfa_unavailable", ("your authenticator app's secret cannot be read here (the broker's "
                     "mfa.encryption_key is missing or changed): ask an administrator"))


class UpstreamUnavailable(Unavailable):
    code, message = "upstream_unavailable", "the identity provider cannot be reached"


# ---- just-in-time access (broker.jit) ----


class InvalidDuration(InvalidInput):
    code, message = "invalid_duration", "a duration is seconds or e.g. 2h, 90m, 1h30m, at least 15 minutes"


class DurationAbovePolicy(InvalidInput):
    code, message = "duration_above_policy", "the duration is longer than the role's access policy allows"


class ReasonRequired(InvalidInput):
    code, message = "reason_required", "the role's access policy wants a reason for the request"


class TicketInvalid(InvalidInput):
    code, message = "ticket_invalid", "the role's access policy wants a ticket id of its pattern"


class NotEligible(Forbidden):
    code, message = "not_eligible", "you are not eligible to request that role"


class GrantRequired(Forbidden):
    code, message = "grant_required", "the role is eligible, not standing: request it and have it approved first"


class GrantEnding(Forbidden):
    code, message = "grant_ending", "your grant of that role ends in less than 15 minutes (the shortest AWS session)"


class SelfApproval(Forbidden):
    code, message = "self_approval", "no one approves their own request"


class NotApprover(Forbidden):
    code, message = "not_approver", "you are not in an approver group of that role's access policy"


class UnknownRequest(NotFound):
    code, message = "unknown_request", "no access request of that id"


class RequestExists(Conflict):
    code, message = "request_exists", "you already have a pending request or an active grant of that role"


class RequestNotPending(Conflict):
    code, message = "request_not_pending", "the request is no longer pending"


class AlreadyApproved(Conflict):
    code, message = "already_approved", "you have already approved this request"


class GrantNotActive(Conflict):
    code, message = "grant_not_active", "the grant is not active"


# ---- step-up MFA (broker.mfa) ----


class MfaRequired(Forbidden):
    code, message = "mfa_required", "this needs a second factor proved in this sign-in: step up and try again"


class MfaCodeInvalid(Forbidden):
    code, message = "mfa_code_invalid", "that code is not right"


class MfaCodeReused(Forbidden):
    code, message = "mfa_code_reused", "that code was already used: wait for the next one"


class MfaNotEnrolled(Conflict):
    code, message = "mfa_not_enrolled", "you have not enrolled that second factor"


class MfaAlreadyEnrolled(Conflict):
    code, message = "mfa_already_enrolled", "an authenticator app is already enrolled: remove it first"


# ---- first-factor enrolment (broker.mfa.enrolment) ----


class EnrolmentCodeRequired(Forbidden):
    code, message = ("enrolment_code_required",
                     "setting up your first second factor needs an enrolment code from an admin")


class EnrolmentCodeInvalid(Forbidden):
    code, message = "enrolment_code_invalid", "that enrolment code is not right, used or expired: ask an admin for a new one"


class ShuttingDown(Unavailable):
    code, message = "shutting_down", "this broker process is shutting down and could not finish the request in time; retry it"


# ---- WebAuthn / passkeys as a step-up factor (broker.mfa.webauthn, broker.mfa.passkeys) ----


class WebAuthnInvalid(BadRequest):
    code, message = "webauthn_invalid", "the security key's or passkey's answer could not be verified: try again"


class WebAuthnOrigin(WebAuthnInvalid):
    code, message = "webauthn_origin", "the passkey answered a page of another site than this broker's address"


class WebAuthnChallenge(WebAuthnInvalid):
    code, message = "webauthn_challenge", "that passkey request is unknown, used or expired: start again"


class WebAuthnUnknownCredential(WebAuthnInvalid):
    code, message = "webauthn_unknown_credential", "that security key or passkey is not registered to you"


class WebAuthnSignCount(WebAuthnInvalid):
    code, message = "webauthn_sign_count", "the security key's use counter went back: it may have been cloned"


# ---- break-glass accounts (broker.break_glass) ----


class BreakGlassUnavailable(Forbidden):
    code, message = ("break_glass_unavailable",
                     "break-glass sign-in is only open while the company directory is unavailable: sign in normally")
