"""The ``upstream:`` configuration, the shared helpers, and what never reaches a log."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from broker.config import parse_config
from broker.connectors.upstream import claim, group_list
from broker.errors import ConfigError, UpstreamRejected
from broker.redirects import safe_next
from broker.xml_safety import refuse_unsafe_xml
from tests.upstream.conftest import SECRET, Tamper, oidc_idp, saml_idp

OIDC = {"type": "oidc", "name": "google", "issuer": "https://accounts.google.com", "client_id": "x", "client_secret": "s"}


def problems(**data: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, env={})
    return info.value.problems


def test_upstream_entries_validate(tmp_path: Path) -> None:
    md = tmp_path / "md.xml"
    md.write_text("<x/>")
    config = parse_config({"upstream": [OIDC, {"type": "saml", "name": "adfs", "metadata_file": str(md)}]}, env={})
    google, adfs = config.upstream
    assert google.token_endpoint_auth_method == "client_secret_basic" and google.algorithms == ["RS256", "PS256", "ES256"]
    assert adfs.want_messages_signed is False and adfs.allow_unsolicited is False and adfs.clock_skew_seconds == 120


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ({**OIDC, "issuer": "http://accounts.example.com"}, "upstream[0].issuer: Value error, must be an https://"),
        ({**OIDC, "issuer": "https://a.example.com/?x=1"}, "no query or fragment"),
        ({**OIDC, "name": "Google"}, "upstream[0].name"),
        ({**OIDC, "algorithms": ["HS256"]}, "upstream[0].algorithms"),
        ({**OIDC, "algorithms": ["none"]}, "upstream[0].algorithms"),
        ({**OIDC, "scopes": ["email"]}, "scopes must include openid"),
        ({**OIDC, "token_endpoint_auth_method": "none"}, "client_secret is needed"),
        ({**OIDC, "clock_skew_seconds": 600}, "upstream[0].clock_skew_seconds"),
        ({**OIDC, "surprise": 1}, "upstream[0].surprise"),
        ({"type": "saml", "name": "adfs"}, "exactly one of metadata_file and metadata_url"),
        ({"type": "saml", "name": "adfs", "metadata_url": "http://adfs.example.com/md"}, "must be an https://"),
        ({"type": "saml", "name": "adfs", "metadata_file": "/no/such/file.xml"}, "is not a readable file"),
        ({"type": "kerberos", "name": "k"}, "upstream[0]"),
    ],
)
def test_bad_entries_are_reported_with_their_path(entry: dict[str, Any], fragment: str) -> None:
    found = problems(upstream=[entry])
    assert any(fragment in p for p in found), found


def test_cross_checks() -> None:
    assert any("used twice" in p for p in problems(upstream=[OIDC, OIDC]))
    enrich = {**OIDC, "enrich_from_directory": {"attribute": "mail", "value": "email"}}
    assert any("needs a directory" in p for p in problems(upstream=[enrich]))
    directory = {"type": "static", "name": "google", "users": []}
    assert any("the directory's name too" in p for p in problems(upstream=[OIDC], directory=directory))


def test_http_allowed_for_loopback_only() -> None:
    for host in ("127.0.0.1:9000", "localhost:9000", "[::1]:9000"):
        parse_config({"upstream": [{**OIDC, "issuer": f"http://{host}"}]}, env={})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/", "/"), ("/device?user_code=ABCD-EFGH", "/device?user_code=ABCD-EFGH"), ("/a/b#c", "/a/b#c"),
        ("https://evil.example/", None), ("//evil.example", None), ("/\\evil.example", None), ("\\\\evil", None),
        ("javascript:alert(1)", None), ("/\tevil", None), ("/ evil", None), ("/x\r\nSet-Cookie: a=b", None),
        ("", None), (None, None), ("relative/path", None), ("/" + "a" * 2048, None), ("http:/evil", None),
    ],
)
def test_safe_next(value: str | None, expected: str | None) -> None:
    assert safe_next(value) == expected


def test_claim_paths() -> None:
    claims = {"a.b": 1, "a": {"b": 2, "c": {"d": [3]}}, "https://x.example/groups": ["g"]}
    assert claim(claims, "a.b") == 1  # a name with a dot wins over the path
    assert claim(claims, ["a", "b"]) == 2
    assert claim(claims, "a.c.d") == [3]
    assert claim(claims, "https://x.example/groups") == ["g"]
    assert claim(claims, "a.x.y") is None and claim(claims, "a.c.d.e") is None


def test_group_lists() -> None:
    assert group_list(["a", "b", "a", " c ", "", 5, "bad\x00"]) == ("a", "b", "c")
    assert group_list("one") == ("one",)
    assert group_list(None) == ()
    with pytest.raises(UpstreamRejected):
        group_list({"not": "a list"})
    with pytest.raises(UpstreamRejected):
        group_list(["g"] * 5001)


@pytest.mark.parametrize(
    "doc",
    [
        b'<!DOCTYPE x [<!ENTITY a "b">]><x/>',
        b'<?xml version="1.0"?>\n<!doctype x><x/>',
        b"<x><!ENTITY a 'b'></x>",
        b'<?xml version="1.0" encoding="UTF-16"?><x/>',
        '<x/>'.encode("utf-16"),
        b'<?xml-stylesheet href="http://evil"?><x/>',
    ],
)
def test_unsafe_xml_refused_on_the_bytes(doc: bytes) -> None:
    with pytest.raises(UpstreamRejected):
        refuse_unsafe_xml(doc)


def test_safe_xml_passes() -> None:
    refuse_unsafe_xml(b'<?xml version="1.0" encoding="UTF-8"?><x><![CDATA[<!-- fine -->]]><!-- c --></x>')
    refuse_unsafe_xml(b"\xef\xbb\xbf<x/>")


@pytest.mark.saml_peer
@pytest.mark.oidc_peer
def test_no_assertion_code_token_or_secret_in_the_logs(sso: Any, saml_peer: Any, saml_metadata_file: Path, op1: Any,
                                                      capfd: pytest.CaptureFixture[str],
                                                      caplog: pytest.LogCaptureFixture) -> None:
    app = sso([saml_idp(saml_metadata_file), oidc_idp(op1, "op1")], peer=saml_peer, ops={"op1": op1},
              logging={"level": "debug", "format": "json", "access_log": True})
    seen: dict[str, str] = {}
    tamper = Tamper()
    tamper.token_hook = lambda body: seen.update(id_token=body["id_token"], access_token=body["access_token"]) or body
    app.rebuild("op1", transport=tamper)
    # SAML: a sign-in, then the same response replayed (a refusal is logged too)
    req = app.saml_start()
    response = app.saml_response("alice@example.com", req)
    app.saml_post(response, req.relay_state)
    app.saml_post(response, req.relay_state)
    # OIDC: a sign-in, then the same callback again
    app.client.cookies.clear()
    location = op1.authorize(app.oidc_start("op1"), "alice")
    app.oidc_callback(location)
    app.oidc_callback(location)
    from tests.upstream.conftest import query

    q = query(location)
    out, err = capfd.readouterr()
    text = out + err + caplog.text
    assert "upstream_sign_in" in text  # the logs were captured
    xml = base64.b64decode(response)
    for secret in (response[:80], response[-80:], xml[:200].decode(), q["code"], q["state"], seen["id_token"][:60],
                   seen["id_token"].split(".")[2][:40], seen["access_token"], SECRET, "SAMLResponse="):
        assert secret not in text, secret[:20]


@pytest.mark.parametrize(
    "content",
    [b"<x/>", b'<!DOCTYPE x [<!ENTITY a "b">]><x/>',
     (b'<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example/">'
      b'<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
      b'<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" '
      b'Location="https://idp.example/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>')],
    ids=["not-metadata", "dtd", "no-signing-certificate"],
)
def test_unusable_metadata_file_stops_the_start(app_factory: Any, tmp_path: Path, content: bytes) -> None:
    md = tmp_path / "idp.xml"
    md.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        app_factory(upstream=[{"type": "saml", "name": "adfs", "metadata_file": str(md)}])
    assert "upstream adfs: metadata_file" in str(info.value)


def test_unusable_metadata_names_the_refusal_reason(app_factory: Any, tmp_path: Path) -> None:
    """An XML refusal (UpstreamRejected) in the metadata is named by its reason, not its generic message."""
    md = tmp_path / "idp.xml"
    md.write_bytes(b'<!DOCTYPE x [<!ENTITY a "b">]><x/>')
    with pytest.raises(ConfigError) as info:
        app_factory(upstream=[{"type": "saml", "name": "adfs", "metadata_file": str(md)}])
    assert "dtd_forbidden" in str(info.value)
