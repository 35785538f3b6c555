"""Builds the AWS side once from the configuration: STS clients, the gateway and the console sign-in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from broker import logs
from broker.aws import ConsoleSignin
from broker.aws.config import StsConfig
from broker.aws.sandbox import MotoSandbox, SandboxConsole
from broker.aws.signin import FederationSignin
from broker.aws.sts import StsClients, StsGateway
from broker.domain import RoleGrant

log = logs.get_logger("broker.aws")


@dataclass(frozen=True)
class Aws:
    sts: StsGateway
    signin: ConsoleSignin
    sandbox: MotoSandbox | None = None
    sandbox_endpoint_url: str | None = None

    def sandbox_sts_endpoint(self) -> str | None:
        """Where the person's AWS CLI and SDKs reach the sandbox's STS (the same moto backend the
        broker issued from); None outside sandbox mode: real AWS needs no endpoint."""
        if self.sandbox is None:
            return None
        return self.sandbox_endpoint_url or self.sandbox.endpoint()

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()
        close = getattr(self.signin, "close", None)
        if close is not None:
            close()


def build_aws(
    *, config: StsConfig, public_url: str, saml_recipient: Callable[[RoleGrant], str] | None = None
) -> Aws:
    public_url = public_url.rstrip("/")
    if config.mode == "sandbox":
        sandbox = MotoSandbox(port=config.sandbox_port)
        endpoint = config.endpoint_url
        clients = StsClients(config=config, endpoint_url=(lambda: endpoint) if endpoint else sandbox.endpoint)
        log.warning("sts_sandbox", hint="SANDBOX: STS is moto in-process and the console step is a local page; "
                                        "no real AWS account is reached")
        return Aws(
            sts=StsGateway(clients=clients, issuer=public_url, saml_recipient=saml_recipient),
            signin=SandboxConsole(public_url=public_url, issuer=public_url),
            sandbox=sandbox,
            sandbox_endpoint_url=endpoint,
        )
    issuer = urlsplit(public_url)
    if issuer.scheme != "https" or issuer.port is not None:
        log.warning("oidc_issuer_not_registrable", issuer=public_url,
                    hint="IAM OIDC providers need an https:// issuer without a port: web identity accounts will fail")
    clients = StsClients(config=config)
    return Aws(
        sts=StsGateway(clients=clients, issuer=public_url, saml_recipient=saml_recipient),
        signin=FederationSignin(issuer=public_url, config=config),
    )
