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

import functools
import re
import unicodedata

# RFC 4514: attributeType "=" value, values with \\-escapes (hex pairs or special characters),
# RDNs separated by "," and multi-valued RDNs by "+". One compiled pattern for the whole DN.
_ATTR = r"(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)"
# possessive quantifiers (Python 3.11+): no backtracking, so no catastrophic cases
_VALUE = r"(?:[^,+\\]++|\\[0-9A-Fa-f]{2}|\\.)*+"
_AVA = rf"{_ATTR}\s*=\s*{_VALUE}"
_DN = re.compile(rf"^\s*{_ATTR}\s*=\s*(?P<first>{_VALUE})\s*(?:[,+]\s*{_AVA}\s*)*$")
_ESCAPE = re.compile(r"\\([0-9A-Fa-f]{2}|.)", re.DOTALL)


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
    m = _DN.match(text)
    if m is None:
        return text
    value = m.group("first").strip()
    if not value or value.startswith("#"):  # empty or BER-encoded: no readable name, keep the DN
        return text
    return _unescape_dn_value(value).strip()


def match_key(name: str) -> str:
    """The case-insensitive key a (plain) group name is matched by."""
    return unicodedata.normalize("NFKC", name).casefold()


@functools.lru_cache(maxsize=65536)
def normalize(group: str) -> tuple[str, str]:
    """(display name, match key) of a group given as a name or a DN. Pure, so cached: the same
    groups come back at every issuance."""
    name = display_name(group)
    return name, match_key(name)
