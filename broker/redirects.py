"""The one local-redirect check: where a sign-in may send a browser next (``?next=``, RelayState).

Every login entry uses ``safe_next``: the portal's sign-in form and its redirects, the device
page's way to the sign-in, the upstream SAML/OIDC starts and callbacks. It follows only a path on
this site, so a link cannot turn the broker into an open redirector (OWASP ASVS 5.1.5).
"""

from __future__ import annotations

from urllib.parse import urlsplit

MAX_NEXT = 2048
"""Longer is refused (the query parameter and form field allow as much)."""


def safe_next(value: str | None) -> str | None:
    """``value`` if it is a local path (``/portal?x=1``), else None (callers then go to ``/``).

    Refused: absolute URLs and schemes (``https://evil``, ``javascript:``), scheme-relative
    ``//host``, any backslash (browsers read ``/\\host`` as ``//host``), whitespace, control and
    non-ASCII characters (``/\\t/host``, CR LF; a browser sends non-ASCII percent-encoded), and
    anything longer than ``MAX_NEXT`` characters.
    """
    if not value or len(value) > MAX_NEXT or not value.startswith("/") or value.startswith("//"):
        return None
    if "\\" in value or any(not 0x21 <= ord(ch) <= 0x7E for ch in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value
