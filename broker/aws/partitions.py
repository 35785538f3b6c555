"""Per-partition AWS endpoints and names: ARNs, SAML ACS/recipients, audiences, sign-in and console.

Sources: IAM User Guide (id_roles_providers_create_saml_assertions,
id_roles_providers_enable-console-custom-url), AWS GovCloud and China user guides.
Pure data and string functions: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, cast, get_args
from urllib.parse import quote

from broker.errors import InvalidInput

PartitionName = Literal["aws", "aws-us-gov", "aws-cn"]
"""The AWS partitions the broker knows: the one list (the mapping model, the admin API's schema
and ``PARTITIONS`` below are derived from it)."""


@dataclass(frozen=True, slots=True)
class Partition:
    name: PartitionName
    default_region: str
    """The region of an account that names none (its STS endpoint, the console's region)."""
    signin_host: str
    """Host of the SAML ACS and the federation (sign-in) endpoint."""
    console_host: str
    saml_audience: str
    oidc_audience: str
    """The default client id (aud) of an IAM OIDC provider used with STS."""
    regional_signin: bool
    """Whether https://<region>.<signin_host>/saml exists (the commercial partition)."""
    region_prefix: str = ""
    """What the names of the partition's regions start with (none: the commercial partition)."""
    regions: tuple[str, ...] = ()
    """The partition's public regions (the portal's region list; an account's own region is
    offered too when AWS adds one before this list knows it)."""

    @property
    def saml_acs(self) -> str:
        return f"https://{self.signin_host}/saml"

    def saml_recipient(self, region: str | None = None, provider_id: str | None = None) -> str:
        """The Recipient (and Destination, and trust-policy saml:aud) of an assertion. An encrypted
        assertion goes to the provider's own ACS, ``.../saml/acs/<SAMLProviderUUID>``."""
        acs = f"https://{region}.{self.signin_host}/saml" if region and self.regional_signin else self.saml_acs
        return f"{acs}/acs/{provider_id}" if provider_id else acs

    @property
    def federation_endpoint(self) -> str:
        return f"https://{self.signin_host}/federation"

    def check_console_region(self, region: str, *, account_region: str) -> None:
        """A console region a person asked for: one of this partition's (or the account's own)."""
        if region != account_region and region not in self.regions:
            raise InvalidInput(f"“{region[:40]}” is not a region of the {self.name} partition; "
                               f"choose one of its regions, e.g. {account_region}")

    def console_url(self, *, region: str, service: str | None = None) -> str:
        """The console page to land on: a service deep link in a region, or the console home."""
        host = f"{region}.{self.console_host}" if self.regional_signin else self.console_host
        path = f"{quote(service, safe='')}/home" if service else "console/home"
        return f"https://{host}/{path}?region={quote(region, safe='')}"


PARTITIONS: dict[PartitionName, Partition] = {
    "aws": Partition(
        name="aws",
        default_region="us-east-1",
        signin_host="signin.aws.amazon.com",
        console_host="console.aws.amazon.com",
        saml_audience="urn:amazon:webservices",
        oidc_audience="sts.amazonaws.com",
        regional_signin=True,
        regions=(
            "us-east-1", "us-east-2", "us-west-1", "us-west-2", "af-south-1", "ap-east-1", "ap-east-2",
            "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4",
            "ap-southeast-5", "ap-southeast-7", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
            "ca-central-1", "ca-west-1", "eu-central-1", "eu-central-2", "eu-west-1", "eu-west-2", "eu-west-3",
            "eu-south-1", "eu-south-2", "eu-north-1", "il-central-1", "me-south-1", "me-central-1",
            "mx-central-1", "sa-east-1",
        ),
    ),
    "aws-us-gov": Partition(
        name="aws-us-gov",
        default_region="us-gov-west-1",
        signin_host="signin.amazonaws-us-gov.com",
        console_host="console.amazonaws-us-gov.com",
        saml_audience="urn:amazon:webservices:govcloud",
        oidc_audience="sts.amazonaws.com",
        regional_signin=False,
        region_prefix="us-gov-",
        regions=("us-gov-west-1", "us-gov-east-1"),
    ),
    "aws-cn": Partition(
        name="aws-cn",
        default_region="cn-north-1",
        signin_host="signin.amazonaws.cn",
        console_host="console.amazonaws.cn",
        saml_audience="urn:amazon:webservices:cn-north-1",
        oidc_audience="sts.amazonaws.com.cn",
        regional_signin=False,
        region_prefix="cn-",
        regions=("cn-north-1", "cn-northwest-1"),
    ),
}
assert tuple(PARTITIONS) == get_args(PartitionName), "PARTITIONS is keyed by PartitionName, in its order"


CONSOLE_SERVICE = re.compile(r"^[a-z0-9-]{1,40}$")
"""A console service path (``s3``, ``ec2``, ``cloudwatch``): the portal refuses anything else."""
CONSOLE_SERVICES = (
    "acm", "apigateway", "athena", "billing", "cloudformation", "cloudfront", "cloudtrail", "cloudwatch",
    "codebuild", "codepipeline", "cognito", "dynamodbv2", "ec2", "ecr", "ecs", "eks", "elasticache",
    "events", "glue", "guardduty", "iam", "kinesis", "kms", "lambda", "organizations", "rds", "route53",
    "s3", "secretsmanager", "securityhub", "sns", "sqs", "ssm", "states", "support", "vpc", "wafv2",
)
"""Well-known console services, offered as suggestions (others that match CONSOLE_SERVICE work too)."""


def check_console_service(service: str) -> None:
    if not CONSOLE_SERVICE.match(service):
        raise InvalidInput(f"“{service[:40]}” is not a console service name: use lower-case letters, digits and "
                           "hyphens, such as s3, ec2 or cloudwatch")


def partition_of_region(region: str) -> PartitionName:
    """The partition a region name belongs to (``us-gov-west-1``: aws-us-gov)."""
    for p in PARTITIONS.values():
        if p.region_prefix and region.startswith(p.region_prefix):
            return p.name
    return "aws"


def partition(name: str) -> Partition:
    try:
        return PARTITIONS[cast(PartitionName, name)]  # a name from the database or a grant: KeyError below
    except KeyError:
        raise InvalidInput(f"unknown AWS partition {name!r}; known: {', '.join(PARTITIONS)}") from None
