"""``require_mfa`` / ``mfa_max_age`` travel like ``access``: the config file, the admin API's
views and writes, export, explain, the API's refusal of issuance; least demanding reason wins."""

from __future__ import annotations

from broker.domain import GrantReason, RoleGrant
from tests.conftest import ADMIN_TOKEN
from tests.mfa.conftest import mfa_sections
from tests.portal.conftest import ALICE_PW, BOB_PW, build, clock  # noqa: F401  (fixtures)

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _grant(*reasons: GrantReason) -> RoleGrant:
    return RoleGrant("111111111111", None, "aws", "eu-west-1", None, "saml", "broker", None, "Admin", "/", 3600,
                     reasons)


def _reason(**kw: object) -> GrantReason:
    return GrantReason("mapping", "1", "ops", True, True, None, **kw)  # type: ignore[arg-type]


def test_the_least_demanding_reason_wins():
    assert _grant(_reason(require_mfa=True)).mfa_max_age("cli", 43200) == 43200
    assert _grant(_reason(require_mfa=True), _reason(mfa_max_age=600)).mfa_max_age("cli", 43200) == 43200
    assert _grant(_reason(mfa_max_age=900), _reason(mfa_max_age=600)).mfa_max_age("cli", 43200) == 900
    assert _grant(_reason(mfa_max_age=600), _reason()).mfa_max_age("cli", 43200) is None
    console_only = GrantReason("mapping", "2", "ops", True, False, None)
    assert _grant(_reason(mfa_max_age=600), console_only).mfa_max_age("cli", 43200) == 600


def test_the_option_travels_through_the_admin_api_export_and_explain(app_factory):
    client = app_factory(**mfa_sections())
    mappings = client.get("/api/v1/admin/mappings", headers=ADMIN).json()["items"]
    dev_admin = next(m for m in mappings if m["group"] == "aws-admins" and m["account"] == "111111111111")
    assert dev_admin["require_mfa"] is True and dev_admin["mfa_max_age"] is None
    prod_ro = next(m for m in mappings if m["group"] == "developers" and m["role"] == "ReadOnly")
    assert prod_ro["mfa_max_age"] == 3600

    exported = client.get("/api/v1/admin/export", params={"format": "json"}, headers=ADMIN).json()
    plain = next(m for m in exported["mappings"] if m["role"] == "Developer")
    assert "require_mfa" not in plain and "mfa_max_age" not in plain  # as before the option existed
    assert next(m for m in exported["mappings"] if m["role"] == "ReadOnly")["mfa_max_age"] == 3600

    explained = client.post("/api/v1/admin/explain", json={"username": "alice", "groups": ["aws-admins"]},
                            headers=ADMIN).json()
    reasons = [r for g in explained["grants"] if g["account_id"] == "111111111111" for r in g["reasons"]]
    assert reasons[0]["require_mfa"] is True

    made = client.post("/api/v1/admin/mappings", headers=ADMIN,
                       json={"group": "qa", "account": "sandbox-dev", "role": "Developer", "mfa_max_age": 1800})
    assert made.status_code == 201, made.text
    assert made.json()["mfa_max_age"] == 1800
    too_short = client.post("/api/v1/admin/mappings", headers=ADMIN,
                            json={"group": "qa2", "account": "sandbox-dev", "role": "Developer", "mfa_max_age": 5})
    assert too_short.status_code == 422


def test_the_user_api_refuses_an_mfa_role_without_a_second_factor_and_audits_it(app_factory):
    data = mfa_sections()
    data["api"] = {"password_login": True}
    client = app_factory(**data)
    refused = client.post("/api/v1/credentials", auth=("bob", BOB_PW),
                          json={"account": "sandbox-prod", "role": "ReadOnly"})
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "mfa_required"
    by_field = {d["field"]: d["value"] for d in error["details"]}
    assert by_field["mfa_max_age"] == 3600 and by_field["step_up_url"].endswith("/mfa/step-up")
    roles = {(r["account_alias"], r["role_name"]): r["mfa_max_age"]
             for r in client.get("/api/v1/roles", auth=("bob", BOB_PW)).json()}
    assert roles[("sandbox-prod", "ReadOnly")] == {"console": 3600, "cli": 3600}
    assert roles[("sandbox-dev", "Developer")] == {"console": None, "cli": None}
    plain = client.post("/api/v1/credentials", auth=("alice", ALICE_PW),
                        json={"account": "sandbox-dev", "role": "Developer"})
    assert plain.status_code == 200  # a role without the option: as before
    events = client.get("/api/v1/admin/audit", params={"action": "issue.credentials"}, headers=ADMIN).json()["items"]
    deny = next(e for e in events if e["outcome"] != "allow")
    assert deny["details"]["code"] == "mfa_required" and "access_key_id" not in deny["details"]


