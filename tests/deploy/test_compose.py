"""deploy/compose: the local stack's files, checked with the real programs they are for.

No container engine runs here (and none is needed for these): compose.yaml is read as YAML, the
broker's configuration by the broker's own model, nginx.conf by `nginx -t`, the slapd seed by a
real slapd started with the image's own entrypoint (and read back through the broker's LDAP
connector). Bringing the whole stack up needs an engine with `docker compose`: that one test is
skipped without one, like the image build.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from broker.config import Config, load_config
from broker.connectors.registry import build_connector
from broker.domain import Identity
from broker.state.memory import MemoryState
from tests.conftest import ROOT, free_port, require_module, require_program
from tests.deploy.test_dockerfile import engine, lint

COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE = COMPOSE_DIR / "compose.yaml"
REPLICAS = ("broker-1", "broker-2")
ONE_SHOT = ("migrate", "keys")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))  # PyYAML resolves the anchors and `<<:` merges
    assert isinstance(data, dict)
    return data


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's ${VAR:-default} with nothing set in the environment: the defaults."""
    env = env or {}
    return _VAR.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), value)


def environment(service: dict[str, Any]) -> dict[str, str]:
    return {k: interpolate(str(v)) for k, v in service["environment"].items()}


def mounted(service: dict[str, Any], target: str) -> Path:
    for volume in service["volumes"]:
        source, _, rest = volume.partition(":")
        if rest.split(":")[0] == target:
            return (COMPOSE_DIR / source).resolve()
    raise AssertionError(f"nothing mounted at {target}")


def broker_config(service: dict[str, Any]) -> Config:
    path = mounted(service, service["environment"]["BROKER_CONFIG"])
    return load_config(path, env=environment(service))


