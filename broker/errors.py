"""The broker's error tree.

Every error a user can see is a ``BrokerError``: it carries a stable machine ``code``
and the HTTP ``status`` it maps to, as class attributes (the authlib style). Foreign
exceptions (SQLAlchemy, ldap3, botocore, lxml, httpx, ...) are translated into this tree
in one place per package; a user never sees a stack trace.

    BrokerError
    ├── BadRequest (400)
    │   ├── MalformedJSON            malformed_json
    │   └── InvalidInput (422)       invalid_input
    │       ├── InvalidAccountId     invalid_account_id
    │       ├── InvalidRoleName      invalid_role_name
    │       ├── ReservedRole         reserved_role
    │       ├── InvalidRegex         invalid_regex
    │       ├── UnknownAccount       unknown_account
    │       ├── UnknownRole          unknown_role
    │       └── InvalidImport        invalid_import
    ├── Unauthenticated (401)        unauthenticated
    ├── Forbidden (403)              forbidden
    ├── NotFound (404)               not_found
    ├── Conflict (409)               conflict
    │   ├── Duplicate                duplicate
    │   ├── ReadOnly                 read_only
    │   └── InUse                    in_use
    ├── PayloadTooLarge (413)        body_too_large
    ├── ConfigError                  config_invalid       (start-up only, never HTTP)
    └── Unavailable (503)            unavailable
        └── StorageUnavailable       storage_unavailable
"""

from __future__ import annotations

from typing import Any


class BrokerError(Exception):
    code: str = "internal_error"
    status: int = 500
    message: str = "internal error"
    headers: dict[str, str] | None = None

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        self.message = message or self.message
        self.details = details
        super().__init__(self.message)

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


class UnknownAccount(InvalidInput):
    code, message = "unknown_account", "no such AWS account is registered"


class UnknownRole(InvalidInput):
    code, message = "unknown_role", "no such role is registered in that account"


class InvalidImport(InvalidInput):
    code, message = "invalid_import", "the import document is invalid"


class Unauthenticated(BrokerError):
    code, status, message = "unauthenticated", 401, "authentication required"
    headers = {"WWW-Authenticate": 'Bearer realm="broker"'}


class Forbidden(BrokerError):
    code, status, message = "forbidden", 403, "not allowed"


class NotFound(BrokerError):
    code, status, message = "not_found", 404, "not found"


class Conflict(BrokerError):
    code, status, message = "conflict", 409, "conflict"


class Duplicate(Conflict):
    code, message = "duplicate", "an object with that identity already exists"


class ReadOnly(Conflict):
    code = "read_only"
    message = "this object is declared in the configuration file and is read-only through the API"


class InUse(Conflict):
    code, message = "in_use", "the object is still referenced"


class PayloadTooLarge(BrokerError):
    code, status, message = "body_too_large", 413, "the request body is too large"


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


class Unavailable(BrokerError):
    code, status, message = "unavailable", 503, "a service the broker depends on is unavailable"


class StorageUnavailable(Unavailable):
    code, message = "storage_unavailable", "the database is unavailable"
