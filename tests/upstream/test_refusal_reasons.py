"""An upstream refusal's ``reason=`` goes to the audit log and its message (first argument) to the
person: ``UpstreamRejected("x")`` says "x", ``UpstreamRejected(reason="y")`` audits "y" and says
the class's own message."""

from __future__ import annotations

from typing import Any

import pytest

from broker.errors import UpstreamDenied, UpstreamRejected
from tests.upstream.conftest import Sso

pytestmark = pytest.mark.saml_peer


def _refuse_with(saml: Sso, monkeypatch: pytest.MonkeyPatch, error: Exception) -> Any:
    def refuse(form: Any, *, binding: str | None, now: float | None = None) -> Any:
        raise error

    monkeypatch.setattr(saml.services.upstream["corp-saml"], "handle_post", refuse)
    req = saml.saml_start()
    return saml.saml_post(saml.saml_response("alice@example.com", req), req.relay_state)


def test_the_reason_keyword_reaches_the_audit_log_and_never_the_answer(saml: Sso, monkeypatch: pytest.MonkeyPatch) -> None:
    r = _refuse_with(saml, monkeypatch, UpstreamRejected(reason="audience_of_another_sp"))
    saml.assert_refused(r, "upstream_rejected", reasons="audience_of_another_sp")
    assert r.json()["error"]["message"] == UpstreamRejected.message
    assert "audience_of_another_sp" not in r.text


def test_the_first_argument_is_what_the_person_reads(saml: Sso, monkeypatch: pytest.MonkeyPatch) -> None:
    r = _refuse_with(saml, monkeypatch, UpstreamDenied("your IdP account is suspended", reason="status_not_success"))
    saml.assert_refused(r, "upstream_denied", reasons="status_not_success")
    assert r.json()["error"]["message"] == "your IdP account is suspended"


def test_a_real_refusal_audits_its_reason_with_the_default_message(saml: Sso) -> None:
    req = saml.saml_start()
    r = saml.saml_post("not base64 at all!", req.relay_state)
    saml.assert_refused(r, "upstream_rejected", reasons="not_base64")
    assert r.json()["error"]["message"] == UpstreamRejected.message  # not "not_base64"


def test_a_refusal_shown_as_a_page_is_counted_like_a_json_one(saml: Sso) -> None:
    """broker_errors_total counts the refusals a browser reads as a page too (the services' metrics)."""
    req = saml.saml_start()
    r = saml.client.post("/sso/corp-saml/saml/acs", data={"SAMLResponse": "not base64 at all!", "RelayState": req.relay_state},
                         headers={"Accept": "text/html"})
    assert r.status_code == 401 and "Sign-in failed" in r.text
    assert saml.client.get("/metrics").text.count('broker_errors_total{code="upstream_rejected"} 1.0') == 1