def test_the_access_report_says_each_reasons_mfa(app_factory):
    client = app_factory(**mfa_sections())
    report = client.get("/api/v1/admin/reports/access", params={"format": "json"}, headers=ADMIN)
    assert report.status_code == 200, report.text
    rows = {(r["username"], r["account_alias"], r["role_name"]): r["mfa"] for r in report.json()["rows"]}
    assert rows[("alice", "sandbox-dev", "Admin")] == "required"
    assert rows[("bob", "sandbox-prod", "ReadOnly")] == "3600"
    assert rows[("bob", "sandbox-dev", "Developer")] == ""


def test_editing_a_mapping_on_the_admin_pages_keeps_its_mfa(build, admin_headers):  # noqa: F811
    from tests.portal.conftest import csrf_of, sign_in

    client = build(admin={"directory_groups": ["aws-admins"]})
    assert sign_in(client).status_code == 303
    made = client.post("/api/v1/admin/mappings", headers=admin_headers,
                       json={"group": "qa", "account": "sandbox-dev", "role": "Developer", "mfa_max_age": 1800})
    ref = made.json()["id"]
    page = client.get(f"/admin/mappings/{ref}")
    data = {"csrf_token": csrf_of(page.text), "group": "qa", "target": "account", "account": "sandbox-dev",
            "role": "Developer", "console": "on", "cli": "on", "session_duration": "1800"}
    assert client.post(f"/admin/mappings/{ref}", data=data).status_code == 303
    api = client.get(f"/api/v1/admin/mappings/{ref}", headers=admin_headers).json()
    assert (api["session_duration"], api["mfa_max_age"]) == (1800, 1800)  # the form's edit, and the MFA kept


def test_an_eligible_mapping_beside_a_standing_one_widens_nothing(app_factory):
    """A standing mapping with require_mfa (sandbox-dev Admin) and one without the CLI (sandbox-prod
    Admin); an admin adds eligible mappings of the same roles for another of her groups: the standing
    rules still hold — the eligible reason is not in force, nobody requested it."""
    data = mfa_sections()
    data["api"] = {"password_login": True}
    data["jit"] = {"policies": {"p": {"approver_groups": ["approvers"], "max_duration": "1h"}}}
    client = app_factory(**data)
    for account in ("sandbox-dev", "sandbox-prod"):
        made = client.post("/api/v1/admin/mappings", headers=ADMIN, json={
            "group": "developers", "account": account, "role": "Admin", "access": "eligible", "policy": "p"})
        assert made.status_code == 201, made.text
    mfa = client.post("/api/v1/credentials", auth=("alice", ALICE_PW), json={"account": "sandbox-dev", "role": "Admin"})
    assert mfa.status_code == 403 and mfa.json()["error"]["code"] == "mfa_required", mfa.text
    cli = client.post("/api/v1/credentials", auth=("alice", ALICE_PW), json={"account": "sandbox-prod", "role": "Admin"})
    assert cli.status_code == 403 and cli.json()["error"]["code"] == "channel_not_allowed", cli.text
    roles = {(r["account_alias"], r["role_name"]): r for r in client.get("/api/v1/roles", auth=("alice", ALICE_PW)).json()}
    assert roles[("sandbox-dev", "Admin")]["mfa_max_age"] == {"console": 43200, "cli": 43200}
    assert roles[("sandbox-prod", "Admin")]["cli"] is False
