"""SECURITY.md, resource and deployment rows: no third-party script on the broker's origin
(/docs served by the broker, a CSP on every page), nothing that carries credentials or a sign-in
URL cached by a browser or proxy, no Host header reflected into a redirect."""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import urlsplit

import pytest

from tests.portal.conftest import DEVICE_GRANT, csrf_of, sign_in

pytestmark = pytest.mark.sts

EVIL = "evil.example"


def assert_no_store(response, what: str) -> None:
    assert response.headers.get("cache-control") == "no-store", what
    assert response.headers.get("pragma") == "no-cache", what
    assert response.headers.get("x-content-type-options") == "nosniff", what


# ---- /docs: Swagger UI from the broker itself ----


def test_docs_load_only_from_the_broker_under_a_strict_policy(portal):
    page = portal.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(urls) == 4 and all(u.startswith("/docs/static/") for u in urls), urls  # nothing from another host
    assert "//" not in "".join(urls) and "cdn" not in html.lower()
    assert all(' src="' in tag for tag in re.findall(r"<script[^>]*>", html)) and "</script>" in html
    assert re.search(r"<script>\s*\S", html) is None  # no inline script at all
    kinds = {"swagger-ui-bundle.js": "text/javascript", "swagger-init.js": "text/javascript",
             "swagger-ui.css": "text/css", "favicon.png": "image/png"}
    for url in urls:
        asset = portal.get(url)
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kinds[url.rsplit("/", 1)[1]]), url
        assert asset.headers["x-content-type-options"] == "nosniff"
    assert b"SwaggerUIBundle" in portal.get("/docs/static/swagger-ui-bundle.js").content
    assert portal.get("/docs/static/../../broker.db").status_code == 404
    assert portal.get("/docs/static/redoc.standalone.js").status_code == 404  # only what the page uses
    assert portal.get("/redoc").status_code == 404
    assert portal.get("/openapi.json").json()["openapi"].startswith("3.")


def test_docs_can_be_turned_off(build):
    app = build(server={"docs": False})
    for path in ("/docs", "/docs/static/swagger-ui-bundle.js", "/docs/static/swagger-init.js", "/openapi.json", "/redoc"):
        assert app.get(path).status_code == 404, path
    assert app.get("/healthz").status_code == 200
    assert "/api/v1/credentials" in app.app.openapi()["paths"]  # the schema itself still exists for tests and tools


# ---- a Content-Security-Policy on every page ----


def test_every_html_page_has_a_content_security_policy(portal):
    for path in ("/login", "/docs"):
        r = portal.get(path)
        assert r.headers["content-type"].startswith("text/html") and "content-security-policy" in r.headers, path
    sign_in(portal)
    csrf = csrf_of(portal.get("/").text)
    pages = [portal.get("/"), portal.get("/device"), portal.get("/device", params={"user_code": "BBBB-BBBB"}),
             portal.post("/cli-credentials", data={"account": "sandbox-dev", "role": "Admin", "csrf_token": csrf}),
             portal.post("/favorites", data={"account": "x", "role": "y", "csrf_token": "forged"})]
    console = portal.post("/console", data={"account": "sandbox-dev", "role": "Admin", "csrf_token": csrf})
    pages.append(portal.get(urlsplit(console.headers["location"]).path))  # the SANDBOX console page
    pages.append(portal.get("/sandbox/console/unknown"))
    for r in pages:
        assert r.headers["content-type"].startswith("text/html"), r.url
        policy = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy, r.url
        for block in re.findall(r"<(script|style)>(.*?)</\1>", r.text, re.DOTALL):  # inline blocks: allowed by hash only
            digest = base64.b64encode(hashlib.sha256(block[1].encode()).digest()).decode()
            assert f"'sha256-{digest}'" in policy, r.url


# ---- Cache-Control: no-store on whatever carries credentials or a sign-in URL ----


