"""The checks of a break-glass sign-in, and the identity and roles it gives.

- the password: the account's hash, or a dummy hash of the same scheme for an unknown name (the
  same work either way); ``InvalidCredentials`` (one answer) when wrong;
- the TOTP code (``broker.mfa.totp``): once only, also across replicas — the step a code was
  accepted at is claimed with ``set_if_absent`` in the shared state store (one of two requests
  with the same code wins) and the highest accepted step is kept, so an older code is refused
  too (``MfaCodeReused``);
- the availability rule: with ``when: directory_unavailable`` the directory must be unavailable
  now: the check /readyz's ``dependencies.directory`` runs (every server's circuit breaker open,
  or the service-account bind failing, bounded by the directory's timeouts); it answering is
  ``BreakGlassUnavailable``.

The identity: source ``break_glass``, id ``break-glass:<username>``, username
``break-glass-<username>``, no groups, the second factor recorded (``broker.mfa.stepped_up``)
and an end ``session_seconds`` after the sign-in. Its roles are exactly the listed ones, built
from the mapping's accounts and roles, each with a reason of kind ``break_glass``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from broker.break_glass import BREAK_GLASS_SOURCE, ID_PREFIX, NAME_PREFIX
from broker.break_glass.config import BreakGlassAccount, BreakGlassConfig
from broker.connectors.static import dummy_hash, verify_password
from broker.domain import GrantReason, Identity
from broker.errors import BreakGlassUnavailable, InvalidCredentials, MfaCodeReused
from broker.logs import get_logger
from broker.mapping.rules import Resolution, role_grant
from broker.mapping.store import MappingStore
from broker.mfa import stepped_up
from broker.mfa.totp import STEP_SECONDS, WINDOW, TotpReplay, verify
from broker.notify import Notification, Notifier
from broker.state import StateStore

log = get_logger("broker.break_glass")

CODE_TTL = (2 * WINDOW + 2) * STEP_SECONDS
"""How long an accepted step is remembered: past it, a code of that step is outside the window anyway."""


@dataclass(frozen=True)
class Availability:
    """Why break-glass sign-in is open now: ``always`` (the config) or the directory's failure."""

    open: bool
    why: str


