"""`broker aws-setup --format terraform` and GET /api/v1/admin/aws-setup: the Terraform module holds
the CloudFormation template's resources, and every generated file parses with python-hcl2.

No terraform binary is available here, so `terraform validate` / `plan` are not run: the files
are parsed with python-hcl2 and their values evaluated (``tests.federation.hcl_values``), then
compared with what ``broker.aws.trust`` says and with the CloudFormation template.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from typer.testing import CliRunner

from broker.aws import cloudformation, terraform
from broker.aws.hcl import quoted
from broker.aws.trust import AccountTrust, BrokerSide, OidcProvider, SamlProvider, account_trust
from broker.aws.trust_check import check_role_trust
from broker.cli.server import app as cli
from broker.mapping.snapshot import AccountRecord, MappingSnapshot, RoleRecord
from broker.minting.keys import KeyRing
from tests.federation.conftest import TWO_ACCOUNTS_MAPPING, make_idp
from tests.federation.hcl_values import Blocks, Ref, parse
from tests.federation.test_aws_setup import BROKER, _snapshot

XMLDSIG = "{http://www.w3.org/2000/09/xmldsig#}X509Certificate"


def _provider_key(trust: AccountTrust) -> tuple[str, str, str]:
    kind = "aws_iam_saml_provider" if isinstance(trust.provider, SamlProvider) else "aws_iam_openid_connect_provider"
    return ("resource", kind, "broker")


def _account_refs(trust: AccountTrust) -> dict[str, str]:
    """What the data sources say in the account the ``aws`` provider acts in."""
    return {"data.aws_partition.current.partition": trust.partition,
            "data.aws_caller_identity.current.account_id": trust.account_id}


def _module(trust: AccountTrust) -> Blocks:
    """All the module's files parsed (each on its own) into one view, the provider's ARN resolved."""
    refs = {f"{_provider_key(trust)[1]}.broker.arn": trust.provider.arn, **_account_refs(trust)}
    blocks: Blocks = {}
    for text in terraform.files(trust).values():
        parsed = parse(text, refs)
        assert not set(parsed) & set(blocks)
        blocks.update(parsed)
    return blocks


def _of_type(blocks: Blocks, kind: str) -> dict[str, dict[str, Any]]:
    return {key[2]: body for key, body in blocks.items() if key[:2] == ("resource", kind)}


def _cfn_role(trust: AccountTrust, role: str) -> dict[str, Any]:
    """The CloudFormation template's properties of a role, the provider's ARN resolved (created by
    the stack or existing: both branches of the ``Fn::If`` name the same ARN)."""
    body = cloudformation.template(trust)
    (props,) = [r["Properties"] for r in body["Resources"].values()
                if r["Type"] == "AWS::IAM::Role" and r["Properties"]["RoleName"] == role]

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if list(node) == ["Fn::If"] and node["Fn::If"][0] == cloudformation.CREATE_PROVIDER:
                return trust.provider.arn
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(props)
    return resolved


def test_the_module_holds_what_the_trust_and_the_template_say(keyring: KeyRing) -> None:
    metadata = make_idp(keyring).metadata().decode()
    broker = BrokerSide(issuer=BROKER.issuer, saml_metadata=metadata)
    snapshot = _snapshot()
    for account in snapshot.accounts:
        trust = account_trust(snapshot, account, broker)
        blocks = _module(trust)
        provider = blocks.pop(_provider_key(trust))
        if isinstance(trust.provider, SamlProvider):
            assert provider == {"name": trust.provider.name, "saml_metadata_document": metadata}  # byte for byte
        else:
            assert isinstance(trust.provider, OidcProvider)
            # no thumbprint_list: optional since the provider's v5.81, as ThumbprintList is left out of the CFN
            assert provider == {"url": "https://broker.example.com", "client_id_list": list(trust.provider.client_ids)}
        roles = _of_type(blocks, "aws_iam_role")
        assert sorted(r["name"] for r in roles.values()) == sorted(r.name for r in trust.roles)
        for role in trust.roles:
            (body,) = [b for b in roles.values() if b["name"] == role.name]
            assert set(body) == {"name", "path", "description", "max_session_duration", "assume_role_policy"}
            assert (body["path"], body["max_session_duration"]) == (role.path, role.max_session_duration)
            cfn = _cfn_role(trust, role.name)
            assert json.loads(body["assume_role_policy"]) == role.policy == cfn["AssumeRolePolicyDocument"]
            assert (body["path"], body["max_session_duration"], body["description"]) == \
                (cfn["Path"], cfn["MaxSessionDuration"], cfn["Description"])
        attached = {roles[name]["name"]: sorted(body["for_each"])
                    for name, body in _of_type(blocks, "aws_iam_role_policy_attachment").items()}
        # a role naming no ARNs gets no attachment: its permissions are left alone
        assert attached == {r.name: sorted(r.managed_policy_arns) for r in trust.roles if r.managed_policy_arns}
        assert blocks[("output", "provider_arn")] == {"value": trust.provider.arn}
        assert blocks[("output", "role_arns")]["value"] == {
            b["name"]: Ref(f"aws_iam_role.{name}.arn") for name, b in roles.items()
        }
        assert blocks[("terraform",)] == {
            "required_version": ">= 1.3",
            ("required_providers",): {"aws": {"source": "hashicorp/aws", "version": ">= 5.81"}},
        }
        code = re.sub(r"(?m)^\s*#.*$", "", terraform.files(trust)["main.tf"])
        assert account not in code  # account-neutral: the root configuration's provider picks the account


def test_managed_policy_arns_are_attached_one_each(keyring: KeyRing) -> None:
    trust = account_trust(_snapshot(), "111111111111", BROKER)
    arns = ("arn:aws:iam::aws:policy/ReadOnlyAccess", "arn:aws:iam::111111111111:policy/team/Deploy")
    admin = dataclasses.replace(trust.roles[0], managed_policy_arns=arns)
    trust = dataclasses.replace(trust, roles=(admin, *trust.roles[1:]))
    blocks = _module(trust)
    roles = _of_type(blocks, "aws_iam_role")
    attachments = _of_type(blocks, "aws_iam_role_policy_attachment")
    (admin_name,) = [name for name, body in roles.items() if body["name"] == "Admin"]
    assert attachments == {admin_name: {"for_each": sorted(arns), "role": Ref(f"aws_iam_role.{admin_name}.name"),
                                        "policy_arn": Ref("each.value")}}  # ReadOnly names none: no attachment
    assert all("managed_policy_arns" not in body for body in roles.values())  # not the deprecated argument


@pytest.mark.parametrize("metadata", [
    ('<md:EntityDescriptor entityID="https://x/${path.module}">\n  %{ if true }x%{ endif } $${already} \\n "q"\n'
     "EOT\n\t<tab/>\n</md:EntityDescriptor>"),  # no final newline: chomp(<<EOT2 ... EOT2)
    "<a>\n\n  ${x}\n\n",  # final newlines kept
    "one line with \"quotes\", a \\ backslash, ${interp} and %{directive}",
    "control characters: \r\n \x01 \x7f \u2028 and é ✓",
])
def test_values_that_need_escaping_come_back_exactly(metadata: str) -> None:
    snapshot = MappingSnapshot.build(
        [AccountRecord("111111111111", None, "aws", "us-east-1", None, "saml", "broker", None),
         AccountRecord("222222222222", None, "aws", "us-east-1", None, "web_identity", None, 'aud-${x}-"q"-\\')],
        [RoleRecord("111111111111", n, "/", 3600) for n in ("a.b", "a-b", "ab")]
        + [RoleRecord("222222222222", "Admin", "/", 3600)],
        [],
    )
    broker = BrokerSide(issuer="https://broker.example.com/%{x}", saml_metadata=metadata)
    saml = account_trust(snapshot, "111111111111", broker)
    blocks = _module(saml)
    assert blocks[_provider_key(saml)]["saml_metadata_document"] == metadata
    names = {b["name"] for b in _of_type(blocks, "aws_iam_role").values()}
    assert names == {"a.b", "a-b", "ab"}  # three roles, three resources
    assert set(blocks[("output", "role_arns")]["value"]) == names
    oidc = account_trust(snapshot, "222222222222", broker)
    provider = _module(oidc)[_provider_key(oidc)]
    assert provider == {"url": "https://broker.example.com/%{x}", "client_id_list": ['aud-${x}-"q"-\\']}
    (role,) = _of_type(_module(oidc), "aws_iam_role").values()
    assert json.loads(role["assume_role_policy"]) == oidc.roles[0].policy


def test_quoted_strings_escape_what_hcl_reads_specially() -> None:
    assert quoted('a "b" \\ ${c} %{d} $${e}\n') == '"a \\"b\\" \\\\ $${c} %%{d} $$${e}\\n"'
    assert quoted("\x00\x1b\u2028") == '"\\u0000\\u001b\\u2028"'


# ---- applied through (moto's) IAM ----


def _apply(iam: Any, trust: AccountTrust) -> str:
    """What `terraform apply` of main.tf does, each resource's arguments taken from the parsed
    module: the provider, then the roles (trust policy with the ARN IAM gave it), then the
    attachments. Returns the provider's ARN."""
    main = terraform.files(trust)["main.tf"]
    key = _provider_key(trust)
    provider = parse(main)[key]
    if key[1] == "aws_iam_saml_provider":
        arn: str = iam.create_saml_provider(Name=provider["name"], SAMLMetadataDocument=provider["saml_metadata_document"])[
            "SAMLProviderArn"]
    else:
        arn = iam.create_open_id_connect_provider(Url=provider["url"], ClientIDList=provider["client_id_list"])[
            "OpenIDConnectProviderArn"]
    applied_in = {"data.aws_partition.current.partition": "aws",  # the data sources, in moto's account
                  "data.aws_caller_identity.current.account_id": arn.split(":")[4]}
    blocks = parse(main, {f"{key[1]}.broker.arn": arn, **applied_in})
    roles = _of_type(blocks, "aws_iam_role")
    for body in roles.values():
        iam.create_role(RoleName=body["name"], Path=body["path"], Description=body["description"],
                        MaxSessionDuration=body["max_session_duration"], AssumeRolePolicyDocument=body["assume_role_policy"])
    for name, attachment in _of_type(blocks, "aws_iam_role_policy_attachment").items():
        assert attachment["role"] == Ref(f"aws_iam_role.{name}.name")
        for policy_arn in attachment["for_each"]:
            iam.attach_role_policy(RoleName=roles[name]["name"], PolicyArn=policy_arn)
    return arn