def test_compose_file_follows_the_compose_specification() -> None:
    """The Compose Specification's own JSON schema (tests/deploy/schemas/README.md says which)."""
    jsonschema = require_module("jsonschema")
    schema = json.loads((Path(__file__).parent / "schemas" / "compose-spec.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    data = compose()
    assert [e.message for e in validator.iter_errors(data)] == []
    data["services"]["nginx"]["healthcheck"]["intervall"] = "5s"  # and a misspelt key is caught
    assert any("intervall" in e.message for e in validator.iter_errors(data))


def test_the_stack_has_its_services() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", "slapd", "moto", "nginx", *REPLICAS, *ONE_SHOT}
    for name in REPLICAS:
        assert services[name]["image"] == "federation-broker:local"
        assert services[name]["build"] == {"context": "../..", "dockerfile": "Dockerfile"}
        assert services[name]["command"][0] == "serve"
        assert (COMPOSE_DIR / services[name]["build"]["context"] / "Dockerfile").resolve() == ROOT / "Dockerfile"
    assert services["migrate"]["command"][0] == "migrate"


def test_every_long_running_service_has_a_healthcheck_and_replicas_wait_for_theirs() -> None:
    services = compose()["services"]
    for name, service in services.items():
        if name not in ONE_SHOT:
            assert service["healthcheck"]["test"][0] == "CMD", name
    for name in REPLICAS:
        depends = services[name]["depends_on"]
        assert {k for k, v in depends.items() if v["condition"] == "service_healthy"} == {"redis", "slapd", "moto"}
        assert {k for k, v in depends.items() if v["condition"] == "service_completed_successfully"} == set(ONE_SHOT)
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"])
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert set(services["nginx"]["depends_on"]) == set(REPLICAS)


def test_replicas_run_like_the_chart_runs_them() -> None:
    """Non-root, read-only root filesystem, a writable /tmp, and time to drain on stop."""
    services = compose()["services"]
    for name in (*REPLICAS, *ONE_SHOT):
        service = services[name]
        assert service["user"] == "10001:10001" and service["read_only"] is True and service["tmpfs"] == ["/tmp"]
    for name in REPLICAS:
        grace = int(services[name]["stop_grace_period"].removesuffix("s"))
        assert grace > 5 + 20  # the broker's server.drain_seconds + shutdown_grace_seconds defaults


def test_the_brokers_configuration_loads_with_the_brokers_model() -> None:
    services = compose()["services"]
    configs = [broker_config(services[name]) for name in (*REPLICAS, *ONE_SHOT)]
    assert all(c == configs[0] for c in configs)  # one file for all of them
    config = configs[0]
    assert config.state.backend == "redis" and config.state.redis_url is not None \
        and config.state.redis_url.get_secret_value() == "redis://redis:6379/0"
    assert config.database.url == "postgresql+psycopg://broker@postgres:5432/broker"
    db_password = config.database.password
    assert db_password is not None
    assert db_password.get_secret_value() == environment(services["postgres"])["POSTGRES_PASSWORD"]
    assert config.sts.mode == "aws" and config.sts.endpoint_url == "http://moto:5000"
    assert config.directory is not None and config.directory.type == "ldap"
    assert config.directory.servers == ["ldap://slapd:1389"]
    assert config.keys is not None
    keys_mount = [v for v in services["keys"]["volumes"] if v.startswith("keys:")]
    assert keys_mount == ["keys:/var/lib/broker/keys"]
    assert config.keys.current.key.parent == Path("/var/lib/broker/keys")
    assert "--out /var/lib/broker/keys" in " ".join(services["keys"]["entrypoint"])


def test_every_environment_reference_in_the_config_is_set() -> None:
    services = compose()["services"]
    text = (COMPOSE_DIR / "broker.yaml").read_text(encoding="utf-8")
    references = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    assert references == {"BROKER_DB_PASSWORD", "BROKER_REDIS_URL", "LDAP_BIND_PASSWORD"}
    for name in REPLICAS:
        assert references <= set(services[name]["environment"])


def nginx_upstreams() -> list[str]:
    text = (COMPOSE_DIR / "nginx.conf").read_text(encoding="utf-8")
    block = re.search(r"upstream broker \{(.*?)\}", text, re.DOTALL)
    assert block is not None
    return re.findall(r"^\s*server\s+(\S+?)(?:\s|;)", block.group(1), re.MULTILINE)


def test_nginx_sends_to_both_replicas_on_the_brokers_port() -> None:
    config = broker_config(compose()["services"]["broker-1"])
    assert nginx_upstreams() == [f"{name}:{config.server.port}" for name in REPLICAS]
    assert config.server.host == "0.0.0.0"


def test_the_broker_trusts_nginx_and_only_it() -> None:
    data = compose()
    config = broker_config(data["services"]["broker-1"])
    nginx = ipaddress.ip_address(data["services"]["nginx"]["networks"]["stack"]["ipv4_address"])
    subnet = ipaddress.ip_network(data["networks"]["stack"]["ipam"]["config"][0]["subnet"])
    assert nginx in subnet
    assert any(nginx in net for net in config.server.trusted_proxies)
    # not the whole network: a replica or the directory cannot claim to be the proxy
    assert all(net.num_addresses == 1 for net in config.server.trusted_proxies)
    for name in REPLICAS:
        assert data["services"][name]["networks"] == ["stack"]


@pytest.mark.proxy
def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    require_program("nginx")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    text = (COMPOSE_DIR / "nginx.conf").read_text(encoding="utf-8")
    for upstream in nginx_upstreams():  # compose's service names resolve only inside compose
        text = text.replace(f"server {upstream}", f"server 127.0.0.1:{upstream.rsplit(':', 1)[1]}")
    conf = tmp_path / "nginx.conf"
    conf.write_text(text, encoding="utf-8")
    done = subprocess.run([nginx, "-t", "-c", str(conf), "-p", str(tmp_path),
                           "-g", f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0 and "test is successful" in done.stderr, done.stderr
    # and a broken one is refused (the check is real)
    conf.write_text(text.replace("proxy_pass http://broker;", "proxy_pass http://broker"), encoding="utf-8")
    broken = subprocess.run([nginx, "-t", "-c", str(conf), "-p", str(tmp_path),
                             "-g", f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;"],
                            capture_output=True, text=True, timeout=30, check=False)
    assert broken.returncode != 0


# ---- slapd: the image's entrypoint with a real slapd, and the broker reading it ----

@pytest.fixture
def seeded_slapd(tmp_path: Path) -> Iterator[str]:
    require_program("/usr/sbin/slapd", "/usr/sbin/slappasswd", "ldapadd", "ldapsearch", "ldapwhoami")
    port = free_port()
    env = {**os.environ, "PATH": f"/usr/sbin:{os.environ.get('PATH', '/usr/bin:/bin')}",
           "SLAPD_RUN_DIR": str(tmp_path / "run"), "SLAPD_URL": f"ldap://127.0.0.1:{port}/"}
    log = tmp_path / "entrypoint.log"
    with log.open("w") as out:
        proc = subprocess.Popen(["sh", str(COMPOSE_DIR / "slapd" / "entrypoint.sh")], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "ready on" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield f"ldap://127.0.0.1:{port}"
    finally:
        proc.terminate()  # the entrypoint's trap stops slapd
        proc.wait(timeout=15)
        pidfile = tmp_path / "run" / "slapd.pid"
        deadline = time.monotonic() + 10
        while pidfile.exists() and time.monotonic() < deadline:  # slapd removes it when it has stopped
            time.sleep(0.05)
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
    assert "seeded from seed.ldif" in log.read_text()


@pytest.mark.ldap
def test_the_seed_loads_into_slapd_and_the_broker_signs_people_in(seeded_slapd: str) -> None:
    services = compose()["services"]
    config = broker_config(services["broker-1"])
    assert config.directory is not None
    directory = config.directory.model_copy(update={"servers": [seeded_slapd]})
    connector = build_connector(directory, state=MemoryState())
    try:
        alice = connector.login("alice", "alice-local-only")  # README's local-only passwords
        bob = connector.login("bob", "bob-local-only")
        wrong = connector.login("alice", "not-her-password")
    finally:
        connector.close()
    assert isinstance(alice, Identity) and isinstance(bob, Identity), (alice, bob)
    mapped = {m.group for m in config.mapping.mappings}
    assert mapped == {"aws-developers", "aws-admins"}
    assert mapped <= set(alice.groups)
    assert set(bob.groups) == {"aws-developers"}
    assert not isinstance(wrong, Identity)


def test_the_slapd_image_passes_hadolint() -> None:
    done = lint(COMPOSE_DIR / "slapd" / "Dockerfile")
    assert done.returncode == 0, done.stdout


# ---- the whole stack, where an engine runs ----

def test_the_stack_comes_up_and_serves_through_nginx() -> None:
    docker = engine()
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30,
                                        check=False).returncode != 0:
        pytest.skip("no container engine with `docker compose` here: the stack is not brought up")
    project = f"broker-test-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {**os.environ, "BROKER_HTTP_PORT": str(port)}
    base = [docker, "compose", "-p", project, "-f", str(COMPOSE)]
    try:
        subprocess.run([*base, "up", "--build", "--detach", "--wait", "--wait-timeout", "600"], env=env, check=True,
                       timeout=1800)
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        served_by = {httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code for _ in range(6)}
        assert served_by == {200}
    finally:
        subprocess.run([*base, "down", "--volumes", "--remove-orphans"], env=env, capture_output=True, timeout=300,
                       check=False)


def test_compose_host_port_is_loopback_and_settable() -> None:
    ports = compose()["services"]["nginx"]["ports"]
    assert ports == ["127.0.0.1:${BROKER_HTTP_PORT:-8080}:8080"]
    assert interpolate(ports[0]) == "127.0.0.1:8080:8080"
    assert interpolate(ports[0], {"BROKER_HTTP_PORT": "18080"}) == "127.0.0.1:18080:8080"