class BreakGlass:
    def __init__(self, config: BreakGlassConfig, *, state: StateStore, store: MappingStore,
                 directory_check: Callable[[], object] | None, notifier: Notifier | None = None,
                 count: Callable[[str], None] | None = None) -> None:
        """``directory_check``: raises while the directory is unavailable (``broker.readiness.directory_check``);
        None: no directory is configured. ``notifier``: where the alerts go (None: none is set up,
        logged at each use). ``count``: ``broker_break_glass_total`` by outcome."""
        self.config = config
        self._notifier = notifier
        self._count = count or (lambda _outcome: None)
        self._state = state
        self._store = store
        self._check = directory_check
        self._accounts = {a.username: a for a in config.accounts}
        self._dummy = dummy_hash([a.password_hash for a in config.accounts])

    @staticmethod
    def login_key(username: str) -> str:
        """What rate limits count a break-glass sign-in against (apart from the directory's names)."""
        return ID_PREFIX + username.strip().casefold()

    def check_password(self, username: str, password: str) -> BreakGlassAccount:
        account = self._accounts.get(username.strip().casefold())
        if account is None:
            verify_password(password, self._dummy)
            raise InvalidCredentials(reason="unknown_user")
        if not password or not verify_password(password, account.password_hash):
            raise InvalidCredentials(reason="wrong_password")
        return account

    def check_code(self, account: BreakGlassAccount, code: str, *, at: float) -> int:
        """The time step of a right, unused ``code``; claims it (atomically, in the shared state)."""
        if account.totp_secret is None:
            raise InvalidCredentials(reason="no_totp_secret")
        last_key = f"break-glass:totp-last:{account.username}"
        raw = self._state.get(last_key)
        last = int(raw) if raw is not None and raw.lstrip("-").isdigit() else None
        try:
            step = verify(account.totp_secret.get_secret_value(), code, at=at, last_step=last)
        except TotpReplay:
            raise MfaCodeReused(reason="replayed_code") from None
        if step is None:
            raise InvalidCredentials(reason="wrong_code")
        if not self._state.set_if_absent(f"break-glass:totp-step:{account.username}:{step}", "1", ttl=CODE_TTL):
            raise MfaCodeReused(reason="replayed_code")
        self._state.set(last_key, str(max(step, last if last is not None else step)), ttl=CODE_TTL)
        return step

    def availability(self) -> Availability:
        """Is break-glass sign-in open now? The directory's check runs each time (bounded)."""
        if self.config.when == "always":
            return Availability(True, "always")
        if self._check is None:
            return Availability(False, "no directory check")
        try:
            self._check()
        except Exception as exc:  # noqa: BLE001 - any failure of the check: the directory is unavailable
            return Availability(True, f"directory unavailable: {getattr(exc, 'message', None) or type(exc).__name__}")
        return Availability(False, "the directory answers")

    def check_available(self) -> str:
        state = self.availability()
        if not state.open:
            raise BreakGlassUnavailable(reason="directory_up")
        return state.why

    def identity(self, account: BreakGlassAccount, *, at: float) -> Identity:
        identity = Identity(
            id=ID_PREFIX + account.username,
            username=NAME_PREFIX + account.username,
            display_name=f"Break-glass: {account.username}",
            source=BREAK_GLASS_SOURCE,
            valid_until=at + self.config.session_seconds,
        )
        return stepped_up(identity, method="otp", at=at)

    def account_of(self, identity: Identity) -> BreakGlassAccount | None:
        """The configured account a break-glass identity stands for (None: not one, or no longer)."""
        if identity.source != BREAK_GLASS_SOURCE or not identity.id.startswith(ID_PREFIX):
            return None
        account = self._accounts.get(identity.id.removeprefix(ID_PREFIX))
        if account is None or identity.username != NAME_PREFIX + account.username:
            return None
        return account

    def resolution(self, identity: Identity) -> Resolution:
        """Exactly the roles listed for the account (those the mapping still holds)."""
        account = self.account_of(identity)
        if account is None:
            return Resolution((), (), ())
        snapshot = self._store.full_snapshot()
        grants = []
        notes = []
        for ref in account.roles:
            acc = snapshot.account(ref.account)
            role = snapshot.role(acc.id, ref.role) if acc is not None else None
            if acc is None or role is None:
                notes.append(f"break-glass role {ref.role!r} in {ref.account!r} is not in the mapping")
                continue
            reason = GrantReason("break_glass", account.username, "", True, True, account.session_duration, "config")
            grants.append(role_grant(acc, role, (reason,)))
        return Resolution(tuple(grants), (), (), tuple(notes))

    # ---- loud: log, metric, alert ----

    def refused(self, username: str, *, code: str, reason: str | None, address: str | None) -> None:
        """A refused break-glass sign-in: logged and counted (the flow audits it); no alert."""
        log.warning("break_glass_refused", username=username[:64], code=code, reason=reason, address=address)
        self._count(code)

    def used(self, identity: Identity, *, what: str, address: str | None, at: float,
             account: str | None = None, role: str | None = None, why: str | None = None) -> None:
        """A break-glass sign-in (``what`` ``sign_in``) or issuance (``console`` / ``credentials``):
        a WARNING line, the metric, and the alert to ``break_glass.alert``. No secret in any of them."""
        when = datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        log.warning("break_glass_use", what=what, user=identity.username, address=address, account=account, role=role,
                    why=why)
        self._count("sign_in" if what == "sign_in" else "issue")
        facts = [("who", identity.username), ("from", address or "unknown"), ("at", when)]
        if account is not None:
            facts += [("account", account), ("role", role or ""), ("channel", what)]
        if why is not None:
            facts.append(("why open", why))
        title = (f"Break-glass sign-in: {identity.username}" if what == "sign_in"
                 else f"Break-glass {what}: {identity.username} as {role} in {account}")
        note = Notification(event="break_glass.use", title=title, facts=tuple(facts),
                            data={"what": what, "user": identity.username, "immutable_id": identity.id,
                                  "address": address, "at": when, "account": account, "role": role})
        if self._notifier is None or not self.config.alert:
            log.error("break_glass_alert_not_sent", why="no notifier" if self._notifier is None else "break_glass.alert is empty")
            return
        try:
            self._notifier.notify(list(self.config.alert), note)
        except Exception as exc:  # noqa: BLE001 - the use is audited and logged: the alert's failure must not undo it
            log.error("break_glass_alert_failed", error_type=type(exc).__name__)