def test_the_module_applied_through_iam_gives_roles_that_trust_the_broker(moto_sts: str, keyring: KeyRing) -> None:
    """Generated for account 111111111111, applied in moto's account: nothing in it names the account."""
    import boto3

    iam = boto3.client("iam", region_name="us-east-1", endpoint_url=moto_sts,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    deploy = iam.create_policy(PolicyName="tf-apply-deploy", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}))
    deploy_arn = deploy["Policy"]["Arn"]
    snapshot = MappingSnapshot.build(
        [AccountRecord("111111111111", "dev", "aws", "eu-west-1", None, "saml", "tf-apply-broker", None),
         AccountRecord("222222222222", "prod", "aws", "us-east-1", None, "web_identity", None, "tf-apply-client")],
        [RoleRecord("111111111111", "tf-apply-admin", "/tf/", 43200), RoleRecord("111111111111", "tf-apply-read", "/", 3600),
         RoleRecord("222222222222", "tf-apply-deployer", "/", 7200)],
        [],
    )
    broker = BrokerSide(issuer="https://tf-apply.example.com", saml_metadata=make_idp(keyring).metadata().decode())
    saml = account_trust(snapshot, "111111111111", broker)
    # the mapping names the policy in its own account; applied in moto's, the data sources put that one in
    own = deploy_arn.replace(f":{deploy_arn.split(':')[4]}:", ":111111111111:")
    admin = dataclasses.replace(saml.roles[0], managed_policy_arns=(own,))
    saml = dataclasses.replace(saml, roles=(admin, *saml.roles[1:]))
    saml_arn = _apply(iam, saml)
    assert iam.get_saml_provider(SAMLProviderArn=saml_arn)["SAMLMetadataDocument"] == broker.saml_metadata
    recipients = ["https://signin.aws.amazon.com/saml", "https://eu-west-1.signin.aws.amazon.com/saml"]
    for name, seconds, path, attached in (("tf-apply-admin", 43200, "/tf/", [deploy_arn]),
                                          ("tf-apply-read", 3600, "/", [])):
        role = iam.get_role(RoleName=name)["Role"]
        assert (role["Path"], role["MaxSessionDuration"]) == (path, seconds)
        findings = check_role_trust(role["AssumeRolePolicyDocument"], provider_arn=saml_arn, federation="saml",
                                    audiences=recipients, max_session_duration=role["MaxSessionDuration"],
                                    session_cap=seconds)
        assert [f.code for f in findings] == ["trust.ok"], findings
        assert [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]] == attached

    oidc_arn = _apply(iam, account_trust(snapshot, "222222222222", broker))
    assert iam.get_open_id_connect_provider(OpenIDConnectProviderArn=oidc_arn)["ClientIDList"] == ["tf-apply-client"]
    role = iam.get_role(RoleName="tf-apply-deployer")["Role"]
    findings = check_role_trust(role["AssumeRolePolicyDocument"], provider_arn=oidc_arn, federation="web_identity",
                                audiences=["tf-apply-client"])
    assert [f.code for f in findings] == ["trust.ok"], findings


