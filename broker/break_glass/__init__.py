"""Break-glass accounts: a few static accounts (strong password hashes, TOTP required) that may
sign in only while the primary directory is unavailable (or always, if the config says so), and
then only to the roles listed for them. Every use is loud: an audit event of its own kind, a
WARNING log line, ``broker_break_glass_total`` and an alert notification.

``config`` is the ``break_glass:`` section and its checks (``broker check-config``);
``accounts`` the checks of a sign-in (password, code, availability) and the identity and roles
it gives; ``broker.flow.Flow.break_glass_sign_in`` sequences the decision.
"""

from __future__ import annotations

BREAK_GLASS_SOURCE = "break_glass"
"""``Identity.source`` of a break-glass sign-in (no connector may take this name)."""
ID_PREFIX = "break-glass:"
"""The immutable id: ``break-glass:<username>`` (SourceIdentity, the ID token's ``sub``)."""
NAME_PREFIX = "break-glass-"
"""The username the identity carries (audit ``user``, RoleSessionName): ``break-glass-<username>``,
so a break-glass use is never mistaken for the directory account of the same name."""

__all__ = ["BREAK_GLASS_SOURCE", "ID_PREFIX", "NAME_PREFIX"]
