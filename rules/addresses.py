"""Where a webhook may connect: public addresses only, unless a network is allowed explicitly.

The hostname allowlist says which names a rule may target; it cannot say where a name points at
send time. A name that resolves (or is rebound) to loopback, link-local, a private range or a cloud
metadata address would let a rule reach inside the worker's network. So the webhook client
resolves through :class:`GuardedResolver`, which checks every address it returns, and aiohttp
connects only to the addresses it checked: no second lookup, no rebinding window. IP literals in a
URL skip resolvers, so :func:`check_address` is applied to them directly.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Cloud metadata endpoints (AWS, GCP, Azure, Alibaba, Oracle): refused even where private ranges are allowed.
METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)


class AddressRefused(Exception):  # not an OSError: aiohttp would wrap that as a connection error (retried)
    """A webhook host resolves to an address outside the public internet (and no allowed network)."""


def parse_networks(text: str) -> tuple[Network, ...]:
    """``10.0.0.0/8, 127.0.0.1`` -> networks (a bare address is a /32 or /128); ValueError names the bad one."""
    networks = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an IP network (use a CIDR such as 10.0.0.0/8, or an address)") from None
    return tuple(networks)


def check_address(host: str, allowed: Iterable[Network]) -> None:
    """Raise :class:`AddressRefused` unless ``host`` (an IP) is public or inside an allowed network."""
    address: Address = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA:
        raise AddressRefused(f"{host} is a cloud metadata address; webhooks never call it")
    if address.is_global and not address.is_multicast:
        return
    if any(address.version == n.version and address in n for n in allowed):
        return
    raise AddressRefused(
        f"{host} is a loopback, private, link-local or reserved address; "
        "allow its network in MUGPOS_WEBHOOK_ALLOW_NETWORKS to call it"
    )


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


class GuardedResolver(ThreadedResolver):
    """The system resolver, refusing a name when any of its addresses is not allowed."""

    def __init__(self, allowed: Iterable[Network] = (), *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.allowed = tuple(allowed)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await super().resolve(host, port, family)
        for result in results:
            try:
                check_address(result["host"], self.allowed)
            except AddressRefused as exc:
                raise AddressRefused(f"webhook host {host!r} resolves to {exc}") from None
        return results
