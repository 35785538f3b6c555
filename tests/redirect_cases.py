"""One behaviour table for the local-redirect check (``broker.redirects.safe_next``), run at every
login entry it guards (tests/portal/test_safe_next.py, tests/upstream/test_sso_next.py) and on
the function itself."""

from __future__ import annotations

from broker.redirects import MAX_NEXT

FOLLOWED = ["/", "/device?user_code=ABCD-EFGH", "/a/b#c", "/?q=a%20b", "/" + "a" * (MAX_NEXT - 1)]
"""Local paths: followed as given."""

REFUSED = [
    "https://evil.example/", "http:/evil", "javascript:alert(1)", "//evil.example", "/\\evil.example", "\\\\evil",
    "/\tevil", "/ evil", "/x\r\nSet-Cookie: a=b", "/\x00", "/\x7f", "/caf\u00e9", "relative/path",
]
"""Never followed: the entry goes home (``/``) instead."""

TOO_LONG = "/" + "a" * MAX_NEXT
"""One character over the cap: never followed (the HTTP layer may refuse the request outright)."""
