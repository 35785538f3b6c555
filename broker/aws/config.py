"""Configuration of the AWS side: the `sts:` section (STS calls and the console federation endpoint)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

_URL = r"^https?://[^\s?#]+$"


class StsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["aws", "sandbox"] = "sandbox"
    """sandbox: moto's STS in-process and a local console page, labelled SANDBOX (needs the
    `sandbox` extra); aws: the real AWS STS and federation endpoints (requires `keys:`)."""
    endpoint_url: Annotated[str, Field(pattern=_URL)] | None = None
    """Send every STS call here instead of the partition's regional endpoint (tests, VPC endpoints)."""
    sandbox_port: Annotated[int, Field(ge=0, le=65535)] = 0
    """sandbox mode: the port on 127.0.0.1 where moto's STS (the one the broker issues from) serves
    the AWS CLI and SDKs too; `awsbroker configure` writes http://127.0.0.1:<port> into the profiles
    as endpoint_url. 0: any free port, chosen at the first STS call (the broker tells the CLI)."""
    federation_endpoint: Annotated[str, Field(pattern=_URL)] | None = None
    """Use this URL instead of https://signin.<partition host>/federation for getSigninToken and the login URL."""
    connect_timeout: Annotated[float, Field(gt=0, le=60)] = 3.0
    """Seconds to open a connection to STS or the federation endpoint."""
    read_timeout: Annotated[float, Field(gt=0, le=120)] = 10.0
    """Seconds to wait for an answer from STS or the federation endpoint."""
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    """STS attempts per call, including the first (botocore "standard" retries: throttling, 5xx, network)."""
