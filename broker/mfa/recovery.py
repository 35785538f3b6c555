"""Recovery codes: ten single-use codes shown once at enrolment, stored as SHA-256.

Each code is 16 characters of a 32-letter alphabet (80 random bits, ``secrets``). A slow password
hash (bcrypt, argon2) is for what people choose: a guessable space that a stolen table lets an
attacker search offline. 80 random bits are not searchable — 2^80 SHA-256 evaluations per code,
whatever the hardware — so a fast hash loses nothing, and the lookup stays one indexed equality.
"""

from __future__ import annotations

import hashlib
import secrets

COUNT = 10
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # 32 letters: no 0/O, 1/I
_LENGTH = 16  # 16 x 5 bits = 80 bits


def new_codes() -> list[str]:
    """Ten fresh codes, as shown to the person: ``XXXX-XXXX-XXXX-XXXX``."""
    return ["-".join(_chunks("".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH)))) for _ in range(COUNT)]


def _chunks(code: str) -> list[str]:
    return [code[i:i + 4] for i in range(0, len(code), 4)]


def normalized(code: str) -> str:
    """What was typed, without separators and spaces, upper-cased."""
    return "".join(c for c in code.upper() if c.isalnum())


def looks_like_code(code: str) -> bool:
    n = normalized(code)
    return len(n) == _LENGTH and all(c in _ALPHABET for c in n)


def digest(code: str) -> str:
    """The stored form: hex SHA-256 of the normalized code."""
    return hashlib.sha256(normalized(code).encode()).hexdigest()
