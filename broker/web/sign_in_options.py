"""The upstream sign-in options (SAML IdPs, OIDC providers), in configuration order: one list
for the login page's buttons and for ``GET /sso`` (what a custom page or a test reads)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from broker.connectors.base import UpstreamConnector

UPSTREAM_START = "/sso/{name}/login"
"""Where a sign-in option leads (broker.web.upstream), with ``?next=``."""


@dataclass(frozen=True)
class SignInOption:
    name: str
    display_name: str
    protocol: str
    login_url: str

    def href(self, next_url: str) -> str:
        """The button's link: the start, and where to go once signed in (a validated local path)."""
        return f"{self.login_url}?next={quote(next_url, safe='/')}"

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "display_name": self.display_name, "protocol": self.protocol,
                "login_url": self.login_url}


def sign_in_options(upstream: Mapping[str, UpstreamConnector]) -> list[SignInOption]:
    return [
        SignInOption(name=name, display_name=c.display_name, protocol=c.kind, login_url=UPSTREAM_START.format(name=name))
        for name, c in upstream.items()
    ]
