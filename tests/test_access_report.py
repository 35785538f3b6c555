"""The access report over HTTP and on the command line, with the static directory: rows, the
rule-matched group, filters (alias or id, role, group, user), names that match nothing, CSV
quoting and formula cells, disabled accounts, the STS names CloudTrail shows."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from broker.cli.server import app as cli
from broker.minting.names import sts_names
from broker.reports.access import COLUMNS, safe_cell
from broker.web.admin_reports import AccessReport

HASH = "$2b$12$LYTJyrgmep47mVJhwtcAcO.ecIPdoQL7e0WhfAYEEqMhfUJ05YdhO"
EVIL = '=HYPERLINK("x"),ops'
DIRECTORY = {
    "type": "static",
    "users": [
        {
            "username": "alice",
            "password_hash": HASH,
            "email": "alice@example.org",
            "groups": ["ops", "AWS-111122223333-ReadOnly"],
        },
        {"username": "bob", "password_hash": HASH, "groups": ["dev"]},
        {"username": "carol", "password_hash": HASH, "groups": ["ops"], "disabled": True},
        {"username": "erin", "password_hash": HASH, "id": "erin-uuid-1", "groups": [EVIL]},
    ],
}
MAPPING = {
    "accounts": [
        {
            "id": "111122223333",
            "alias": "prod",
            "roles": [{"name": "Admin", "max_session_duration": 43200}, {"name": "ReadOnly"}],
        },
        {"id": "444455556666", "alias": "dev", "roles": [{"name": "Admin"}]},
    ],
    "mappings": [
        {"group": "ops", "account": "prod", "role": "Admin", "session_duration": 7200, "cli": False},
        {"group": EVIL, "account": "dev", "role": "Admin"},
    ],
    "rules": [{"name": "adfs", "pattern": r"^AWS-(?P<account>\d{12})-(?P<role>[\w+=,.@-]+)$"}],
}


@pytest.fixture
def api(app_factory, admin_headers):
    client = app_factory(directory=DIRECTORY, mapping=MAPPING)

    def get(**params: str) -> Any:
        return client.get("/api/v1/admin/reports/access", params=params, headers=admin_headers)

    get.client = client  # type: ignore[attr-defined]
    return get


def rows(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["columns"] == list(COLUMNS) and body["count"] == len(body["rows"])
    AccessReport.model_validate(body)  # the shape the OpenAPI document declares
    return body["rows"]


def test_every_person_role_and_reason(api):
    got = {(r["username"], r["account_alias"], r["role_name"], r["kind"], r["group"]): r for r in rows(api())}
    assert set(got) == {
        ("alice", "prod", "Admin", "mapping", "ops"),
        ("alice", "prod", "ReadOnly", "rule", "AWS-111122223333-ReadOnly"),
        ("erin", "dev", "Admin", "mapping", EVIL),
    }
    mapping_ids = {
        m["group"]: str(m["id"])
        for m in api.client.get(
            "/api/v1/admin/mappings", headers={"Authorization": "Bearer test-admin-token-0123456789"}
        ).json()["items"]
    }
    assert got[("alice", "prod", "Admin", "mapping", "ops")]["ref"] == mapping_ids["ops"]
    assert got[("alice", "prod", "ReadOnly", "rule", "AWS-111122223333-ReadOnly")]["ref"] == "adfs"
    admin = next(r for r in got.values() if r["role_name"] == "Admin" and r["username"] == "alice")
    assert admin["console"] is True and admin["cli"] is False and admin["session_cap"] == 7200
    assert admin["role_arn"] == "arn:aws:iam::111122223333:role/Admin" and admin["path"] == ["ops"]
    assert admin["via"] == ""
    rule = next(r for r in got.values() if r["kind"] == "rule")
    assert rule["session_cap"] == 3600 and rule["cli"] is True  # ReadOnly's max session (default 1 h)
    names = sts_names(username="alice", immutable_id="static:alice")
    assert admin["role_session_name"] == names.role_session_name == "alice"
    assert admin["source_identity"] == names.source_identity != "static:alice"  # ':' is not allowed by STS
    assert "carol" not in {r["username"] for r in got.values()}  # disabled: never reported


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"account": "prod"}, {("alice", "Admin"), ("alice", "ReadOnly")}),
        ({"account": "111122223333"}, {("alice", "Admin"), ("alice", "ReadOnly")}),
        ({"account": "PROD", "role": "readonly"}, {("alice", "ReadOnly")}),
        ({"role": "arn:aws:iam::444455556666:role/Admin"}, {("erin", "Admin")}),
        ({"group": "ops"}, {("alice", "Admin")}),
        ({"group": "cn=ops,ou=groups,dc=example,dc=org"}, {("alice", "Admin")}),
        ({"user": "ALICE", "role": "Admin"}, {("alice", "Admin")}),
        ({"user": "erin-uuid-1"}, {("erin", "Admin")}),
        ({"user": "bob"}, set()),  # in a group that gives nothing
        ({"user": "carol"}, set()),  # disabled
        ({"account": "999999999999"}, set()),
        ({"role": "NoSuchRole"}, set()),
        ({"group": "no-such-group"}, set()),
        ({"user": "nobody"}, set()),
    ],
)
def test_filters(api, params, expected):
    assert {(r["username"], r["role_name"]) for r in rows(api(**params))} == expected


def test_csv_columns_quoting_and_formula_cells(api):
    response = api(format="csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(response.text)))
    assert tuple(table[0]) == COLUMNS
    by_user = {row[COLUMNS.index("username")]: dict(zip(COLUMNS, row, strict=True)) for row in table[1:]}
    erin = by_user["erin"]
    assert (
        erin["group"] == "'" + EVIL and erin["path"] == "'" + EVIL
    )  # comma and quotes survive, formula defused
    assert erin["console"] == "true" and erin["account_id"] == "444455556666"
    assert '"\'=HYPERLINK(""x""),ops"' in response.text  # RFC 4180: the cell quoted, its quotes doubled


def test_csv_cells():
    assert safe_cell("-1+2") == "'-1+2" and safe_cell("@SUM(A1)") == "'@SUM(A1)" and safe_cell("ops") == "ops"
    assert safe_cell(["a", "b"]) == "a > b" and safe_cell(False) == "false"


def test_admin_only(api):
    assert api.client.get("/api/v1/admin/reports/access").status_code == 401
    bad = api.client.get(
        "/api/v1/admin/reports/access",
        params={"format": "xml"},
        headers={"Authorization": "Bearer test-admin-token-0123456789"},
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"]
    assert api().status_code == 200  # still serving


def test_cli(tmp_path):
    path = tmp_path / "broker.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "database": {"url": f"sqlite:///{tmp_path / 'b.db'}", "auto_migrate": True},
                "directory": DIRECTORY,
                "mapping": MAPPING,
            }
        )
    )
    runner = CliRunner()
    done = runner.invoke(cli, ["report", "access", "--config", str(path), "--account", "dev"])
    assert done.exit_code == 0, done.output
    table = list(csv.reader(io.StringIO(done.stdout)))
    assert tuple(table[0]) == COLUMNS and [r[COLUMNS.index("username")] for r in table[1:]] == ["erin"]
    done = runner.invoke(
        cli, ["report", "access", "--config", str(path), "--user", "alice", "--format", "json"]
    )
    assert done.exit_code == 0, done.output
    body = json.loads(done.stdout)
    assert {r["role_name"] for r in body["rows"]} == {"Admin", "ReadOnly"}
    done = runner.invoke(cli, ["report", "access", "--config", str(path), "--group", "nothing-like-it"])
    assert done.exit_code == 0 and len(list(csv.reader(io.StringIO(done.stdout)))) == 1


def test_without_a_directory_a_clear_error(app_factory, admin_headers):
    client = app_factory(mapping=MAPPING)
    r = client.get("/api/v1/admin/reports/access", headers=admin_headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
    assert "directory" in r.json()["error"]["message"]


def test_a_role_reached_through_an_ou_says_so(app_factory, admin_headers):
    """An OU-targeted mapping reaches an account discovery placed under the OU: the report row
    names the org mapping and the OU it came through."""
    from broker.mapping.org_targets import Placement

    mapping = {
        "accounts": [{"id": "111122223333", "alias": "prod", "roles": [{"name": "Admin"}]}],
        "mappings": [{"group": "ops", "accounts": {"ou": "ou-ab12-cdef3456"}, "role": "Admin"}],
    }
    client = app_factory(directory=DIRECTORY, mapping=mapping)
    report = "/api/v1/admin/reports/access"
    assert client.get(report, headers=admin_headers).json()["rows"] == []  # not placed yet
    client.app.state.services.store.record_placements(
        [Placement("111122223333", ("r-ab12", "ou-ab12-cdef3456"), {})]
    )
    (row,) = rows(client.get(report, headers=admin_headers))
    assert (row["username"], row["account_alias"], row["role_name"]) == ("alice", "prod", "Admin")
    assert row["via"] == "OU ou-ab12-cdef3456" and row["ref"].startswith("org-")
