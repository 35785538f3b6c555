"""Untrusted XML refused on its raw bytes, before any XML parser sees it (billion laughs, XXE).

Neutral ground for everything that reads XML from outside: today the upstream SAML SP
(``broker.connectors.saml_sp``: its IdPs' responses and metadata). The sandbox's SAML page, its
other reader, went with the console SAML POST (issue 12).
"""

from __future__ import annotations

import re

from broker.errors import UpstreamRejected

# A DTD, an entity declaration or a processing instruction other than the XML declaration:
# refused on the raw bytes, before an XML parser does any work (billion laughs, XXE).
_FORBIDDEN = re.compile(rb"<!DOCTYPE|<!ENTITY|<!ATTLIST|<!ELEMENT|<!NOTATION|<\?(?!xml[\s?])", re.IGNORECASE)
_PROLOG_ENCODING = re.compile(rb"^\s*<\?xml[^>]*encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")


def refuse_unsafe_xml(xml: bytes) -> None:
    """Refuse DTDs, entity declarations and non-UTF-8 documents on the raw bytes (no parsing)."""
    head = xml[:3]
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in xml[:64]:
        raise UpstreamRejected(reason="not_utf8")
    m = _PROLOG_ENCODING.match(xml[3:] if head == b"\xef\xbb\xbf" else xml)
    if m and m.group(1).lower() not in (b"utf-8", b"utf8", b"us-ascii", b"ascii"):
        raise UpstreamRejected(reason="not_utf8")
    if _FORBIDDEN.search(xml):
        raise UpstreamRejected(reason="dtd_forbidden")
