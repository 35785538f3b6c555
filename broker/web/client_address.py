"""The client address behind reverse proxies: X-Forwarded-For and RFC 7239 ``Forwarded``.

A forwarding header is believed only when the connection comes from a configured trusted proxy
(``server.trusted_proxies``; empty: nobody, the peer address is the client). The chain is walked
from the right — the entry the nearest proxy appended — skipping trusted proxies; the first
untrusted address is the client. Anything that is not an address (``unknown``, RFC 7239 §6.3
obfuscated ``_names``, garbage) stops the walk at the proxy that passed it on: the client is then
that proxy's address, never a value the client chose. A request carrying both headers whose
answers differ also gets the proxy's address (a proxy sets one of them; the other came from the
client).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 7230 token and quoted-string, as RFC 7239 §4 uses them for forwarded-pair values
_PAIR = re.compile(r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[!#$%&\'*+.^_`|~0-9A-Za-z:\[\]-]*)\s*')
_QUOTED_PAIR = re.compile(r"\\(.)")


def parse_address(value: str) -> IPAddress | None:
    """``192.0.2.1``, ``192.0.2.1:443``, ``[2001:db8::1]:80``, ``2001:db8::1`` → the address (an
    IPv4-mapped IPv6 address as IPv4); None for anything else (``unknown``, ``_hidden``, junk)."""
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (value[end + 1:] and not re.fullmatch(r":\d{1,5}", value[end + 1:])):
            return None
        value = value[1:end]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _split(value: str, separator: str) -> list[str]:
    """Split at ``separator`` outside quoted strings (RFC 7230 quoted-string, with quoted-pairs)."""
    out: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in value:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == separator and not quoted:
            out.append("".join(current))
            current = []
            continue
        current.append(ch)
    out.append("".join(current))
    return out


def _pairs(element: str) -> dict[str, str] | None:
    """``for=a;proto=https`` → {"for": "a", "proto": "https"}; None when malformed."""
    pairs: dict[str, str] = {}
    for pair in _split(element, ";"):
        m = _PAIR.fullmatch(pair)
        if m is None or m.group(1).lower() in pairs:  # RFC 7239 §4: each parameter once per element
            return None
        raw = m.group(2)
        pairs[m.group(1).lower()] = _QUOTED_PAIR.sub(r"\1", raw[1:-1]) if raw.startswith('"') else raw
    return pairs


def forwarded_for(values: Iterable[str]) -> list[str | None]:
    """The ``for=`` value of each element of RFC 7239 ``Forwarded`` header(s), left to right;
    None for an element without a well-formed ``for``."""
    return [(_pairs(element) or {}).get("for") for element in _split(",".join(values), ",")]


def forwarded_proto(values: Iterable[str]) -> str | None:
    """The ``proto=`` of the last element (the nearest proxy's), lower-cased."""
    proto = (_pairs(_split(",".join(values), ",")[-1]) or {}).get("proto")
    return proto.lower() if proto else None


class TrustedProxies:
    def __init__(self, networks: Sequence[IPNetwork | str]) -> None:
        self.networks = tuple(ipaddress.ip_network(n) if isinstance(n, str) else n for n in networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: IPAddress | None) -> bool:
        return address is not None and any(address in n for n in self.networks if n.version == address.version)

    def _walk(self, peer: IPAddress, chain: Sequence[str | None]) -> IPAddress:
        current = peer
        for entry in reversed(chain):
            address = parse_address(entry) if entry is not None else None
            if address is None:
                return current  # not an address: the proxy that passed it on is all we know
            if not self.trusts(address):
                return address
            current = address
        return current

    def client(self, peer: str, headers: Sequence[tuple[bytes, bytes]]) -> str:
        """The client address of a request that came from ``peer`` with ``headers``."""
        peer_address = parse_address(peer)
        if peer_address is None or not self.trusts(peer_address):
            return peer
        xff = [v.decode("latin-1") for k, v in headers if k == b"x-forwarded-for"]
        fwd = [v.decode("latin-1") for k, v in headers if k == b"forwarded"]
        answers = set()
        if xff:
            answers.add(self._walk(peer_address, ",".join(xff).split(",")))
        if fwd:
            answers.add(self._walk(peer_address, forwarded_for(fwd)))
        if len(answers) != 1:
            return str(peer_address)
        return str(answers.pop())

    def scheme(self, peer: str, headers: Sequence[tuple[bytes, bytes]]) -> str | None:
        """http/https as the nearest trusted proxy says the request reached it; None: not said."""
        if not self.trusts(parse_address(peer)):
            return None
        proto: str | None = None
        xfp = [v.decode("latin-1") for k, v in headers if k == b"x-forwarded-proto"]
        if xfp:
            proto = ",".join(xfp).split(",")[-1].strip().lower()
        fwd = [v.decode("latin-1") for k, v in headers if k == b"forwarded"]
        if proto is None and fwd:
            proto = forwarded_proto(fwd)
        return proto if proto in ("http", "https") else None
