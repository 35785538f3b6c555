"""AWS IAM User Guide id_roles_providers_enable-console-custom-url: console sign-in by federation.

1. ``getSigninToken`` by POST (credentials stay out of URLs and logs) to the partition's
   federation endpoint, with the Session JSON and SessionDuration.
2. A login URL ``<endpoint>?Action=login&Issuer=...&Destination=...&SigninToken=...``, valid
   15 minutes: a bearer credential, delivered by 302 and never logged.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from urllib.parse import quote, urlencode

import httpx

from broker.aws.config import StsConfig
from broker.aws.partitions import partition
from broker.domain import ConsoleLink, TemporaryCredentials
from broker.errors import ConsoleSigninError, ConsoleSigninUnavailable, InvalidInput

LOGIN_URL_LIFETIME = timedelta(minutes=15)
MIN_SESSION, MAX_SESSION = 900, 43200


def session_json(credentials: TemporaryCredentials) -> str:
    return json.dumps(
        {
            "sessionId": credentials.access_key_id,
            "sessionKey": credentials.secret_access_key,
            "sessionToken": credentials.session_token,
        }
    )


def login_url(*, endpoint: str, issuer: str, destination: str, signin_token: str) -> str:
    query = urlencode(
        {"Action": "login", "Issuer": issuer, "Destination": destination, "SigninToken": signin_token},
        quote_via=quote,
    )
    return f"{endpoint}?{query}"


class FederationSignin:
    """Implements ``broker.aws.ConsoleSignin`` against the AWS federation endpoint (or an override)."""

    sandbox = False

    def __init__(self, *, issuer: str, config: StsConfig, transport: httpx.BaseTransport | None = None) -> None:
        self.issuer = issuer
        self.endpoint_override = config.federation_endpoint
        self._http = httpx.Client(
            timeout=httpx.Timeout(config.read_timeout, connect=config.connect_timeout),
            follow_redirects=False,
            transport=transport,
        )

    def endpoint(self, partition_name: str) -> str:
        return self.endpoint_override or partition(partition_name).federation_endpoint

    def signin_token(self, *, credentials: TemporaryCredentials, partition_name: str, session_duration: int) -> str:
        if not MIN_SESSION <= session_duration <= MAX_SESSION:
            raise InvalidInput(f"a console session is {MIN_SESSION}-{MAX_SESSION} seconds, not {session_duration}")
        endpoint = self.endpoint(partition_name)
        try:
            answer = self._http.post(
                endpoint,
                data={
                    "Action": "getSigninToken",
                    "SessionDuration": str(session_duration),
                    "Session": session_json(credentials),
                },
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise ConsoleSigninUnavailable(
                f"the AWS federation endpoint {endpoint} cannot be reached ({type(exc).__name__})"
            ) from None
        if answer.status_code != 200:
            # AWS answers 400 for expired or non-AssumeRole credentials; the body is not shown (HTML, may echo input)
            raise ConsoleSigninError(
                f"the AWS federation endpoint refused the sign-in (HTTP {answer.status_code})",
                details={"http_status": answer.status_code},
            )
        try:
            token = answer.json()["SigninToken"]
        except (ValueError, KeyError, TypeError):
            raise ConsoleSigninError("the AWS federation endpoint answered without a SigninToken") from None
        if not isinstance(token, str) or not token:
            raise ConsoleSigninError("the AWS federation endpoint answered without a SigninToken")
        return token

    def console_link(
        self,
        *,
        credentials: TemporaryCredentials,
        partition_name: str,
        destination: str,
        session_duration: int,
        now: datetime,
    ) -> ConsoleLink:
        token = self.signin_token(credentials=credentials, partition_name=partition_name, session_duration=session_duration)
        url = login_url(endpoint=self.endpoint(partition_name), issuer=self.issuer, destination=destination, signin_token=token)
        return ConsoleLink(url=url, destination=destination, expires_at=now + LOGIN_URL_LIFETIME)

    def close(self) -> None:
        self._http.close()
