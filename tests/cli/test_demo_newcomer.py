"""`broker demo` as a newcomer meets it: started as the README says, then `awsbroker login`,
`awsbroker configure` and the AWS SDK (botocore) with nothing but the profile it wrote."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import AWSBROKER
from tests.conftest import require_module

pytestmark = pytest.mark.sts
BROKER = str(Path(sys.executable).parent / "broker")


def two_free_ports() -> int:
    """A port N with N+1 free too (the demo's sandbox STS listens on N+1)."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise AssertionError("no two adjacent free ports")


def clean_env(home: Path) -> dict[str, str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", "NO_COLOR": "1"}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, int]]:
    require_module("moto")
    port = two_free_ports()
    log = (tmp_path / "demo.log").open("w")
    proc = subprocess.Popen([BROKER, "demo", "--port", str(port), "--data-dir", str(tmp_path / "demo")], cwd=tmp_path,
                            env=clean_env(tmp_path), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "demo.log").read_text()
            time.sleep(0.1)
        yield url, port
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_the_demo_profiles_answer_get_caller_identity_as_alice(demo: tuple[str, int], tmp_path: Path):
    url, port = demo
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(home) | {"AWS_CONFIG_FILE": str(home / ".aws" / "config"),
                             "AWS_SHARED_CREDENTIALS_FILE": str(home / "none")}
    login = subprocess.run([AWSBROKER, "login", "--url", url, "--password", "--username", "alice"], env=env,
                           input="alice-demo-pw\n", capture_output=True, text=True, timeout=60, check=False)
    assert login.returncode == 0, login.stderr
    configure = subprocess.run([AWSBROKER, "configure"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert configure.returncode == 0, configure.stderr
    assert f"endpoint_url = http://127.0.0.1:{port + 1}" in (home / ".aws" / "config").read_text()  # the documented one

    code = ("import json, botocore.session\n"
            "r = botocore.session.Session(profile='sandbox-dev-Admin').create_client('sts').get_caller_identity()\n"
            "print(json.dumps(r['Arn']))\n")
    who = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert who.returncode == 0, who.stderr
    assert json.loads(who.stdout) == "arn:aws:sts::111111111111:assumed-role/Admin/alice"
