"""Group names: how a directory group becomes the name the mapping engine matches.

The rule (documented in the README, "Group names"):

1. Surrounding whitespace is removed.
2. A distinguished name (RFC 4514, e.g. ``CN=AWS-Admins,OU=Groups,DC=example,DC=com``) is
   reduced to the value of its first attribute, unescaped (``AWS-Admins``). A string that
   does not parse as a DN of ``type=value`` pairs is taken as it is.
3. Matching is case-insensitive: the match key is the Unicode case-fold (NFKC first), so
   ``aws-admins`` and ``AWS-ADMINS`` are the same group.
"""

from __future__ import annotations

import re
import unicodedata

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import parse_dn

_ESCAPE = re.compile(r"\\([0-9A-Fa-f]{2}|.)", re.DOTALL)
_ATTR_TYPE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)$")


def _unescape_dn_value(value: str) -> str:
    """RFC 4514 section 2.4 in reverse: ``\\,`` → ``,``; ``\\c3\\a9`` → ``é``."""
    if "\\" not in value:
        return value
    out = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(value):
        out += value[pos : m.start()].encode()
        esc = m.group(1)
        out += bytes.fromhex(esc) if len(esc) == 2 else esc.encode()
        pos = m.end()
    out += value[pos:].encode()
    return out.decode("utf-8", errors="replace")


def display_name(group: str) -> str:
    """A group as the directory gave it (name or DN) → its plain name."""
    text = group.strip()
    if "=" not in text:
        return text
    try:
        rdns = parse_dn(text)
    except (LDAPInvalidDnError, ValueError, IndexError):
        return text
    if not rdns or not all(_ATTR_TYPE.match(attr) for attr, _, _ in rdns):
        return text
    value = rdns[0][1]
    if value.startswith("#"):  # BER-encoded value: no readable name, keep the DN
        return text
    return _unescape_dn_value(value).strip()


def match_key(name: str) -> str:
    """The case-insensitive key a (plain) group name is matched by."""
    return unicodedata.normalize("NFKC", name).casefold()


def normalize(group: str) -> tuple[str, str]:
    """(display name, match key) of a group given as a name or a DN."""
    name = display_name(group)
    return name, match_key(name)
