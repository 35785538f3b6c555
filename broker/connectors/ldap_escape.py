"""Escaping untrusted text for LDAP: RFC 4515 in search filters, RFC 4514 in DNs.

Every value that reaches a filter or a DN goes through one of these; a username such as
``*)(uid=*`` is then a literal that matches nobody, never a wider search.
"""

from __future__ import annotations

_FILTER_SPECIALS = {"\\": r"\5c", "*": r"\2a", "(": r"\28", ")": r"\29", "\x00": r"\00"}
_DN_SPECIALS = set('"+,;<>\\=')


def filter_value(text: str) -> str:
    """RFC 4515 section 3: ``\\ * ( )`` and NUL become ``\\XX``."""
    return "".join(_FILTER_SPECIALS.get(ch, ch) for ch in text)


def filter_bytes(raw: bytes) -> str:
    """A binary value (objectSid, objectGUID) as an all-escaped filter value."""
    return "".join(f"\\{b:02x}" for b in raw)


def dn_value(text: str) -> str:
    """RFC 4514 section 2.4: an attribute value for a DN string."""
    out = []
    last = len(text) - 1
    for i, ch in enumerate(text):
        if ch == "\x00":
            out.append(r"\00")
        elif ch in _DN_SPECIALS or (i == 0 and ch in " #") or (i == last and ch == " "):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("".join(f"\\{b:02x}" for b in ch.encode()))
        else:
            out.append(ch)
    return "".join(out)


def any_of(attributes: list[str] | tuple[str, ...], values: list[str] | tuple[str, ...]) -> str:
    """``(|(a=v1)(a=v2)(b=v1)...)`` with every value escaped; a single term stays bare."""
    terms = [f"({a}={filter_value(v)})" for v in values for a in attributes]
    return terms[0] if len(terms) == 1 else "(|" + "".join(terms) + ")"
