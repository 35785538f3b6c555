"""What each role row on the portal's home page tells a person and lets them do: which channels
the role has (console only / command line only), its description and longest session, the
service/region panel (regions of the account's partition, service names checked), copy buttons,
and favorites and recently used roles as shortcuts, each role once per list."""

from __future__ import annotations

import re

import pytest

from tests.portal.conftest import audit, csrf_of, sections, sign_in

pytestmark = pytest.mark.sts

DEV_ADMIN = "111111111111/admin"


@pytest.fixture
def labelled(build):
    """The portal's accounts, with a description on sandbox-dev Admin and a command-line-only role."""
    mapping = sections()["mapping"]
    mapping["accounts"][0]["roles"][0]["description"] = "Full control of the development sandbox"
    mapping["accounts"][1]["roles"].append({"name": "Deployer", "max_session_duration": 5400})
    mapping["mappings"].append({"group": "aws-admins", "account": "sandbox-prod", "role": "Deployer", "console": False})
    return build(mapping=mapping)


def role_row(html: str, key: str, kind: str = "role") -> str:
    """The <li> of one role (kind "role": the full row under All accounts; "role shortcut")."""
    rows = re.findall(rf'<li class="{kind}"[^>]*data-key="{re.escape(key)}">(.*?)</li>', html, flags=re.DOTALL)
    assert len(rows) == 1, (key, kind, len(rows))
    return rows[0]


def test_each_role_says_which_channels_it_has_its_description_and_longest_session(labelled):
    sign_in(labelled)
    html = labelled.get("/").text
    prod_admin = role_row(html, "222222222222/admin")  # the mapping has cli: false
    assert "console only" in prod_admin and "Command line" not in prod_admin and "No command line for this role" in prod_admin
    deployer = role_row(html, "222222222222/deployer")  # console: false
    assert "command line only" in deployer and "Command line" in deployer and 'action="/console"' not in deployer
    assert "up to 1 h 30 min" in deployer
    dev_admin = role_row(html, DEV_ADMIN)
    assert "Full control of the development sandbox" in dev_admin and "up to 12 h" in dev_admin
    assert "console only" not in dev_admin and "command line only" not in dev_admin
    assert "up to 2 h" in role_row(html, "222222222222/readonly")
    # the description is searchable too
    assert labelled.get("/", params={"q": "development sandbox"}).text.count('class="role"') == 1


def test_service_region_panel_offers_the_partitions_regions_and_its_own_row(labelled):
    sign_in(labelled)
    row = role_row(labelled.get("/").text, DEV_ADMIN)
    regions = re.findall(r'<option value="([a-z0-9-]+)"( selected)?>', row)
    assert regions[0] == ("eu-west-1", " selected")  # the account's own region first, chosen
    names = [r for r, _ in regions]
    assert {"us-east-1", "ap-southeast-2", "eu-north-1"} <= set(names) and len(names) == len(set(names))
    assert not [r for r in names if r.startswith(("cn-", "us-gov-"))]
    # the panel is outside the row of buttons, bound to the console form by its id
    head, _, rest = row.partition('<details class="deep">')
    assert 'name="region"' not in head and 'form="role-111111111111-admin-console"' in rest
    assert 'id="role-111111111111-admin-console"' in head


@pytest.mark.parametrize("account, region", [("222222222222", "us-gov-west-1"), ("111111111111", "cn-north-1")])
def test_a_region_outside_the_accounts_partition_is_refused(labelled, admin_headers, account, region):
    sign_in(labelled)
    csrf = csrf_of(labelled.get("/").text)
    r = labelled.post("/console", data={"account": account, "role": "Admin", "region": region, "csrf_token": csrf})
    assert r.status_code == 422 and "location" not in r.headers
    assert "Check the form" in r.text and "is not a region of the aws partition" in r.text
    (event,) = audit(labelled, admin_headers, action="issue.console")  # a denial, nothing issued
    assert event["outcome"] == "deny" and event["details"]["code"] == "invalid_input"


@pytest.mark.parametrize("service", ["https://evil.example", "s3/../../evil", "S3", "a" * 41, "s3?x=1", "//evil.example"])
def test_a_service_that_is_not_a_console_service_name_is_refused(labelled, admin_headers, service):
    sign_in(labelled)
    csrf = csrf_of(labelled.get("/").text)
    r = labelled.post("/console", data={"account": "sandbox-dev", "role": "Admin", "service": service, "csrf_token": csrf})
    assert r.status_code == 422 and "location" not in r.headers and "not a console service name" in r.text
    assert audit(labelled, admin_headers, action="issue.console") == []


