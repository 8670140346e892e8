"""Where deliveries may go: never to loopback, private, link-local or other internal addresses,
unless the operator allows them (`TETHER_WEBHOOK_ALLOW_PRIVATE`, `TETHER_WEBHOOK_ALLOW_CIDRS`).

A URL is checked when it is added and again at every delivery, against the addresses its host
RESOLVES to then; the request then connects to the address that was checked (the host name kept
for the Host header and TLS), so a DNS answer that changes between check and connect (rebinding)
cannot steer a delivery inside the network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class DestinationRefused(ValueError):
    """The URL is malformed, or points at an address webhooks may not reach."""


@dataclass(frozen=True)
class Target:
    """A checked destination: connect to `address`, say `host` (Host header and TLS name)."""

    url: str
    host: str
    port: int
    address: str

    def connect_url(self) -> str:
        """The URL with its host replaced by the checked address."""
        parts = urlsplit(self.url)
        shown = f"[{self.address}]" if ":" in self.address else self.address
        netloc = f"{shown}:{self.port}"
        return parts._replace(netloc=netloc).geturl()

    def host_header(self) -> str:
        parts = urlsplit(self.url)
        default = 443 if parts.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class DestinationPolicy:
    allow_private: bool = False
    allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, allow_private: bool, allow_cidrs: str) -> DestinationPolicy:
        """From the settings; a malformed CIDR is a startup error naming it."""
        networks: list[IPNetwork] = []
        for text in (part.strip() for part in allow_cidrs.split(",")):
            if not text:
                continue
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise ValueError(f"TETHER_WEBHOOK_ALLOW_CIDRS: {text!r} is not an address or CIDR") from None
        return cls(allow_private=allow_private, allowed=tuple(networks))

    def permits(self, address: IPAddress) -> bool:
        if any(address in network for network in self.allowed):
            return True
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        internal = (
            address.is_private
            or address.is_loopback
            or address.is_link_local
            or address.is_multicast
            or address.is_reserved
            or address.is_unspecified
            or not address.is_global
        )
        return self.allow_private or not internal

    def parse(self, url: str) -> tuple[str, int]:
        """Host and port of an http(s) URL with no credentials in it; DestinationRefused otherwise."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise DestinationRefused(f"{url!r} is not a valid URL: {exc}") from None
        if parts.scheme not in ("http", "https"):
            raise DestinationRefused("a webhook URL must start with http:// or https://")
        if not parts.hostname:
            raise DestinationRefused("a webhook URL needs a host")
        if parts.username or parts.password:
            raise DestinationRefused("a webhook URL must not carry credentials")
        return parts.hostname, port or (443 if parts.scheme == "https" else 80)

    async def resolve(self, url: str) -> Target:
        """Resolve the URL's host now and return an address it may be sent to, or refuse it."""
        host, port = self.parse(url)
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [literal]
        else:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise DestinationRefused(f"cannot resolve {host}: {exc}") from None
            addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        refused = [str(a) for a in addresses if not self.permits(a)]
        if refused or not addresses:
            raise DestinationRefused(
                f"{host} resolves to {', '.join(refused) or 'nothing'}: a loopback, private, link-local or "
                "otherwise internal address (an operator can allow it with TETHER_WEBHOOK_ALLOW_PRIVATE "
                "or TETHER_WEBHOOK_ALLOW_CIDRS)"
            )
        return Target(url=url, host=host, port=port, address=str(addresses[0]))
