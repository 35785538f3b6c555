"""Every decision is broker.flow's, each one audit event of one shape: a password sign-in (with
its rate limits, counted per account as the directory names it), an upstream sign-in, a device
approval and an admin sign-in. Unit tests on a Flow with in-memory state (tests/flows.py)."""

from __future__ import annotations

from typing import Any

import pytest

from broker.audit import Decision
from broker.connectors.base import PasswordConnector, SignIn
from broker.domain import Identity
from broker.errors import (
    BrokerError,
    DirectoryUnavailable,
    Forbidden,
    InvalidCredentials,
    StorageUnavailable,
    TooManyRequests,
    Unauthenticated,
    UpstreamRejected,
)
from broker.flow import DecisionContext, Flow
from tests.flows import ListLog, unit_flow

SHAPE = {"user", "immutable_id", "via"}
"""The keys every access decision's details carry."""
CTX = DecisionContext(source_ip="192.0.2.7", request_id="req-1", via="portal")
PAT = Identity(id="u-pat", username="pat", groups=("admins",), source="fake")


class Directory:
    """A password + lookup connector: pat (password "pw"); ``CORP\\pat`` is pat too."""

    name = "fake"

    def __init__(self) -> None:
        self.disabled = False
        self.down = False

    def close(self) -> None:
        pass

    def login_key(self, username: str) -> str:
        return username.strip().casefold().removeprefix("corp\\")

    def login(self, username: str, password: str) -> Identity | InvalidCredentials:
        if self.down:
            raise DirectoryUnavailable("the directory is down")
        if self.login_key(username) != "pat" or password != "pw":
            return InvalidCredentials(reason="wrong_password")
        return PAT

    def lookup(self, username: str, *, uncached: bool = False) -> Identity | None:
        return None if self.disabled else PAT


def _flow(**limits: Any) -> tuple[Flow, ListLog, Directory]:
    log, directory = ListLog(), Directory()
    return unit_flow(directory, log=log, **limits), log, directory


def _one(log: ListLog) -> Decision:
    (write,) = log.writes
    (event,) = write
    return event


def _shaped(event: Decision, action: str, outcome: str, actor: str) -> dict[str, Any]:
    assert (event.action, event.outcome, event.ctx.actor) == (action, outcome, actor)
    assert event.ctx.source_ip == "192.0.2.7" and event.ctx.request_id == "req-1" and event.at is not None
    assert event.details is not None and SHAPE <= set(event.details)
    return event.details


def test_a_password_sign_in_is_one_event_allowed_or_refused() -> None:
    flow, log, directory = _flow()
    flow.sign_in("pat", "pw", ctx=CTX)
    d = _shaped(_one(log), "login", "allow", "user:pat")
    assert d == {"user": "pat", "immutable_id": "u-pat", "via": "portal", "source": "fake"}
    log.writes.clear()
    with pytest.raises(InvalidCredentials):
        flow.sign_in("pat", "guess", ctx=CTX)
    d = _shaped(_one(log), "login", "deny", "user:pat")
    assert d["code"] == "invalid_credentials" and d["reason"] == "wrong_password" and d["immutable_id"] == ""
    assert "guess" not in repr(log.writes)
    log.writes.clear()
    directory.down = True
    with pytest.raises(DirectoryUnavailable):
        flow.sign_in("pat", "pw", ctx=CTX)
    assert _shaped(_one(log), "login", "error", "user:pat")["code"] == "directory_unavailable"


def test_malformed_sign_ins_never_reach_the_directory_nor_the_counters() -> None:
    flow, log, directory = _flow(login_failures_per_user=1)
    directory.down = True  # would raise if asked
    for username, password in (("", "pw"), ("p" * 257, "pw"), ("pat", "p" * 1025)):
        with pytest.raises(InvalidCredentials):
            flow.sign_in(username, password, ctx=CTX)
    directory.down = False
    assert log.writes == [] and flow.sign_in("pat", "pw", ctx=CTX) is PAT  # nothing counted, nothing audited


