"""STS: moto's server as STS for the wire format; AWS error bodies from a stand-in STS for the
translation; DurationSeconds clamping from the broker's own role records."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import botocore.config
import botocore.session
import pytest
from botocore.exceptions import ClientError

from broker import errors
from broker.aws.config import StsConfig
from broker.aws.sts import (
    StsClients,
    StsGateway,
    clamp_duration,
    parse_timestamp,
    translate,
)
from broker.domain import GrantReason
from broker.errors import ChannelNotAllowed
from broker.minting.keys import KeyRing
from broker.minting.saml_idp import SamlIdp
from tests.conftest import free_port
from tests.federation.conftest import ALICE, PUBLIC_URL, make_grant, make_issuer, utcnow, web_grant

ISSUER = PUBLIC_URL


def _gateway(endpoint: str, **options: Any) -> StsGateway:
    return StsGateway(clients=StsClients(config=StsConfig(mode="aws", endpoint_url=endpoint, **options)), issuer=ISSUER)


# ---- moto: the wire format ----


@pytest.mark.sts
def test_assume_role_with_saml_against_moto(moto_sts: str, idp: SamlIdp) -> None:
    grant = make_grant(role_name="Developer", role_max_session=28800)
    seconds = clamp_duration(grant=grant, channel="cli", requested=7200)
    saml = idp.aws_response(identity=ALICE, grants=[grant], session_duration=seconds, now=utcnow())
    creds = _gateway(moto_sts).assume_with_saml(grant=grant, saml_assertion=saml.encoded, duration=seconds)
    assert creds.access_key_id and creds.secret_access_key and creds.session_token
    assert creds.role_arn == "arn:aws:iam::111111111111:role/Developer"
    assert creds.assumed_role_arn == "arn:aws:sts::111111111111:assumed-role/Developer/alice"
    assert creds.expiration.tzinfo is not None
    lifetime = creds.expiration - utcnow()
    assert timedelta(seconds=7200 - 120) < lifetime <= timedelta(seconds=7200 + 5)  # moto reads SessionDuration
    assert creds.secret_access_key not in repr(creds) and creds.session_token not in repr(creds)


@pytest.mark.sts
def test_assume_role_with_web_identity_against_moto(moto_sts: str, keyring: KeyRing) -> None:
    grant = web_grant(role_name="ReadOnly")
    token = make_issuer(keyring).id_token(identity=ALICE, audience=grant.audience or "", now=utcnow())
    creds = _gateway(moto_sts).assume_with_web_identity(grant=grant, token=token, session_name="alice", duration=900)
    assert creds.assumed_role_arn == "arn:aws:sts::222222222222:assumed-role/ReadOnly/alice"
    assert timedelta(seconds=800) < creds.expiration - utcnow() <= timedelta(seconds=905)


@pytest.mark.parametrize(
    "wire, expected",
    [
        ("2026-11-27T23:33:45Z", datetime(2026, 11, 27, 23, 33, 45, tzinfo=UTC)),
        ("2026-11-27T23:33:45.123Z", datetime(2026, 11, 27, 23, 33, 45, 123000, tzinfo=UTC)),
        ("2026-11-28T01:33:45+02:00", datetime(2026, 11, 27, 23, 33, 45, tzinfo=UTC)),
        ("2026-11-27T23:33:45", datetime(2026, 11, 27, 23, 33, 45, tzinfo=UTC)),  # no zone: AWS means UTC
        ("1795822425", datetime(2026, 11, 27, 23, 33, 45, tzinfo=UTC)),  # epoch seconds: botocore's parser
        ("Fri, 27 Nov 2026 23:33:45 GMT", datetime(2026, 11, 27, 23, 33, 45, tzinfo=UTC)),
    ],
)
def test_sts_timestamps_are_read_as_aware_utc(wire: str, expected: datetime) -> None:
    parsed = parse_timestamp(wire)
    assert parsed.tzinfo is not None and parsed == expected


@pytest.mark.sts
def test_one_client_per_partition_and_region_is_reused(moto_sts: str) -> None:
    clients = StsClients(config=StsConfig(mode="aws", endpoint_url=moto_sts))
    a = clients.client("aws", "eu-west-1")
    assert clients.client("aws", "eu-west-1") is a
    assert clients.client("aws", "us-east-1") is not a
    assert clients.client("aws-us-gov", "us-gov-west-1") is not a
    assert a.meta.endpoint_url == moto_sts


def test_without_override_clients_use_each_partitions_regional_endpoint() -> None:
    clients = StsClients(config=StsConfig(mode="aws"))
    assert clients.client("aws", "eu-west-1").meta.endpoint_url == "https://sts.eu-west-1.amazonaws.com"
    assert clients.client("aws-us-gov", "us-gov-west-1").meta.endpoint_url == "https://sts.us-gov-west-1.amazonaws.com"
    assert clients.client("aws-cn", "cn-north-1").meta.endpoint_url == "https://sts.cn-north-1.amazonaws.com.cn"


# ---- DurationSeconds ----


def _reason(console: bool = True, cli: bool = True, cap: int | None = None) -> GrantReason:
    return GrantReason("mapping", "1", "g", console, cli, cap)


@pytest.mark.parametrize(
    "role_max, caps, requested, expected",
    [
        (43200, [None], None, 43200),  # no request: the longest allowed
        (43200, [None], 3600, 3600),  # a shorter request is honoured
        (3600, [None], 43200, 3600),  # never above the role's maximum (AWS would fail the call)
        (43200, [7200], 28800, 7200),  # never above the mapping's cap
        (43200, [7200, 14400], None, 14400),  # the best reason wins
        (43200, [None], 60, 900),  # never below AWS's minimum
    ],
)
def test_duration_is_min_of_request_mapping_cap_and_role_maximum(
    role_max: int, caps: list[int | None], requested: int | None, expected: int
) -> None:
    grant = make_grant(role_max_session=role_max, reasons=tuple(_reason(cap=c) for c in caps))
    assert clamp_duration(grant=grant, channel="cli", requested=requested) == expected


def test_a_channel_the_mapping_does_not_allow_is_refused() -> None:
    grant = make_grant(reasons=(_reason(console=True, cli=False),))
    assert clamp_duration(grant=grant, channel="console") == 43200
    with pytest.raises(ChannelNotAllowed, match="command line"):
        clamp_duration(grant=grant, channel="cli")


# ---- AWS errors, as AWS sends them ----


class StsStandIn:
    """Answers every STS call with one AWS Query-protocol error body; keeps the request bodies."""

    def __init__(self) -> None:
        self.status, self.code, self.message = 400, "InvalidIdentityToken", ""
        self.bodies: list[bytes] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                outer.bodies.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                kind = "Receiver" if outer.status >= 500 else "Sender"
                body = (
                    '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
                    f"<Type>{kind}</Type><Code>{outer.code}</Code><Message>{outer.message}</Message>"
                    "</Error><RequestId>8f3c0b9e-test</RequestId></ErrorResponse>"
                ).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def sts_errors() -> Iterator[StsStandIn]:
    stand_in = StsStandIn()
    yield stand_in
    stand_in.server.shutdown()
    stand_in.server.server_close()


@pytest.mark.parametrize(
    "value",
    [
        "PHNhbWxwOlJlc3BvbnNl+/9z==",  # base64: + / = are escaped
        "plain-._~text",
        "a b&c=d%e#f?g",
        "Zoë Åström 中文 😀",  # non-ASCII: UTF-8, percent-encoded
        "\n\t\x00\x7f",
        "",
    ],
)
def test_the_form_body_is_byte_for_byte_what_botocore_would_send(value: str) -> None:
    from urllib.parse import urlencode

    from broker.aws.sts import form_body

    params = {"Action": "AssumeRoleWithSAML", "SAMLAssertion": value, "DurationSeconds": 3600, value or "k": "v"}
    assert form_body(params).decode("ascii") == urlencode(params, doseq=True)


def test_the_sts_call_on_the_wire_is_botocores_own_encoding(
    sts_errors: StsStandIn, idp: SamlIdp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker encodes the Query body itself (a faster ``urlencode``); what STS receives is
    exactly what a plain botocore client sends for the same call."""
    import botocore.awsrequest

    sts_errors.status, sts_errors.code = 400, "InvalidIdentityToken"
    grant = make_grant(role_name="Developer")
    saml = idp.aws_response(identity=ALICE, grants=[grant], session_duration=3600, now=utcnow())
    sts_errors.bodies.clear()
    with monkeypatch.context() as patched, pytest.raises(errors.StsError):
        patched.setattr(botocore.awsrequest, "urlencode", None)  # botocore's own encoding is not used
        _gateway(sts_errors.url, max_attempts=1).assume_with_saml(grant=grant, saml_assertion=saml.encoded, duration=3600)
    plain = botocore.session.Session().create_client(
        "sts", region_name="us-east-1", endpoint_url=sts_errors.url,
        config=botocore.config.Config(signature_version=botocore.UNSIGNED, retries={"total_max_attempts": 1}),
    )
    with pytest.raises(ClientError):
        plain.assume_role_with_saml(RoleArn=grant.role_arn, PrincipalArn=grant.saml_provider_arn,
                                    SAMLAssertion=saml.encoded, DurationSeconds=3600)
    ours, botocores = sts_errors.bodies
    assert b"%2B" in ours or b"%2F" in ours or b"%3D" in ours  # the assertion's base64 was escaped
    assert ours == botocores