# ---- the command ----


def _run(*args: str) -> Any:
    return CliRunner().invoke(cli, ["aws-setup", *args])


def _metadata_certs(metadata: str) -> list[bytes]:
    return [base64.b64decode(c.text or "") for c in etree.fromstring(metadata.encode()).findall(f".//{XMLDSIG}")]


def test_command_writes_a_module_directory_per_account(config_file: Path, tmp_path: Path, keyring: KeyRing) -> None:
    out = tmp_path / "infra"
    result = _run("--config", str(config_file), "--format", "terraform", "--out", str(out))
    assert result.exit_code == 0, result.output
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == [f"{a}/{f}" for a in ("sandbox-dev", "sandbox-prod") for f in ("main.tf", "outputs.tf", "versions.tf")]
    for path in out.rglob("*.tf"):
        parse(path.read_text())
    dev = parse((out / "sandbox-dev" / "main.tf").read_text())
    metadata = dev[("resource", "aws_iam_saml_provider", "broker")]["saml_metadata_document"]
    assert _metadata_certs(metadata) == [k.cert_der for k in keyring.published]  # current + next
    (admin,) = _of_type(dev, "aws_iam_role").values()
    assert (admin["name"], admin["max_session_duration"]) == ("Admin", 43200)
    prod = parse((out / "sandbox-prod" / "main.tf").read_text(),
                 {"aws_iam_openid_connect_provider.broker.arn": "arn:aws:iam::222222222222:oidc-provider/broker.example.com"})
    (read_only,) = _of_type(prod, "aws_iam_role").values()
    assert json.loads(read_only["assume_role_policy"])["Statement"][0]["Condition"] == {
        "StringEquals": {"broker.example.com:aud": "prod-client"}
    }


