"""TOTP (RFC 6238) checks with replay refusal: a code is accepted once.

pyotp computes the codes; this module adds what it leaves to its callers: the window (one step
either side, for clock drift) and the time step a code was accepted at, which the caller stores
(conditionally: two requests with one code, one wins) and passes back as ``last_step`` — a code
of that step or an earlier one is refused with ``TotpReplay`` (``mfa_code_reused``).
"""

from __future__ import annotations

import hmac

import pyotp

STEP_SECONDS = 30
DIGITS = 6
WINDOW = 1
"""Steps accepted either side of now (RFC 6238 section 5.2's recommendation: at most one)."""


class TotpReplay(Exception):
    """The code is right but its time step was already used."""


def new_secret() -> str:
    """A random base32 secret of 160 bits (RFC 4226's recommended length)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads from a QR code."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(name=account, issuer_name=issuer)


def verify(secret: str, code: str, *, at: float, last_step: int | None) -> int | None:
    """The time step ``code`` is valid for at ``at`` (within the window), None when it is not a
    code of this secret; ``TotpReplay`` when it is, but for ``last_step`` or earlier."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    now_step = int(at // STEP_SECONDS)
    for step in range(now_step - WINDOW, now_step + WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            if last_step is not None and step <= last_step:
                raise TotpReplay()
            return step
    return None