def _model_errors() -> dict[str, int]:
    """Every error the botocore STS model documents for the two calls, with its HTTP status."""
    model = botocore.session.get_session().get_service_model("sts")
    out: dict[str, int] = {}
    for op in ("AssumeRoleWithSAML", "AssumeRoleWithWebIdentity"):
        for shape in model.operation_model(op).error_shapes:
            out[shape.error_code] = shape.metadata.get("error", {}).get("httpStatusCode", 400)
    return out


EXPECTED = {
    "MalformedPolicyDocument": errors.StsInvalidRequest,
    "PackedPolicyTooLarge": errors.StsPolicyTooLarge,
    "IDPRejectedClaim": errors.StsIdpRejectedClaim,
    "InvalidIdentityToken": errors.StsInvalidIdentityToken,
    "ExpiredTokenException": errors.StsExpiredToken,
    "RegionDisabledException": errors.StsRegionDisabled,
    "IDPCommunicationError": errors.StsIdpCommunicationError,
}


def test_every_error_of_the_sts_model_has_a_specific_translation() -> None:
    assert set(_model_errors()) == set(EXPECTED)


@pytest.mark.parametrize("code", sorted(EXPECTED))
@pytest.mark.parametrize("path", ["saml", "web_identity"])
def test_aws_error_bodies_become_broker_errors_naming_role_and_account(
    sts_errors: StsStandIn, code: str, path: str
) -> None:
    sts_errors.status, sts_errors.code, sts_errors.message = _model_errors()[code], code, "aws says no"
    gateway = _gateway(sts_errors.url, max_attempts=1)
    with pytest.raises(errors.StsError) as err:
        if path == "saml":
            gateway.assume_with_saml(grant=make_grant(), saml_assertion="PHNhbWw+" * 2, duration=3600)
        else:
            gateway.assume_with_web_identity(grant=web_grant(), token="x" * 20, session_name="alice", duration=3600)
    assert type(err.value) is EXPECTED[code]
    assert err.value.details["aws_code"] == code and err.value.details["aws_request_id"] == "8f3c0b9e-test"
    if code not in ("PackedPolicyTooLarge", "RegionDisabledException", "MalformedPolicyDocument"):
        assert "role Admin in account" in err.value.message


