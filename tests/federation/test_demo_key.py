"""The demo keeps its signing key in its data directory: the same SAML metadata after a restart,
and `broker preview-assertion --config config/demo.yaml` signs what the running demo publishes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from broker.minting.saml_idp import ROLE, ROLE_SESSION_NAME, SOURCE_IDENTITY
from tests.conftest import ROOT, free_port, require_module
from tests.federation.conftest import AwsSamlVerifier

pytestmark = [pytest.mark.sts, pytest.mark.saml_peer]

ALICE_ID = "7f1c2b9e-0a4d-4c8e-9b61-3d2f5a8e4c01"  # config/demo.yaml


@pytest.fixture
def start_demo(tmp_path: Path) -> Iterator[Callable[[Path, int], str]]:
    """``start_demo(data_dir, port)``: `broker demo` as a process; its URL once /readyz answers."""
    require_module("moto")
    procs: list[subprocess.Popen[bytes]] = []

    def start(data_dir: Path, port: int) -> str:
        log = open(tmp_path / f"demo-{len(procs)}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "broker", "demo", "--port", str(port), "--data-dir", str(data_dir)],
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "BROKER_ADMIN_TOKEN": "t" * 32},
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / f"demo-{len(procs) - 1}.log").read_text()
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("the demo did not become ready")

    def stop(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    start.stop = lambda: [stop(p) for p in procs]  # type: ignore[attr-defined]
    yield start
    for p in procs:
        stop(p)


def test_the_demo_metadata_survives_a_restart_and_a_preview_verifies_against_it(
    tmp_path: Path, start_demo: Callable[[Path, int], str], aws_verifier: Callable[..., AwsSamlVerifier]
) -> None:
    data_dir, port = tmp_path / "demo-data", free_port()
    url = start_demo(data_dir, port)
    first = httpx.get(url + "/saml/metadata", timeout=10).content
    jwks_first = httpx.get(url + "/.well-known/jwks.json", timeout=10).json()
    start_demo.stop()  # type: ignore[attr-defined]

    url = start_demo(data_dir, port)
    again = httpx.get(url + "/saml/metadata", timeout=10).content
    assert again == first
    assert httpx.get(url + "/.well-known/jwks.json", timeout=10).json() == jwks_first
    assert (data_dir / "keys" / "signing.key.pem").stat().st_mode & 0o777 == 0o600

    preview = subprocess.run(
        [sys.executable, "-m", "broker", "preview-assertion", "--config", str(ROOT / "config" / "demo.yaml"),
         "--user", "alice", "--account", "sandbox-dev", "--role", "Admin"],
        capture_output=True, text=True, check=False, cwd=tmp_path,
        env={**os.environ, "BROKER_DEMO_DIR": str(data_dir), "BROKER_DEMO_PORT": str(port)},
    )
    assert preview.returncode == 0, preview.stderr
    assert "EPHEMERAL" not in preview.stderr and "Traceback" not in preview.stderr
    ava = aws_verifier(again).attributes(preview.stdout.strip())
    assert ava[ROLE] == ["arn:aws:iam::111111111111:role/Admin,arn:aws:iam::111111111111:saml-provider/broker"]
    assert ava[ROLE_SESSION_NAME] == ["alice"] and ava[SOURCE_IDENTITY] == [ALICE_ID]  # read from the directory