def test_sign_in_limits_count_the_account_the_directory_names_and_refusals_are_audited_once() -> None:
    flow, log, _ = _flow(login_failures_per_user=2)
    for name in ("pat", "CORP\\pat"):  # two spellings of one account
        with pytest.raises(InvalidCredentials):
            flow.sign_in(name, "guess", ctx=CTX)
    log.writes.clear()
    for name in ("Pat", "corp\\PAT", "pat"):
        with pytest.raises(TooManyRequests):
            flow.sign_in(name, "pw", ctx=CTX)  # even the right password waits
    d = _shaped(_one(log), "login", "deny", "user:Pat")  # once per window, not per attempt
    assert d["code"] == d["reason"] == "rate_limited"


def test_login_key_is_on_the_password_protocol() -> None:
    class NoKey:
        name = "old"

        def close(self) -> None:
            pass

        def login(self, username: str, password: str) -> Identity | InvalidCredentials:
            return PAT

    assert isinstance(Directory(), PasswordConnector) and not isinstance(NoKey(), PasswordConnector)


def _upstream(flow: Flow, verify: Any, *, establish: Any = None) -> Any:
    upstream_ctx = DecisionContext(source_ip="192.0.2.7", request_id="req-1", via="upstream")
    return flow.upstream_sign_in(idp="corp", protocol="saml", ctx=upstream_ctx, verify=verify,
                                 establish=establish or (lambda signed_in: ("session", signed_in.next_url)),
                                 refuse=lambda exc: ("refused", exc.code))


def test_an_upstream_sign_in_is_one_event_of_the_same_shape() -> None:
    flow, log, _ = _flow()
    assert _upstream(flow, lambda: SignIn(PAT, "/roles")) == ("session", "/roles")
    event = _one(log)
    d = _shaped(event, "login", "allow", "user:pat")
    assert (event.target_type, event.target_id) == ("identity_provider", "corp")
    assert d == {"user": "pat", "immutable_id": "u-pat", "via": "upstream", "idp": "corp", "protocol": "saml",
                 "source": "fake", "groups": ["admins"]}


def test_an_upstream_refusal_is_one_event_and_a_failed_write_does_not_change_the_answer() -> None:
    flow, log, _ = _flow()

    def replayed() -> SignIn:
        raise UpstreamRejected(reason="upstream_replay")

    assert _upstream(flow, replayed) == ("refused", "upstream_rejected")
    d = _shaped(_one(log), "login", "deny", "upstream:corp")
    assert d["user"] is None and d["immutable_id"] is None and d["reason"] == "upstream_replay"

    log.broken = StorageUnavailable("the database is down")
    assert _upstream(flow, replayed) == ("refused", "upstream_rejected")  # the refusal stands
    with pytest.raises(StorageUnavailable):  # no sign-in without its audit event
        _upstream(flow, lambda: SignIn(PAT, "/"))


def test_a_refused_session_is_an_audited_refusal_of_the_upstream_sign_in() -> None:
    flow, log, _ = _flow()

    def no_session(signed_in: SignIn) -> Any:
        raise StorageUnavailable("the shared state is down")

    assert _upstream(flow, lambda: SignIn(PAT, "/"), establish=no_session) == ("refused", "storage_unavailable")
    assert _shaped(_one(log), "login", "error", "upstream:corp")["code"] == "storage_unavailable"


def _pending(flow: Flow) -> str:
    return flow.devices.authorize(client_id="awsbroker").user_code


@pytest.mark.parametrize(("choice", "outcome"), [("approve", "approved"), ("deny", "denied")])
def test_a_device_decision_is_one_event_of_the_same_shape(choice: str, outcome: str) -> None:
    flow, log, _ = _flow()
    device_ctx = DecisionContext(source_ip="192.0.2.7", request_id="req-1", via="device")
    assert flow.decide_device(PAT, _pending(flow), choice, ctx=device_ctx) == outcome
    d = _shaped(_one(log), f"device.{choice}", "allow", "user:pat")
    assert d == {"user": "pat", "immutable_id": "u-pat", "via": "device", "groups": ["admins"]}


