"""Access policies (config ``jit.policies``): who approves an eligible role, for how long at
most, what a request must give, and when it approves itself.

A policy is named; a mapping or naming rule with ``access: eligible`` names one (``policy:``).
``notify:`` names the webhooks (``notifications.webhooks``) told of each request's changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from broker.groups import normalize
from broker.jit.requests import parse_duration
from broker.mapping.model import MAX_SESSION, MIN_SESSION
from broker.mapping.patterns import PatternError, compile_pattern

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAYS: tuple[Day, ...] = _DAYS[:5]


def _seconds(value: object) -> object:
    if isinstance(value, int | str) and not isinstance(value, bool):
        parsed = parse_duration(value)
        if parsed is None:
            raise ValueError("a duration is seconds or e.g. 2h, 90m, 1h30m")
        return parsed
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/Berlin)") from None
    return value


def _re2(value: str) -> str:
    try:
        compile_pattern(value)
    except PatternError as exc:
        raise ValueError(f"the ticket pattern is not RE2 syntax: {exc}") from None
    return value


Seconds = Annotated[int, BeforeValidator(_seconds), Field(ge=MIN_SESSION, le=MAX_SESSION)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BusinessHours(_Section):
    """A weekly window in one time zone (daylight saving included, zoneinfo)."""

    timezone: Annotated[str, AfterValidator(_timezone)] = "UTC"
    days: list[Day] = Field(default_factory=lambda: list(_WEEKDAYS))
    start: time = time(9, 0)
    end: time = time(17, 0)

    @model_validator(mode="after")
    def _ordered(self) -> BusinessHours:
        if self.end <= self.start:
            raise ValueError("business_hours: end must be after start (same day)")
        return self

    def contains(self, now: datetime) -> bool:
        local = now.astimezone(ZoneInfo(self.timezone))
        return _DAYS[local.weekday()] in self.days and self.start <= local.time().replace(tzinfo=None) < self.end


class AutoApprove(_Section):
    """A request approves itself when every condition given holds: the person is in one of
    ``groups`` (an on-call group, read from the directory at the request) and, if given, the
    request comes within ``business_hours``."""

    groups: list[Annotated[str, Field(min_length=1, max_length=1024)]] = Field(default_factory=list)
    business_hours: BusinessHours | None = None

    @model_validator(mode="after")
    def _some_condition(self) -> AutoApprove:
        if not self.groups and self.business_hours is None:
            raise ValueError("auto_approve needs groups:, business_hours: or both")
        return self

    def why(self, groups: Iterable[str], now: datetime) -> dict[str, object] | None:
        """What made the request approve itself, or None when it does not."""
        mine = {normalize(g)[1] for g in groups}
        member = [normalize(g)[0] for g in self.groups if normalize(g)[1] in mine]
        if self.groups and not member:
            return None
        if self.business_hours is not None and not self.business_hours.contains(now):
            return None
        why: dict[str, object] = {}
        if member:
            why["group"] = member[0]
        if self.business_hours is not None:
            why["business_hours"] = self.business_hours.timezone
        return why


class AccessPolicy(_Section):
    approver_groups: Annotated[list[Annotated[str, Field(min_length=1, max_length=1024)]], Field(min_length=1)]
    """Directory groups whose members may approve (one group or a list); re-read at approval."""
    max_duration: Seconds = 3600
    """The longest grant a request may ask for (seconds or 2h); sessions never outlive the grant."""
    reason_required: bool = True
    ticket_pattern: Annotated[str, Field(min_length=1, max_length=512), AfterValidator(_re2)] | None = None
    """Set: a ticket id is required and must match this RE2 pattern as a whole (e.g. ``[A-Z]+-\\d+``)."""
    approvals: Annotated[int, Field(ge=1, le=5)] = 1
    """Distinct approvers needed (the requester never counts)."""
    auto_approve: AutoApprove | None = None
    description: Annotated[str, Field(max_length=1024)] = ""
    # notifications: webhooks, and when an undecided request expires
    notify: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list, max_length=16)
    """Webhooks (``notifications.webhooks``) told of every request, approval, denial, cancellation,
    expiry and early end under this policy."""
    pending_expiry: Annotated[int, BeforeValidator(_seconds), Field(ge=60, le=30 * 86400)] = 86400
    """A request still pending this long after it was made expires (seconds or 24h; default 24h)."""

    @property
    def approver_keys(self) -> frozenset[str]:
        return frozenset(normalize(g)[1] for g in self.approver_groups)

    def approver_groups_of(self, groups: Iterable[str]) -> list[str]:
        """The person's groups that make them an approver of this policy (empty: none)."""
        keys = self.approver_keys
        return [normalize(g)[0] for g in groups if normalize(g)[1] in keys]

    def ticket_ok(self, ticket: str) -> bool:
        assert self.ticket_pattern is not None
        return compile_pattern(self.ticket_pattern).fullmatch(ticket) is not None


AccessPolicies = dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")], AccessPolicy]


class JitConfig(_Section):
    """The ``jit:`` section: just-in-time access."""

    policies: AccessPolicies = Field(default_factory=dict)
    """Named access policies; a mapping or naming rule with ``access: eligible`` names one (``policy:``)."""
    sweep_seconds: Annotated[float, Field(ge=1, le=3600)] = 30.0
    """How often every replica's expiry sweep records lapsed grants and stale pending requests."""
