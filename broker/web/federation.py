"""Federation endpoints AWS reads (SAML metadata, OIDC discovery and JWKS) and the SANDBOX
console page; the 302 to a console login URL is the portal's (``broker.web.portal.console_redirect``)."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from broker.aws.sandbox import (
    SANDBOX_CONSOLE_PATH,
    SandboxConsole,
    pretty,
)
from broker.errors import NotFound
from broker.minting.oidc_issuer import DISCOVERY_PATH, JWKS_PATH
from broker.web.deps import ServicesDep

router = APIRouter(tags=["federation"])

_templates = Environment(loader=PackageLoader("broker.web", "templates"), autoescape=select_autoescape(default=True))
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache", "Referrer-Policy": "no-referrer"}


def _inline_policy(template: str, tag: str) -> str:
    """A Content-Security-Policy that allows exactly the one inline <script> or <style> of ``template`` (by hash)."""
    loader = _templates.loader
    assert loader is not None
    source = loader.get_source(_templates, template)[0]
    match = re.search(rf"<{tag}>(.*?)</{tag}>", source, re.DOTALL)
    assert match is not None, f"{template} has no inline <{tag}>"
    digest = base64.b64encode(hashlib.sha256(match.group(1).encode()).digest()).decode()
    directive = "script-src" if tag == "script" else "style-src"
    return (f"default-src 'none'; {directive} 'sha256-{digest}'; frame-ancestors 'none'; base-uri 'none'; "
            "object-src 'none'")


_SANDBOX_HEADERS = _NO_STORE | {"Content-Security-Policy": _inline_policy("sandbox_console.html", "style")}
_PUBLIC = {"Cache-Control": "public, max-age=300"}


@router.get("/saml/metadata", summary="SAML IdP metadata to upload with IAM CreateSAMLProvider")
def saml_metadata(services: ServicesDep) -> Response:
    return Response(services.minting.saml.metadata(), media_type="application/samlmetadata+xml", headers=_PUBLIC)


@router.get(DISCOVERY_PATH, summary="OpenID Connect discovery for the IAM OIDC provider")
def openid_configuration(services: ServicesDep) -> JSONResponse:
    return JSONResponse(services.minting.oidc.discovery(), headers=_PUBLIC)


@router.get(JWKS_PATH, summary="The published signing keys (current and next)")
def jwks(services: ServicesDep) -> JSONResponse:
    return JSONResponse(services.minting.oidc.jwks(), headers=_PUBLIC)




def _sandbox_page(title: str, sections: list[tuple[str, str]] | None, message: str = "", status: int = 200) -> HTMLResponse:
    html = _templates.get_template("sandbox_console.html").render(
        title=title, view=sections is not None, sections=sections or [], message=message
    )
    return HTMLResponse(html, status_code=status, headers=_SANDBOX_HEADERS)


def _sandbox(services: ServicesDep) -> SandboxConsole:
    signin = services.aws.signin
    if not isinstance(signin, SandboxConsole):
        raise NotFound()
    return signin


@router.get(SANDBOX_CONSOLE_PATH + "{link_id}", include_in_schema=False)
def sandbox_console(link_id: str, services: ServicesDep) -> HTMLResponse:
    view = _sandbox(services).take(link_id, now=datetime.now(UTC))
    if view is None:
        return _sandbox_page("AWS console sign-in", None, "This sign-in link is unknown, used or expired "
                             "(AWS login URLs are valid 15 minutes).", status=404)
    return _sandbox_page(
        "AWS console sign-in",
        [
            (f"1. POST {view.federation_endpoint}", pretty(view.get_signin_token)),
            ("2. The browser is sent (302) to the login URL with", pretty(view.login)),
            ("The role session", pretty({"role_arn": view.role_arn, "expiration": view.expiration})),
        ],
    )
