"""STS that hangs: a loopback server that accepts connections and never answers, as the STS endpoint.

What a person notices: the call fails with 503 ``sts_unavailable`` after ``sts.max_attempts``
attempts at most (the first included), and no retry starts that could not end within
``sts.total_timeout``. Times are in bench/faults.py, not here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import anyio.to_thread
import pytest

from broker import errors
from broker.aws.config import StsConfig
from broker.aws.factory import build_aws
from broker.aws.sts import StsClients, StsGateway
from tests.federation.conftest import PUBLIC_URL, make_grant
from tests.hung import HungServer


@pytest.fixture
def hung() -> Iterator[HungServer]:
    server = HungServer()
    yield server
    server.close()


def _gateway(endpoint: str, **options: Any) -> StsGateway:
    config = StsConfig(mode="aws", endpoint_url=endpoint, **options)
    return StsGateway(clients=StsClients(config=config), issuer=PUBLIC_URL)


@pytest.mark.parametrize("attempts", [1, 3])
def test_a_hung_sts_gets_exactly_max_attempts_then_a_503(hung: HungServer, attempts: int) -> None:
    gateway = _gateway(hung.url, max_attempts=attempts, connect_timeout=0.5, read_timeout=0.3)
    with pytest.raises(errors.StsUnavailable) as err:
        gateway.assume_with_saml(grant=make_grant(), saml_assertion="PHNhbWw+", duration=3600)
    assert err.value.status == 503 and err.value.code == "sts_unavailable"
    assert hung.requests == attempts  # "the first included": not one more
    assert hung.connections == attempts


def test_no_retry_starts_that_could_not_end_within_the_total_timeout(hung: HungServer) -> None:
    # one attempt takes up to 0.2 + 0.4 s; 1.0 s leaves room for the first only
    gateway = _gateway(hung.url, max_attempts=5, connect_timeout=0.2, read_timeout=0.4, total_timeout=1.0)
    with pytest.raises(errors.StsUnavailable) as err:
        gateway.assume_with_web_identity(grant=make_grant(), token="x" * 20, session_name="alice", duration=3600)
    assert err.value.code == "sts_unavailable" and "did not answer in time" in err.value.message
    assert hung.requests == 1


def test_total_timeout_must_leave_room_for_one_whole_attempt() -> None:
    with pytest.raises(ValueError, match="one attempt must fit"):
        StsConfig(connect_timeout=3, read_timeout=10, total_timeout=12)


def test_the_sts_connection_pool_holds_one_connection_per_worker_thread() -> None:
    aws = build_aws(config=StsConfig(mode="aws"), public_url=PUBLIC_URL)
    try:
        client = aws.sts.clients.client("aws", "eu-west-1")
        assert client.meta.config.max_pool_connections == _worker_threads()
        assert client.meta.config.retries["total_max_attempts"] == 3
    finally:
        aws.close()


def _worker_threads() -> int:
    """The threads a worker runs blocking routes in: anyio's default limiter (the app keeps it)."""

    async def tokens() -> int:
        return int(anyio.to_thread.current_default_thread_limiter().total_tokens)

    return anyio.run(tokens)


def test_a_credentials_request_against_a_hung_sts_is_a_503_with_its_code(tmp_path, app_factory, hung: HungServer) -> None:
    import base64

    from tests.conftest import make_config
    from tests.portal.conftest import ALICE_PW, sections

    data = sections() | {
        "api": {"password_login": True},
        "sts": {"mode": "sandbox", "endpoint_url": hung.url, "connect_timeout": 0.5, "read_timeout": 0.3,
                "max_attempts": 2},
    }
    client = app_factory(make_config(tmp_path, **data))
    alice = {"Authorization": "Basic " + base64.b64encode(f"alice:{ALICE_PW}".encode()).decode()}
    r = client.post("/api/v1/credentials", json={"account": "sandbox-dev", "role": "Developer"}, headers=alice)
    assert r.status_code == 503 and r.json()["error"]["code"] == "sts_unavailable"
    assert hung.requests == 2
    assert client.get("/healthz").status_code == 200
