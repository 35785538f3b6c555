"""The interactive API reference at /docs: Swagger UI served by the broker itself, never from a CDN.

Admins paste admin tokens into this page, so no third-party script runs on the broker's origin:
the Swagger UI bundle and stylesheet come from the ``fastapi-offline`` package (a pinned
Swagger UI 5, which reads OpenAPI 3.1), the start-up script is the broker's own file, and the
page's Content-Security-Policy allows scripts from this origin only (no inline script, no eval).
ReDoc is not offered: its bundle needs inline styles.

``server.docs: false`` turns off /docs, its assets and /openapi.json (``create_app``).
"""

from __future__ import annotations

from functools import cache
from html import escape
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from broker import __version__

router = APIRouter(include_in_schema=False, tags=["documentation"])

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/static"
OPENAPI_PATH = "/openapi.json"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_ASSETS = {
    # name: (package, path inside it, media type)
    "swagger-ui-bundle.js": ("fastapi_offline", "static/swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    "swagger-ui.css": ("fastapi_offline", "static/swagger-ui.css", "text/css; charset=utf-8"),
    "favicon.png": ("fastapi_offline", "static/favicon.png", "image/png"),
    "swagger-init.js": ("broker.web", "static/swagger-init.js", "text/javascript; charset=utf-8"),
}
_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}} · API reference</title>
<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
<link rel="icon" type="image/png" href="{ASSETS_PATH}/favicon.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{OPENAPI_PATH}"></div>
<script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
<script src="{ASSETS_PATH}/swagger-init.js"></script>
</body>
</html>
"""


@cache
def _asset(name: str) -> bytes:
    package, path, _ = _ASSETS[name]
    return resources.files(package).joinpath(path).read_bytes()


@router.get(DOCS_PATH)
def docs() -> HTMLResponse:
    html = _PAGE.replace("{title}", escape(f"Federation broker {__version__}"))
    return HTMLResponse(html, headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store",
                                       "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin"})


@router.get(ASSETS_PATH + "/{name}")
def asset(name: str) -> Response:
    if name not in _ASSETS:
        return Response(status_code=404)
    return Response(_asset(name), media_type=_ASSETS[name][2], headers={"Cache-Control": "public, max-age=3600"})
