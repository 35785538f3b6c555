"""The npm ``oidc-provider`` as an independent OpenID Provider: started with node, driven by httpx.

``OidcProvider.start`` writes the provider's configuration (clients, accounts, its signing JWKS,
which the tests generate and therefore may also use to sign a crafted token "with the genuine
key") and runs ``node tests/upstream/oidc_peer/server.mjs`` on a random loopback port.
``authorize`` plays the person at the provider's development sign-in and consent pages and
returns the redirect back to the relying party (``...?code=&state=&iss=``) without following it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import select
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
from joserfc.jwk import RSAKey

PEER_DIR = Path(__file__).resolve().parent / "oidc_peer"


def npm_install() -> None:
    """``npm ci`` into tests/upstream/oidc_peer/node_modules (git-ignored) when it is not there yet."""
    if (PEER_DIR / "node_modules" / "oidc-provider" / "package.json").exists():
        return
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=PEER_DIR, capture_output=True, text=True, timeout=300, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"npm ci failed in {PEER_DIR}: {done.stderr[-2000:]}")


def signing_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"}, private=True)


@dataclass
class Client:
    client_id: str
    client_secret: str | None
    redirect_uris: list[str]

    def metadata(self) -> dict[str, Any]:
        meta = {
            "client_id": self.client_id,
            "redirect_uris": self.redirect_uris,
            "response_types": ["code"],
            "grant_types": ["authorization_code"],
            "token_endpoint_auth_method": "client_secret_basic" if self.client_secret else "none",
        }
        if self.client_secret:
            meta["client_secret"] = self.client_secret
        return meta


@dataclass
class OidcProvider:
    root: Path
    clients: list[Client]
    accounts: dict[str, dict[str, Any]]
    keys: list[RSAKey]
    pkce_optional: list[str] = field(default_factory=list)
    port: int = 0
    """0: a random free port; a restart may ask for the previous one (same issuer)."""
    issuer: str = ""
    process: subprocess.Popen[str] | None = None

    def start(self) -> OidcProvider:
        self.root.mkdir(parents=True, exist_ok=True)
        conf = self.root / "provider.json"
        conf.write_text(json.dumps({
            "jwks": {"keys": [k.as_dict(private=True) for k in self.keys]},
            "clients": [c.metadata() for c in self.clients],
            "accounts": self.accounts,
            "pkce_optional": self.pkce_optional,
            "cookie_key": secrets.token_urlsafe(24),
            "port": self.port,
        }))
        conf.chmod(0o600)
        errors = self.root / "provider.stderr"
        with errors.open("ab") as err:
            self.process = subprocess.Popen(
                ["node", str(PEER_DIR / "server.mjs"), str(conf)],
                cwd=PEER_DIR, stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True,
            )
        deadline = time.monotonic() + 30
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.5)
            if ready:
                line = self.process.stdout.readline()
                if line.strip().startswith("{"):
                    self.issuer = json.loads(line)["issuer"]
                    return self
            if self.process.poll() is not None:
                break
        self.stop()
        tail = errors.read_text(errors="replace")[-1500:]
        raise RuntimeError(f"oidc-provider did not start (node tests/upstream/oidc_peer/server.mjs): {tail}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None

    @property
    def key(self) -> RSAKey:
        return self.keys[0]

    def authorize(self, auth_url: str, username: str, *, browser: httpx.Client | None = None) -> str:
        """Sign in as ``username`` (any password) and consent; return the Location back to the RP."""
        own = browser is None
        browser = browser or httpx.Client(timeout=10)
        try:
            r = browser.get(auth_url)
            for _ in range(10):
                if r.status_code in (302, 303) and not r.headers["location"].startswith(self.issuer + "/") and \
                        r.headers["location"].startswith("http"):
                    return r.headers["location"]
                if r.status_code in (302, 303):
                    r = browser.get(urljoin(str(r.url), r.headers["location"]))
                    continue
                if r.status_code != 200:
                    raise AssertionError(f"provider answered {r.status_code}: {r.text[:300]}")
                action = re.search(r'<form[^>]*action="([^"]+)"', r.text)
                assert action, r.text[:500]
                fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', r.text))
                if 'name="login"' in r.text:
                    fields |= {"prompt": "login", "login": username, "password": "any"}
                else:
                    fields |= {"prompt": "consent"}
                r = browser.post(urljoin(str(r.url), action.group(1)), data=fields)
            raise AssertionError("the provider never redirected back")
        finally:
            if own:
                browser.close()
