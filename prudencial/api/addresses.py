"""The client's address, the one way: for the API's throttles and for the login lockout (axes).

X-Forwarded-For is written by whoever sends the request, so it is believed only as far as it was
written by our own proxies: the direct peer (REMOTE_ADDR) must be in
``settings.PRUDENCIAL_TRUSTED_PROXIES`` (env ``DJANGO_TRUSTED_PROXIES``, networks in CIDR, default
empty = trust no proxy), and then the client is the right-most X-Forwarded-For address that is not
one of those proxies. Addresses to its left were written by the client and are ignored.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(configured: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in configured)


def trusted_networks() -> tuple[IPNetwork, ...]:
    return _networks(tuple(getattr(settings, "PRUDENCIAL_TRUSTED_PROXIES", ())))


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[2001:db8::1]:443"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "192.0.2.1:443"
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _trusted(address, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_address(request) -> str:
    """The address to count a client's requests and login failures by (a string)."""
    meta = request.META
    peer_text = meta.get("REMOTE_ADDR", "") or ""
    peer = _parse(peer_text)
    networks = trusted_networks()
    if peer is None or not networks or not _trusted(peer, networks):
        return str(peer) if peer is not None else peer_text
    client = peer
    hops = [hop for hop in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            break  # not an address: nothing further left can be believed
        client = address
        if not _trusted(address, networks):
            break
    return str(client)
