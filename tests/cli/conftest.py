"""The awsbroker CLI against a real broker (uvicorn on a random loopback port), run as the
console script in a subprocess with its own HOME, exactly as on an employee's laptop."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.portal.conftest import ALICE_PW, Live, clock, csrf_of, live  # noqa: F401  (fixtures)

AWSBROKER = str(Path(sys.executable).parent / "awsbroker")


def approve_in_portal(url: str, user_code: str, username: str = "alice", password: str = ALICE_PW,
                      decision: str = "approve") -> httpx.Response:
    """What the person does in the browser: sign in to the portal and approve the code."""
    with httpx.Client(base_url=url, follow_redirects=True) as browser:
        page = browser.get(f"/login?next=/device?user_code={user_code}")
        r = browser.post("/login", data={"username": username, "password": password, "csrf_token": csrf_of(page.text),
                                         "next": f"/device?user_code={user_code}"})
        return browser.post("/device", data={"user_code": user_code, "decision": decision, "csrf_token": csrf_of(r.text)})


@dataclass
class Laptop:
    """An employee's machine: a HOME of its own and the awsbroker command."""

    home: Path
    url: str
    program: str = AWSBROKER
    """The awsbroker command: the test environment's, or one installed in a clean venv."""
    checkout: bool = True
    """Pass PYTHONPATH on (a worktree's checkout, not the installed package); False: the venv's own."""
    server: Live | None = None
    """The broker it talks to (the ``laptop`` fixture's)."""

    @property
    def env(self) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home), "LANG": "C.UTF-8",
               "AWSBROKER_URL": self.url, "NO_COLOR": "1", "BROWSER": "true"}
        if self.checkout and os.environ.get("PYTHONPATH"):
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        return env

    def run(self, *args: str, input: str | None = None, unset: tuple[str, ...] = (), **env: str
            ) -> subprocess.CompletedProcess[str]:
        """``unset``: variables left out (e.g. AWSBROKER_URL, to see what the CLI remembers)."""
        environ = {k: v for k, v in (self.env | env).items() if k not in unset}
        return subprocess.run([self.program, *args], check=False, env=environ, capture_output=True, text=True, timeout=120,
                              input=input)

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([self.program, *args], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    def device_login(self, approve: Callable[[str], Any] | None = None) -> tuple[subprocess.Popen[str], str, str]:
        """`awsbroker login` polling while the code is approved; (process, its stderr, the user code)."""
        proc = self.start("login", "--no-browser")
        assert proc.stderr is not None
        seen = ""
        code = None
        while code is None:
            line = proc.stderr.readline()
            assert line, f"awsbroker login ended early: {seen}"
            seen += line
            m = re.search(r"code:\s+([A-Z]{4}-[A-Z]{4})", line)
            code = m.group(1) if m else None
        (approve or (lambda c: approve_in_portal(self.url, c)))(code)
        _, err = proc.communicate(timeout=60)
        return proc, seen + err, code


@pytest.fixture
def laptop(tmp_path: Path, live: Callable[..., Live]) -> Laptop:  # noqa: F811
    server = live()
    home = tmp_path / "home"
    home.mkdir()
    return Laptop(home, server.url, server=server)


@pytest.fixture
def logged_in(laptop: Laptop) -> Laptop:
    proc, err, _ = laptop.device_login()
    assert proc.returncode == 0, err
    return laptop
