"""The client address that rate limits and audit rows use.

It is the peer of the connection, unless the peer is one of ``CHECKIN_TRUSTED_PROXIES`` (CIDRs, empty
by default): then it is the right-most address of ``X-Forwarded-For`` that is not itself a trusted
proxy (each trusted proxy appends the address it saw, so everything left of the first untrusted
hop may be written by the client). A spoofed header from an untrusted peer changes nothing.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=16)
def parse_networks(text: str) -> tuple[Network, ...]:
    """CIDRs of a comma-separated list; raises ValueError naming a bad one."""
    out: list[Network] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an IP network (e.g. 10.0.0.0/8 or 127.0.0.1/32)") from None
    return tuple(out)


def _trusted(address: str, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def _forwarded_for(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    hops: list[str] = []
    for name, value in headers:
        if name.lower() == b"x-forwarded-for":
            hops += [h.strip() for h in bytes(value).decode("latin-1").split(",") if h.strip()]
    return hops


def client_address(scope: Any, trusted_proxies: str) -> str:
    """The client address of an ASGI request under the given trusted proxies."""
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    if not trusted_proxies:
        return peer
    networks = parse_networks(trusted_proxies)
    if not _trusted(peer, networks):
        return peer
    hops = _forwarded_for(scope.get("headers", ()))
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop
    return hops[0] if hops else peer  # a request from inside: every hop is a trusted proxy