def test_command_prints_one_accounts_module_as_one_file(config_file: Path) -> None:
    result = _run("--config", str(config_file), "--format", "terraform", "--account", "sandbox-prod")
    assert result.exit_code == 0, result.output
    blocks = parse(result.stdout)
    assert set(blocks) == {
        ("resource", "aws_iam_openid_connect_provider", "broker"), ("resource", "aws_iam_role", "role_readonly"),
        ("output", "provider_arn"), ("output", "role_arns"), ("terraform",),
    }


def test_command_refuses_an_unknown_format(config_file: Path) -> None:
    result = _run("--config", str(config_file), "--format", "pulumi", "--account", "sandbox-dev")
    assert result.exit_code == 2
    assert "pulumi" in result.stderr and "cloudformation" in result.stderr and "terraform" in result.stderr


# ---- the admin API ----



@pytest.fixture
def client(app_factory: Any) -> Any:
    from tests.directory.test_static import DEMO_USERS

    return app_factory(mapping=TWO_ACCOUNTS_MAPPING, server={"public_url": "https://broker.example.com"},
                       directory={"type": "static", "users": DEMO_USERS}, admin={"directory_groups": ["aws-admins"]})


def _get(client: Any, headers: dict[str, str], **params: Any) -> Any:
    return client.get("/api/v1/admin/aws-setup", params=params, headers=headers)