def test_access_denied_says_which_role_does_not_trust_which_provider(sts_errors: StsStandIn) -> None:
    sts_errors.status, sts_errors.code, sts_errors.message = 403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithSAML"
    gateway = _gateway(sts_errors.url, max_attempts=1)
    with pytest.raises(errors.StsRoleNotTrusted) as err:
        gateway.assume_with_saml(grant=make_grant(), saml_assertion="PHNhbWw+", duration=3600)
    assert err.value.status == 403
    assert err.value.message.startswith(
        "role Admin in account 111111111111 does not trust this broker's SAML provider "
        "arn:aws:iam::111111111111:saml-provider/broker"
    )
    with pytest.raises(errors.StsRoleNotTrusted) as err:
        gateway.assume_with_web_identity(grant=web_grant(), token="x" * 20, session_name="alice", duration=3600)
    assert "role Admin in account 222222222222 does not trust this broker as OIDC provider https://broker.example.com" in err.value.message


@pytest.mark.parametrize(
    "status, code, expected",
    [
        (400, "Throttling", errors.StsThrottled),
        (503, "ServiceUnavailable", errors.StsUnavailable),
        (500, "InternalFailure", errors.StsUnavailable),
        (400, "ValidationError", errors.StsInvalidRequest),
        (400, "SomethingNew", errors.StsError),
    ],
)
def test_throttling_outages_and_unknown_errors(sts_errors: StsStandIn, status: int, code: str, expected: type) -> None:
    sts_errors.status, sts_errors.code = status, code
    sts_errors.message = "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
    with pytest.raises(errors.StsError) as err:
        _gateway(sts_errors.url, max_attempts=1).assume_with_saml(grant=make_grant(), saml_assertion="PHNhbWw+", duration=3600)
    assert type(err.value) is expected
    if code == "ValidationError":
        assert "43200 s for this role" in err.value.message  # points at the broker's role record


def test_an_unreachable_sts_is_unavailable() -> None:
    gateway = _gateway(f"http://127.0.0.1:{free_port()}", max_attempts=1, connect_timeout=1)
    with pytest.raises(errors.StsUnavailable) as err:
        gateway.assume_with_saml(grant=make_grant(), saml_assertion="PHNhbWw+", duration=3600)
    assert err.value.status == 503


def test_translate_takes_botocore_client_errors_built_from_the_model() -> None:
    for code, status in _model_errors().items():
        exc = ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                          "AssumeRoleWithWebIdentity")
        translated = translate(exc, grant=web_grant(), call="AssumeRoleWithWebIdentity", issuer=ISSUER)
        assert type(translated) is EXPECTED[code]
        assert translated.code.startswith("sts_")
