"""Every error leaves as JSON ``{"error": {"code", "message", "details"?}, "request_id"}``,
except on the pages a browser opens (routes hidden from the OpenAPI schema: the portal, the
device-login page): there a dependency that is down (Redis, the database, the directory)
answers the portal's "Temporarily unavailable" page, with the same 503.

``details``, when present, always has one shape: a list of ``{"message", "field"?, "code"?,
"value"?}`` objects (``Error`` / ``ErrorDetail`` below, in the OpenAPI schema): one per problem,
``field`` the input it concerns (``alias``, ``document.accounts.0.id``), ``code`` its own stable
code, ``value`` a number or string it is about (a count, a plan hash). Whatever a BrokerError
carries as details (a list of problems, a dict of facts) is put in that shape on the way out.

The token endpoints' RFC 6749 / RFC 8628 errors (broker.oauth.errors) are the exception: they
leave in the RFC 6749 §5.2 shape ``{"error", "error_description"?}``, ``Cache-Control: no-store``
and ``Retry-After`` where they carry one (``oauth_error_response``, the one place).

BrokerError subclasses carry their own code and status. Request validation errors become
400 ``malformed_json`` (the body is not JSON) or 422 with the most specific stable code the
validators raised (``invalid_account_id``, ``invalid_regex``, ...; ``invalid_input`` when they
differ). Anything unexpected is a 500 ``internal_error`` without a stack trace in the answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from broker.errors import BrokerError, MalformedJSON, PayloadTooLarge, Unavailable
from broker.logs import get_logger
from broker.oauth.errors import OAuthError
from broker.web.pages import error_page

log = get_logger("broker.web")

_PYDANTIC_GENERIC = {
    "missing": "missing_field",
    "extra_forbidden": "unknown_field",
    "json_invalid": MalformedJSON.code,
    "model_attributes_type": "invalid_type",
    "dict_type": "invalid_type",
}
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthenticated", 403: "forbidden", 413: PayloadTooLarge.code}


class ErrorDetail(BaseModel):
    message: str
    field: str | None = Field(default=None, description="the input concerned, as a dotted path")
    code: str | None = Field(default=None, description="this problem's own stable code")
    value: str | int | float | bool | None = Field(default=None, description="a value the problem is about")


class ErrorBody(BaseModel):
    code: str = Field(description="stable machine code (README: Error codes)")
    message: str
    details: list[ErrorDetail] | None = None


class Error(BaseModel):
    """Every error answer of the JSON APIs."""

    error: ErrorBody
    request_id: str | None


_DETAIL_KEYS = ("message", "field", "code", "value")


def _scalar(value: Any) -> str | int | float | bool | None:
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def _detail(item: Any) -> dict[str, Any]:
    if isinstance(item, dict) and isinstance(item.get("message"), str):
        return {k: _scalar(item[k]) if k == "value" else item[k] for k in _DETAIL_KEYS if item.get(k) is not None}
    return {"message": str(item)}


def error_details(details: Any) -> list[dict[str, Any]] | None:
    """Any BrokerError's ``details`` in the one documented shape (see the module docstring)."""
    if details is None:
        return None
    if isinstance(details, dict) and not isinstance(details.get("message"), str):
        return [{"field": str(k), "message": f"{k}: {v}", "value": _scalar(v)} for k, v in details.items()]
    if isinstance(details, list | tuple):
        return [_detail(item) for item in details]
    return [_detail(details)]


def error_response(request: Request, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.errors.labels(body["code"]).inc()
    return JSONResponse(
        {"error": body, "request_id": getattr(request.state, "request_id", None)}, status_code=status, headers=headers
    )


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def _error_code(err: Mapping[str, Any]) -> str:
    kind = str(err.get("type", ""))
    if kind == "missing" and tuple(err.get("loc", ())) == ("body",):
        return "missing_body"
    if kind in _PYDANTIC_GENERIC:
        return _PYDANTIC_GENERIC[kind]
    if kind.endswith(("_type", "_parsing")) or kind in ("int_from_float", "bool_parsing"):
        return "invalid_type"
    if kind.startswith(("string_", "greater_", "less_", "too_", "literal_", "union_tag", "enum")) or kind == "value_error":
        return "invalid_value"
    return kind  # one of the broker's own codes (PydanticCustomError)


def validation_details(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic errors as the API's ``details``: ``{"field", "code", "message"}`` each (the admin
    pages show the same messages beside their fields)."""
    return [{"field": _loc(tuple(e.get("loc", ()))), "code": _error_code(e), "message": e.get("msg", "")} for e in errors]


def validation_response(request: Request, errors: Sequence[Mapping[str, Any]]) -> JSONResponse:
    details = validation_details(errors)
    codes = {d["code"] for d in details}
    if MalformedJSON.code in codes:
        return error_response(request, MalformedJSON.status, {"code": MalformedJSON.code, "message": MalformedJSON.message, "details": details})
    code = codes.pop() if len(codes) == 1 else "invalid_input"
    message = details[0]["message"] if len(details) == 1 else f"{len(details)} problems in the request"
    return error_response(request, 422, {"code": code, "message": message, "details": details})


def oauth_error_response(exc: OAuthError) -> JSONResponse:
    """RFC 6749 §5.2: ``{"error", "error_description"?}`` with the error's status and headers."""
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())


def is_page(request: Request) -> bool:
    """A route a browser navigates to (an HTML page), not part of the JSON API."""
    route = request.scope.get("route")
    return route is not None and getattr(route, "include_in_schema", True) is False


def install(app: FastAPI) -> None:
    @app.exception_handler(BrokerError)
    async def _broker_error(request: Request, exc: BrokerError) -> Response:
        if exc.status >= 500:
            log.warning("broker_error", code=exc.code, error=exc.message)
        if isinstance(exc, Unavailable) and is_page(request):
            metrics = getattr(request.app.state, "metrics", None)
            if metrics is not None:
                metrics.errors.labels(exc.code).inc()
            return error_page(request, None, exc)
        body = exc.to_dict()
        if "details" in body:
            body["details"] = error_details(body["details"])
        return error_response(request, exc.status, body, headers=exc.headers)

    @app.exception_handler(OAuthError)
    async def _oauth_error(request: Request, exc: OAuthError) -> JSONResponse:
        return oauth_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_response(request, list(exc.errors()))

    @app.exception_handler(ValidationError)
    async def _model_validation(request: Request, exc: ValidationError) -> JSONResponse:
        # A body validated inside a handler (PATCH merges the change into the current object)
        return validation_response(request, [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()])

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if exc.status_code == 400 and message == "There was an error parsing the body":  # FastAPI's own
            code, message = MalformedJSON.code, "the request body is not valid JSON (UTF-8)"
        return error_response(request, exc.status_code, {"code": code, "message": message}, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled_error", error_type=type(exc).__name__, path=request.url.path, exc_info=exc)
        return error_response(request, 500, {"code": "internal_error", "message": "internal error; quote the request id"})