def test_api_answers_the_cloudformation_of_the_running_broker(client: Any, admin_headers: dict[str, str]) -> None:
    r = _get(client, admin_headers, format="cloudformation", account=["sandbox-dev"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["format"] == "cloudformation"
    (dev,) = body["accounts"]
    assert (dev["account_id"], dev["alias"]) == ("111111111111", "sandbox-dev")
    assert any("ephemeral key" in n for n in dev["notes"])  # this app has no keys: section
    name = "broker-trust-sandbox-dev.cfn.json"
    assert sorted(dev["files"]) == ["broker-trust-sandbox-dev.cfn.json", "broker-trust-sandbox-dev.import.cfn.json",
                                    "broker-trust-sandbox-dev.import.json"]  # the import pair: existing roles
    assert json.loads(dev["files"][name]) == dev["template"]
    provider = dev["template"]["Resources"][cloudformation.PROVIDER_ID]["Properties"]
    assert provider["SamlMetadataDocument"] == client.get("/saml/metadata").text  # what it serves, byte for byte


def test_api_answers_the_terraform_of_the_whole_mapping(client: Any, admin_headers: dict[str, str]) -> None:
    created = client.post("/api/v1/admin/accounts/sandbox-prod/roles", headers=admin_headers,
                          json={"name": "Auditor", "path": "/api/", "max_session_duration": 7200})
    assert created.status_code == 201, created.text  # only the database knows this role
    r = _get(client, admin_headers, format="terraform")
    assert r.status_code == 200, r.text
    accounts = {a["alias"]: a for a in r.json()["accounts"]}
    assert set(accounts) == {"sandbox-dev", "sandbox-prod"}
    prod = accounts["sandbox-prod"]
    assert prod["template"] is None
    assert sorted(prod["files"]) == ["sandbox-prod/main.tf", "sandbox-prod/outputs.tf", "sandbox-prod/versions.tf"]
    main = parse(prod["files"]["sandbox-prod/main.tf"])
    roles = {b["name"]: b for b in _of_type(main, "aws_iam_role").values()}
    assert (roles["Auditor"]["path"], roles["Auditor"]["max_session_duration"]) == ("/api/", 7200)
    assert set(roles) == {"Auditor", "ReadOnly"}
    dev = parse(accounts["sandbox-dev"]["files"]["sandbox-dev/main.tf"])
    assert dev[("resource", "aws_iam_saml_provider", "broker")]["saml_metadata_document"] == \
        client.get("/saml/metadata").text
    both = _get(client, admin_headers, format="terraform", account=["sandbox-prod", "111111111111"])
    assert [a["account_id"] for a in both.json()["accounts"]] == ["222222222222", "111111111111"]


def test_api_refuses_non_admins_unknown_accounts_and_formats(client: Any, admin_headers: dict[str, str]) -> None:
    def basic(user: str, password: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    assert _get(client, {}).status_code == 401
    refused = _get(client, basic("bob", "bob-demo-pw"))  # signed in, not in aws-admins
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert _get(client, basic("alice", "alice-demo-pw")).status_code == 200
    unknown = _get(client, admin_headers, account=["sandbox-dve"])
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    assert "sandbox-dve" in unknown.json()["error"]["message"]
    bad = _get(client, admin_headers, format="pulumi")
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_value"


def test_api_operation_is_documented(client: Any) -> None:
    op = client.get("/openapi.json").json()["paths"]["/api/v1/admin/aws-setup"]["get"]
    assert {"200", "401", "403", "404", "422", "503"} <= set(op["responses"])
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/AwsSetup"}
    assert {p["name"] for p in op["parameters"]} == {"format", "account", "stackset"}


def test_api_answers_stackset_templates_on_request(client: Any, admin_headers: dict[str, str]) -> None:
    r = _get(client, admin_headers, format="cloudformation", stackset="true")
    assert r.status_code == 200, r.text
    by_group = {s["group"]: s for s in r.json()["stacksets"]}
    assert sorted(by_group) == ["oidc", "saml-broker"]
    saml = by_group["saml-broker"]
    assert saml["accounts"] == ["111111111111"] and saml["file"] == "broker-trust-stackset-saml-broker.cfn.json"
    assert sorted(saml["template"]["Mappings"]["Accounts"]) == ["111111111111"]
    assert _get(client, admin_headers, format="cloudformation").json()["stacksets"] == []  # only when asked
    refused = _get(client, admin_headers, format="terraform", stackset="true")
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_input"