def test_a_device_decision_on_an_unknown_code_is_a_counted_audited_guess() -> None:
    flow, log, _ = _flow(user_code_attempts_per_address=1)
    assert flow.decide_device(PAT, "BCDF-GHJK", "approve", ctx=CTX) == "unknown_code"
    d = _shaped(_one(log), "device.decide", "deny", "user:pat")
    assert d["code"] == "unknown_user_code"
    with pytest.raises(TooManyRequests):  # the guess counted
        flow.device_code(PAT, _pending(flow), ctx=CTX)


def test_no_choice_decides_nothing_and_a_disabled_account_approves_nothing() -> None:
    flow, log, directory = _flow()
    code = _pending(flow)
    assert flow.decide_device(PAT, code, "maybe", ctx=CTX) == "no_choice" and log.writes == []
    directory.disabled = True
    with pytest.raises(Unauthenticated):
        flow.decide_device(PAT, code, "approve", ctx=CTX)
    assert _shaped(_one(log), "device.approve", "deny", "user:pat")["code"] == "unauthenticated"
    assert flow.devices.pending(code) is not None  # still pending: nothing was decided


def test_an_admin_sign_in_is_one_write_the_sign_in_and_the_admin_decision_of_the_same_shape() -> None:
    flow, log, _ = _flow()

    def admins_only(identity: Identity) -> str:
        if "admins" not in identity.groups:
            raise Forbidden("not an admin")
        return identity.username

    assert flow.admin_sign_in("pat", "pw", ctx=CTX, check=admins_only) == "pat"
    (write,) = log.writes
    sign_in, admitted = write
    _shaped(sign_in, "login", "allow", "user:pat")
    assert _shaped(admitted, "admin.sign_in", "allow", "user:pat")["groups"] == ["admins"]
    log.writes.clear()
    with pytest.raises(Forbidden):
        flow.admin_sign_in("pat", "pw", ctx=CTX, check=lambda identity: admins_only(Identity(id="x", username="x")))
    (write,) = log.writes
    assert [(e.action, e.outcome) for e in write] == [("login", "allow"), ("admin.sign_in", "deny")]
    log.writes.clear()
    with pytest.raises(InvalidCredentials):
        flow.admin_sign_in("pat", "guess", ctx=CTX, check=admins_only)
    assert [(e.action, e.outcome) for e in _one_write(log)] == [("login", "deny")]


def _one_write(log: ListLog) -> list[Decision]:
    (write,) = log.writes
    return write


def test_every_refusal_names_its_code_and_reason() -> None:
    flow, log, _ = _flow()
    with pytest.raises(BrokerError):
        flow.sign_in("nobody", "pw", ctx=CTX)
    assert {"code", "reason"} <= set(_one(log).details or {})


def test_a_device_login_starts_and_completes_in_the_flow_and_completed_starts_no_longer_count() -> None:
    """RFC 8628 from the CLI's side: ``start_device`` is rate limited per address (starts count
    until completed), ``complete_device`` hands over the approved identity once and gives the
    address its start back."""
    flow, log, _ = _flow(device_authorizations_per_address=2)
    cli = DecisionContext(source_ip="192.0.2.7", request_id="req-1", via="cli")
    first = flow.start_device(client_id="awsbroker", user_agent="awsbroker/0.1", ctx=cli)
    pending = flow.devices.pending(first.user_code)
    assert pending is not None and pending.address == "192.0.2.7"
    flow.start_device(client_id="awsbroker", user_agent=None, ctx=cli)
    with pytest.raises(TooManyRequests):  # two starts, none completed
        flow.start_device(client_id="awsbroker", user_agent=None, ctx=cli)
    assert flow.decide_device(PAT, first.user_code, "approve", ctx=CTX) == "approved"
    assert flow.complete_device(device_code=first.device_code, client_id="awsbroker", ctx=cli) == PAT
    flow.start_device(client_id="awsbroker", user_agent=None, ctx=cli)  # the completed start counts no more
    assert [e.action for e in log.events] == ["device.approve"]  # starting and polling decide nothing