def test_credentials_sign_in_urls_and_tokens_are_never_cached(portal, clock):
    grant = portal.post("/oauth/device/authorization", data={"client_id": "awsbroker"})
    assert_no_store(grant, "device authorization")
    sign_in(portal)
    csrf = csrf_of(portal.get("/").text)
    portal.post("/device", data={"user_code": grant.json()["user_code"], "decision": "approve", "csrf_token": csrf})
    clock.advance(2)
    tokens = portal.post("/oauth/token", data={"grant_type": DEVICE_GRANT, "client_id": "awsbroker",
                                                "device_code": grant.json()["device_code"]})
    assert tokens.status_code == 200
    assert_no_store(tokens, "token response")
    refreshed = portal.post("/oauth/token", data={"grant_type": "refresh_token", "client_id": "awsbroker",
                                                   "refresh_token": tokens.json()["refresh_token"]})
    assert refreshed.status_code == 200
    assert_no_store(refreshed, "refresh")
    api = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    creds = portal.post("/api/v1/credentials", json={"account": "sandbox-dev", "role": "Admin"}, headers=api)
    assert creds.status_code == 200 and creds.json()["SecretAccessKey"]
    assert_no_store(creds, "/api/v1/credentials")
    link = portal.post("/api/v1/console", json={"account": "sandbox-dev", "role": "Admin"}, headers=api)
    assert link.status_code == 200 and link.json()["url"]
    assert_no_store(link, "/api/v1/console")
    for path in ("/api/v1/whoami", "/api/v1/roles"):
        assert_no_store(portal.get(path, headers=api), path)
    assert_no_store(portal.get("/api/v1/roles", headers={"Authorization": "Bearer nope"}), "a refusal")
    # the portal: the Console button's 302 to the sign-in URL, the command-line credentials page
    console = portal.post("/console", data={"account": "sandbox-dev", "role": "Admin", "csrf_token": csrf})
    assert console.status_code == 302
    assert_no_store(console, "portal console redirect")
    page = portal.post("/cli-credentials", data={"account": "sandbox-dev", "role": "Admin", "csrf_token": csrf})
    assert page.status_code == 200 and "AWS_SECRET_ACCESS_KEY" in page.text
    assert_no_store(page, "portal credentials page")


def test_public_documents_stay_cacheable_and_are_not_sniffed(portal):
    for path in ("/saml/metadata", "/.well-known/jwks.json", "/docs/static/swagger-ui.css"):
        r = portal.get(path)
        assert r.status_code == 200 and r.headers["cache-control"].startswith("public"), path
        assert r.headers["x-content-type-options"] == "nosniff", path
    assert portal.get("/healthz").headers["x-content-type-options"] == "nosniff"


# ---- the Host header never reaches a Location ----


def test_a_foreign_host_header_is_not_reflected_into_any_redirect(portal):
    host = {"Host": EVIL}
    for path in ("/api/v1/roles/", "/healthz/", "/docs/", "/api/v1/admin/accounts/", "/login/", "/device/"):
        r = portal.get(path, headers=host)
        assert EVIL not in r.headers.get("location", ""), path
        assert r.status_code == 404, path  # no slash redirects at all
    r = portal.get("/", headers=host)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/"
    r = portal.get("/device?user_code=BBBB-BBBB", headers=host)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/device")
    grant = portal.post("/oauth/device/authorization", data={"client_id": "awsbroker"}, headers=host).json()
    assert grant["verification_uri"] == "http://127.0.0.1:8000/device"  # server.public_url, not the Host
    page = portal.get("/login", headers=host)
    r = portal.post("/login", data={"username": "alice", "password": "alice-portal-pw-1", "csrf_token": csrf_of(page.text),
                                    "next": "/"}, headers=host)
    assert r.status_code == 303 and r.headers["location"] == "/"
    csrf = csrf_of(portal.get("/", headers=host).text)
    console = portal.post("/console", data={"account": "sandbox-dev", "role": "Admin", "csrf_token": csrf}, headers=host)
    assert console.status_code == 302 and console.headers["location"].startswith("http://127.0.0.1:8000/sandbox/")
    r = portal.post("/logout", data={"csrf_token": csrf}, headers=host)
    assert r.status_code == 303 and r.headers["location"] == "/login"
