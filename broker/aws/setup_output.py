"""What ``broker aws-setup`` and ``GET /api/v1/admin/aws-setup`` give for one account, in either
format: its files, by path relative to the output directory (``--out``)."""

from __future__ import annotations

import json
from typing import Literal

from broker.aws import cloudformation, stackset, terraform
from broker.aws.trust import AccountTrust

SetupFormat = Literal["cloudformation", "terraform"]


def account_files(trust: AccountTrust, fmt: SetupFormat) -> dict[str, str]:
    """CloudFormation: the template, ``broker-trust-<alias>.cfn.json``, and for an account with
    roles the IMPORT change set's template and resources-to-import (``.import.cfn.json``,
    ``.import.json``: taking over roles that exist already); Terraform: the account's module
    directory, ``<alias>/main.tf``, ``outputs.tf``, ``versions.tf`` (the id without an alias)."""
    name = trust.alias or trust.account_id
    if fmt == "cloudformation":
        files = {f"broker-trust-{name}.cfn.json": cloudformation.render(trust)}
        if trust.roles:
            files[f"broker-trust-{name}.import.cfn.json"], files[f"broker-trust-{name}.import.json"] = \
                cloudformation.render_import(trust)
        return files
    return {f"{name}/{file}": text for file, text in terraform.files(trust).items()}


def single(trust: AccountTrust, fmt: SetupFormat) -> str:
    """The account's output as one text (stdout): the template, or the module as one file."""
    return cloudformation.render(trust) if fmt == "cloudformation" else terraform.render(trust)


def stackset_files(trusts: list[AccountTrust]) -> dict[str, str]:
    """One CloudFormation template per group of accounts sharing a provider, for a StackSet
    (``broker.aws.stackset``): ``broker-trust-stackset-<group>.cfn.json``."""
    return {stackset_file(name): json.dumps(stackset.template(group), indent=2) + "\n"
            for name, group in stackset.groups(trusts).items()}


def stackset_file(group: str) -> str:
    return f"broker-trust-stackset-{group}.cfn.json"
