"""SECURITY.md "secrets in logs": every secret a portal / device-login / CLI-token session handles
is used once at debug level, then the captured log is searched for each of them."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from broker.app import create_app
from tests.conftest import make_config
from tests.federation.conftest import capture_logs
from tests.portal.conftest import ALICE_PW, DEVICE_GRANT, csrf_of, sections

pytestmark = pytest.mark.sts


def test_no_secret_reaches_the_logs(tmp_path):
    secrets: dict[str, str] = {"password": ALICE_PW, "wrong password": "alice-wrong-pw-zz9"}
    data = sections() | {"api": {"password_login": True}, "logging": {"level": "debug", "format": "json"}}
    with capture_logs() as logged:
        app = create_app(make_config(tmp_path, **data), env={}, configure_logging=False)
        client = TestClient(app, follow_redirects=False)
        try:
            page = client.get("/login")
            secrets["login form cookie"] = client.cookies["broker-login"]
            secrets["login csrf"] = csrf_of(page.text)
            client.post("/login", data={"username": "alice", "password": secrets["wrong password"],
                                        "csrf_token": secrets["login csrf"]})
            client.post("/login", data={"username": "alice", "password": ALICE_PW, "csrf_token": secrets["login csrf"]})
            secrets["session"] = client.cookies["broker"]
            csrf = secrets["csrf"] = csrf_of(client.get("/").text)

            console = client.post("/console", data={"account": "sandbox-dev", "role": "Admin", "csrf_token": csrf})
            secrets["console url"] = console.headers["location"]
            secrets["sandbox link id"] = console.headers["location"].rsplit("/", 1)[1]
            page = client.post("/cli-credentials", data={"account": "sandbox-dev", "role": "Developer", "csrf_token": csrf})
            assert page.status_code == 200

            grant = client.post("/oauth/device/authorization", data={"client_id": "awsbroker"}).json()
            secrets["device code"] = grant["device_code"]
            client.post("/device", data={"user_code": grant["user_code"], "decision": "approve", "csrf_token": csrf})
            app.state.services.access.set_clock(lambda: __import__("time").time() + 5)
            tokens = client.post("/oauth/token", data={"grant_type": DEVICE_GRANT, "device_code": grant["device_code"],
                                                       "client_id": "awsbroker"}).json()
            secrets["access token"], secrets["refresh token"] = tokens["access_token"], tokens["refresh_token"]
            rotated = client.post("/oauth/token", data={"grant_type": "refresh_token", "client_id": "awsbroker",
                                                        "refresh_token": tokens["refresh_token"]}).json()
            secrets["rotated refresh token"] = rotated["refresh_token"]
            client.cookies.clear()
            creds = client.post("/api/v1/credentials", json={"account": "sandbox-dev", "role": "Admin"},
                                headers={"Authorization": f"Bearer {rotated['access_token']}"}).json()
            secrets["SecretAccessKey"], secrets["SessionToken"] = creds["SecretAccessKey"], creds["SessionToken"]
            password_grant = client.post("/oauth/token", data={"grant_type": "password", "username": "alice",
                                                               "password": ALICE_PW, "client_id": "awsbroker"}).json()
            secrets["password-grant token"] = password_grant["access_token"]
            client.post("/oauth/revoke", data={"token": rotated["refresh_token"]})
        finally:
            client.close()
            app.state.services.aws.close()
            app.state.services.engine.dispose()
    text = logged.getvalue()
    assert '"event": "request"' in text  # the log was captured at all
    leaked = [name for name, value in secrets.items() if value and value in text]
    assert leaked == []