def test_the_user_api_refuses_a_region_outside_the_partition_too(labelled):
    sign_in(labelled)
    csrf = csrf_of(labelled.get("/").text)
    r = labelled.post("/api/v1/console", json={"account": "sandbox-dev", "role": "Admin", "region": "cn-north-1"},
                      headers={"X-CSRF-Token": csrf})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input" and "url" not in r.json()
    r = labelled.post("/api/v1/console", json={"account": "sandbox-dev", "role": "Admin", "region": "us-west-2",
                                               "service": "ec2"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json()["destination"].startswith("https://us-west-2.console.aws.amazon.com/ec2/")


def test_a_service_and_region_from_the_panel_land_there(labelled, admin_headers):
    sign_in(labelled)
    csrf = csrf_of(labelled.get("/").text)
    r = labelled.post("/console", data={"account": "sandbox-dev", "role": "Admin", "service": "cloudwatch",
                                        "region": "eu-north-1", "csrf_token": csrf})
    assert r.status_code == 302
    (event,) = audit(labelled, admin_headers, action="issue.console")
    assert event["details"]["destination"] == "https://eu-north-1.console.aws.amazon.com/cloudwatch/home?region=eu-north-1"


def test_roles_opened_by_alias_are_recently_used_and_favorites_by_alias_work(labelled):
    sign_in(labelled)
    csrf = csrf_of(labelled.get("/").text)
    assert "Recently used" not in labelled.get("/").text
    r = labelled.post("/console", data={"account": "Sandbox-Dev", "role": "admin", "csrf_token": csrf})
    assert r.status_code == 302
    html = labelled.get("/").text
    assert "Recently used" in html
    role_row(html, DEV_ADMIN, "role shortcut")
    r = labelled.post("/favorites", data={"account": "sandbox-prod", "role": "ReadOnly", "csrf_token": csrf})
    assert r.status_code == 303
    assert "Favorites" in labelled.get("/").text


def test_a_favorite_appears_once_per_list_as_a_shortcut(labelled):
    sign_in(labelled)
    csrf = csrf_of(labelled.get("/").text)
    labelled.post("/favorites", data={"account": "111111111111", "role": "Admin", "csrf_token": csrf})
    labelled.post("/console", data={"account": "111111111111", "role": "Admin", "csrf_token": csrf})
    labelled.post("/console", data={"account": "111111111111", "role": "Admin", "csrf_token": csrf})
    html = labelled.get("/").text
    favorites, _, rest = html.partition('id="recent-title"')
    recents, _, everything = rest.partition('id="all-title"')
    assert favorites.count(f'data-key="{DEV_ADMIN}"') == 1 and recents.count(f'data-key="{DEV_ADMIN}"') == 1
    assert everything.count(f'data-key="{DEV_ADMIN}"') == 1
    shortcut = role_row(favorites, DEV_ADMIN, "role shortcut")
    assert 'href="#role-111111111111-admin"' in shortcut and "Command line" not in shortcut and 'name="region"' not in shortcut
    assert html.count('class="role"') == 5  # every role once under All accounts
    assert len(re.findall(r'\bid="([^"]+)"', html)) == len(set(re.findall(r'\bid="([^"]+)"', html)))  # ids unique


def test_commands_and_credentials_have_copy_buttons(labelled):
    sign_in(labelled)
    html = labelled.get("/").text
    row = role_row(html, DEV_ADMIN)
    for target in re.findall(r'class="copy" data-copy="([^"]+)"', row):
        assert f'id="{target}"' in row
    assert len(re.findall(r'class="copy"', row)) == 2
    csrf = csrf_of(html)
    page = labelled.post("/cli-credentials", data={"account": "sandbox-dev", "role": "Admin", "csrf_token": csrf}).text
    targets = re.findall(r'class="copy" data-copy="([^"]+)"', page)
    assert len(targets) == 6  # three values, three shells
    values = dict(re.findall(r'<code class="value" id="([^"]+)">([^<]+)</code>', page))
    assert set(values) <= set(targets) and len(values) == 3 and all(values.values())
    assert '<script src="/static/portal.js"' in page and "<script>" not in page and "style=" not in page and "onclick" not in page
