"""Console sign-in: getSigninToken POSTed to a stand-in of the AWS federation endpoint that parses
the Session JSON; the login URL; 302 delivery; the SANDBOX page."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from lxml import html as lxml_html

from broker.aws.config import StsConfig
from broker.aws.partitions import partition
from broker.aws.signin import FederationSignin
from broker.domain import TemporaryCredentials
from broker.errors import ConsoleSigninError, ConsoleSigninUnavailable, InvalidInput
from broker.web.portal import console_redirect
from tests.federation.conftest import (
    PUBLIC_URL,
    FederationStandIn,
    LiveBroker,
    capture_logs,
    free_port,
    utcnow,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CREDS = TemporaryCredentials(
    access_key_id="ASIAEXAMPLEKEY12345",
    secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCY'secret$",
    session_token="FwoGZXIvYXdzEXAMPLETOKEN//////////==",
    expiration=NOW + timedelta(hours=1),
    role_arn="arn:aws:iam::111111111111:role/Admin",
)
S3 = partition("aws").console_url(region="eu-west-1", service="s3")


def _signin(endpoint: str) -> FederationSignin:
    return FederationSignin(issuer=PUBLIC_URL, config=StsConfig(mode="aws", federation_endpoint=endpoint, read_timeout=2))


def test_signin_token_is_posted_and_the_login_url_carries_issuer_destination_and_token(
    federation_endpoint: FederationStandIn,
) -> None:
    link = _signin(federation_endpoint.url).console_link(
        credentials=CREDS, partition_name="aws", destination=S3, session_duration=7200, now=NOW
    )
    (request,) = federation_endpoint.requests
    assert request["path"] == "/federation"  # POST: nothing secret in a query string
    assert request["content_type"].startswith("application/x-www-form-urlencoded")
    assert request["form"]["SessionDuration"] == "7200"
    assert json.loads(request["form"]["Session"]) == {
        "sessionId": CREDS.access_key_id, "sessionKey": CREDS.secret_access_key, "sessionToken": CREDS.session_token
    }
    url = urlsplit(link.url)
    assert f"{url.scheme}://{url.netloc}{url.path}" == federation_endpoint.url
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query["Action"] == "login" and query["Issuer"] == PUBLIC_URL and query["Destination"] == S3
    assert federation_endpoint.tokens[query["SigninToken"]]["session"]["sessionId"] == CREDS.access_key_id
    assert CREDS.secret_access_key not in link.url and CREDS.session_token not in link.url
    assert link.expires_at == NOW + timedelta(minutes=15) and link.url not in repr(link)


def test_console_destinations_per_partition() -> None:
    assert S3 == "https://eu-west-1.console.aws.amazon.com/s3/home?region=eu-west-1"
    assert partition("aws").console_url(region="us-east-1") == "https://us-east-1.console.aws.amazon.com/console/home?region=us-east-1"
    assert partition("aws-us-gov").console_url(region="us-gov-west-1", service="ec2") == (
        "https://console.amazonaws-us-gov.com/ec2/home?region=us-gov-west-1"
    )
    assert partition("aws-cn").console_url(region="cn-north-1", service="s3") == "https://console.amazonaws.cn/s3/home?region=cn-north-1"
    assert partition("aws-us-gov").federation_endpoint == "https://signin.amazonaws-us-gov.com/federation"
    assert partition("aws-cn").federation_endpoint == "https://signin.amazonaws.cn/federation"
    assert FederationSignin(issuer=PUBLIC_URL, config=StsConfig()).endpoint("aws") == "https://signin.aws.amazon.com/federation"


def test_a_refusal_of_the_federation_endpoint_is_a_clean_error_without_secrets(federation_endpoint: FederationStandIn) -> None:
    federation_endpoint.fail_with = 400
    with pytest.raises(ConsoleSigninError) as err:
        _signin(federation_endpoint.url).console_link(credentials=CREDS, partition_name="aws", destination=S3,
                                                      session_duration=3600, now=NOW)
    assert err.value.status == 502 and "400" in err.value.message
    assert CREDS.secret_access_key not in str(err.value.to_dict())
    with pytest.raises(ConsoleSigninUnavailable):
        _signin(f"http://127.0.0.1:{free_port()}/federation").console_link(
            credentials=CREDS, partition_name="aws", destination=S3, session_duration=3600, now=NOW)
    with pytest.raises(InvalidInput):
        _signin(federation_endpoint.url).console_link(credentials=CREDS, partition_name="aws", destination=S3,
                                                      session_duration=43201, now=NOW)


def test_the_login_url_is_delivered_by_302_and_never_logged(
    federation_endpoint: FederationStandIn, app_factory: Callable[..., Any]
) -> None:
    client = app_factory()
    with capture_logs() as logged:
        link = _signin(federation_endpoint.url).console_link(credentials=CREDS, partition_name="aws", destination=S3,
                                                             session_duration=3600, now=NOW)
        client.app.add_api_route("/test-console", lambda: console_redirect(link))
        answer = client.get("/test-console", follow_redirects=False)
    assert answer.status_code == 302 and answer.headers["location"] == link.url
    assert answer.headers["cache-control"] == "no-store" and answer.headers["referrer-policy"] == "no-referrer"
    token = parse_qs(urlsplit(link.url).query)["SigninToken"][0]
    text = logged.getvalue()
    assert "/test-console" in text  # the access log line was written...
    for secret in (token, "SigninToken", CREDS.secret_access_key, CREDS.session_token):
        assert secret not in text  # ...without the URL or the credentials


# ---- SANDBOX ----


def test_sandbox_console_page_shows_what_aws_would_receive_with_secrets_masked(
    live_broker: Callable[..., LiveBroker],
) -> None:
    b = live_broker()
    signin = b.app.state.services.aws.signin
    assert signin.sandbox
    link = signin.console_link(credentials=CREDS, partition_name="aws", destination=S3, session_duration=3600, now=utcnow())
    assert link.sandbox and link.url.startswith(b.url + "/sandbox/console/")
    page = httpx.get(link.url)
    assert page.status_code == 200 and "SANDBOX" in page.text
    text = lxml_html.fromstring(page.text).text_content()
    assert "getSigninToken" in text and S3 in text and "https://signin.aws.amazon.com/federation" in text
    assert CREDS.secret_access_key not in page.text and CREDS.session_token not in page.text
    assert CREDS.access_key_id not in page.text and "ASIA…2345" in text
    again = httpx.get(link.url)  # one-time, like a SigninToken
    assert again.status_code == 404 and "SANDBOX" in again.text


def test_sandbox_pages_do_not_exist_outside_the_sandbox(
    live_broker: Callable[..., LiveBroker], key_files: Any, federation_endpoint: FederationStandIn, tmp_path: Path
) -> None:
    b = live_broker(keys=key_files.section(), sts={"mode": "aws", "federation_endpoint": federation_endpoint.url})
    assert httpx.get(b.url + "/sandbox/console/anything").status_code == 404
    assert httpx.post(b.url + "/sandbox/saml", data={"SAMLResponse": "eA=="}).status_code == 404
