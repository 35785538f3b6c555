"""Forwarding in the running app: configuration errors at load, the forwarder in the lifespan,
issuance that a slow receiver never holds up (on SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from broker.app import create_app
from broker.audit import AuditFilter
from broker.cli.check_config import check_config_file
from broker.config import parse_config
from broker.db import outbox
from broker.errors import ConfigError
from tests.conftest import ADMIN_TOKEN, make_config
from tests.forwarding.conftest import wait_for
from tests.forwarding.receivers import SyslogReceiver, WebhookReceiver, server_tls
from tests.test_flow import ALICE_PW, SECTIONS, basic


def _problems(audit: dict, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config({"audit": audit}, env=env or {})
    return err.value.problems


def test_configuration_errors_name_their_path():
    assert _problems({"forward": [{"type": "webhook", "url": "http://hooks.example/x"}]}) == [
        "audit.forward[0].url: Value error, must be an https:// URL (http:// only to a loopback address)"]
    assert _problems({"forward": [{"type": "webhook", "url": "https://u:p@hooks.example/x"}]}) == [
        "audit.forward[0].url: Value error, no credentials in the URL: put them in a header (headers_env)"]
    assert _problems({"forward": [{"type": "syslog", "address": "siem.example:6514"}]}) == [
        "audit.forward[0].tls: Field required"]
    assert _problems({"forward": [{"type": "syslog", "address": "siem.example", "tls": "none"}]}) == [
        "audit.forward[0].address: Value error, must be host:port (or [IPv6]:port)"]
    assert _problems({"forward": [{"type": "syslog", "adress": "a:1", "address": "a:1", "tls": "none"}]}) == [
        "audit.forward[0].adress: unknown key (did you mean 'address'?)"]
    (tls,) = _problems({"forward": [{"type": "syslog", "address": "a:1", "tls": {"cert_file": "/etc/hostname"}}]})
    assert tls.startswith("audit.forward[0].tls: Value error, cert_file and key_file go together")
    (twice,) = _problems({"forward": [{"type": "syslog", "address": "a:1", "tls": "none"},
                                      {"type": "syslog", "address": "a:1", "tls": "none", "facility": "local0"}]})
    assert twice == "audit.forward: Value error, destination 'syslog:a:1' is listed twice ([0] and [1]): give each a name"
    assert _problems({"forward": [{"type": "kafka"}]})[0].startswith("audit.forward[0]: Input tag 'kafka'")
    # loopback may be plain http (a local relay); [v6] addresses parse
    ok = parse_config({"audit": {"forward": [{"type": "webhook", "url": "http://127.0.0.1:9/h"},
                                             {"type": "syslog", "address": "[::1]:514", "tls": "none"}]}}, env={})
    assert [d.key for d in ok.audit.forward] == ["webhook:127.0.0.1:9", "syslog:[::1]:514"]


def test_a_webhook_header_whose_variable_is_missing_stops_the_start(tmp_path: Path):
    audit = {"forward": [{"type": "webhook", "url": "https://hooks.example/in", "headers_env": {"Authorization": "HOOK"}}]}
    with pytest.raises(ConfigError) as err:
        create_app(make_config(tmp_path, audit=audit), env={})
    assert err.value.problems == ["audit.forward[0].headers_env.Authorization: environment variable HOOK is not set"]
    path = tmp_path / "broker.yaml"
    path.write_text(f"database: {{url: 'sqlite:///{tmp_path}/c.db'}}\naudit:\n  forward:\n"
                    "    - {type: webhook, url: 'https://hooks.example/in', headers_env: {Authorization: HOOK}}\n"
                    "    - {type: syslog, address: 'siem.example:514', tls: none}\n")
    check = check_config_file(path, env={}, database=False)
    assert check.problems == ["audit.forward[0].headers_env.Authorization: environment variable HOOK is not set"]
    assert any("audit.forward[1]: tls: none" in w for w in check.warnings)


def _issue(client: TestClient) -> None:
    r = client.post("/api/v1/credentials", json={"account": "dev", "role": "Admin"}, headers=basic("alice", ALICE_PW))
    assert r.status_code == 200, r.text


def _config(tmp_path: Path, database_url: str, forward: list[dict]) -> object:
    return make_config(tmp_path, **SECTIONS, database={"url": database_url},
                       audit={"forward": forward, "forward_interval_seconds": 0.05})


def test_a_slow_receiver_never_holds_up_issuance(tmp_path, database_url, pki):
    hook = WebhookReceiver(tls=server_tls(pki.cert, pki.key)).start()
    hook.gate.clear()  # the receiver holds every request until the test lets it answer
    try:
        config = _config(tmp_path, database_url, [{"type": "webhook", "url": hook.url, "ca_file": str(pki.ca),
                                                   "timeout_seconds": 60}])
        app = create_app(config, env={"BROKER_ADMIN_TOKEN": ADMIN_TOKEN})
        engine = app.state.services.engine
        with TestClient(app) as client:  # the lifespan runs the forwarder
            _issue(client)
            wait_for(hook.arrived.is_set, "the forwarder's first POST")  # now stuck in the receiver
            for _ in range(5):
                _issue(client)  # answered while the forwarder waits on the receiver
            assert hook.requests == []  # nothing delivered yet
            pending = {r["event_id"] for r in outbox.pending_rows(engine)}
            hook.gate.set()
            wait_for(lambda: outbox.pending_rows(engine) == [], "the outbox to drain")
        events = app.state.services.store.audit_events(AuditFilter(), limit=1000, before_id=None)
        issued = [e for e in events if e["action"] == "issue.credentials"]
        assert len(issued) == 6 and {e["id"] for e in issued} <= pending | set(hook.event_ids())
        assert sorted(hook.event_ids()) == sorted({e["id"] for e in events})  # each once, none lost
    finally:
        hook.stop()
        app.state.services.close()


def test_the_forwarder_runs_in_the_lifespan_and_stops_with_it(tmp_path, pki):
    rx = SyslogReceiver(tls=server_tls(pki.cert, pki.key)).start()
    try:
        config = _config(tmp_path, f"sqlite:///{tmp_path / 'b.db'}", [
            {"type": "syslog", "address": f"127.0.0.1:{rx.port}", "tls": {"ca_file": str(pki.ca),
                                                                          "server_name": "localhost"}}])
        app = create_app(config, env={"BROKER_ADMIN_TOKEN": ADMIN_TOKEN})
        with TestClient(app) as client:
            _issue(client)
            wait_for(lambda: "issue.credentials" in [m.msgid for m in rx.messages()], "the issuance's event")
            metrics = client.get("/metrics").text
            assert f'broker_audit_forwarded_total{{destination="syslog:127.0.0.1:{rx.port}"}}' in metrics
            thread = app.state.forwarder.thread
            assert thread is not None and thread.is_alive()
        assert not thread.is_alive()  # stopped with the lifespan
        with TestClient(app) as client:  # a second lifespan forwards again
            _issue(client)
            wait_for(lambda: [m.msgid for m in rx.messages()].count("issue.credentials") == 2, "the second issuance")
    finally:
        rx.stop()
        app.state.services.close()


def test_without_forwarding_there_is_no_forwarder_and_no_outbox_row(app_factory):
    client = app_factory(**SECTIONS)
    _issue(client)
    assert client.app.state.forwarder is None
    assert outbox.pending_rows(client.app.state.services.engine) == []


def test_the_operator_commands_events_are_forwarded_too(tmp_path):
    from broker.cli.existing_database import existing_store
    from tests.forwarding.conftest import admin_writes

    config = make_config(tmp_path, audit={"forward": [{"type": "syslog", "address": "127.0.0.1:9", "tls": "none"}]})
    app = create_app(config, env={})  # migrates the database
    app.state.services.close()
    with existing_store(config) as store:
        assert not isinstance(store, str)
        admin_writes(store)  # as `broker org discover --apply` registers accounts
        events = store.audit_events(AuditFilter(actor="admin:test"), limit=10, before_id=None)
        engine = store.engine
        rows = outbox.pending_rows(engine)
    assert {e["id"] for e in events} <= {r["event_id"] for r in rows}
    assert {r["destination"] for r in rows} == {"syslog:127.0.0.1:9"}
