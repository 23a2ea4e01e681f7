"""Where webhooks may be sent: public addresses only, unless the deployment allows more.

A department user chooses a webhook's URL, and the server POSTs to it from inside the city's
network: without a check, a subscription to `http://127.0.0.1:5432/` or to the cloud's
metadata service (169.254.169.254) makes the server reach its own network for them, and the
delivery log tells them what answered. So a destination whose address is loopback, private
(RFC 1918, RFC 4193), link-local, a metadata service, unspecified, multicast, shared (CGNAT
100.64/10) or otherwise not global is refused: when a subscription is created or changed
(a clear error), and again at every delivery, against the addresses the name resolves to
then; the request goes to the address that was checked, so a name that resolves elsewhere
a moment later (DNS rebinding) cannot swap it.

A city's own systems on its internal network are allowed explicitly, by address range or by
host name (`CITYOPS_FEEDS_WEBHOOK_ALLOWED_DESTINATIONS`, feeds/settings.py).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from cityops.domain.errors import InvalidValue

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[IPAddress]]

METADATA_ADDRESSES = frozenset({
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack...
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
})
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")


class DestinationRefused(InvalidValue):
    """A webhook destination the deployment does not allow."""


def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses the name `host` resolves to now."""
    found: list[IPAddress] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries to (mapped, 6to4, Teredo, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: IPAddress) -> str | None:
    """Why an address is not a public destination (None if it is one)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            address = embedded
    if address in METADATA_ADDRESSES:
        return "a cloud metadata service"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in SHARED_ADDRESS_SPACE:
        return "shared address space (CGNAT)"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "reserved, not a public address"
    return None


def _entries(entries: Iterable[str]) -> tuple[tuple[IPNetwork, ...], frozenset[str]]:
    networks: list[IPNetwork] = []
    hosts: set[str] = set()
    for entry in entries:
        text = entry.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            hosts.add(text.lower().rstrip("."))
    return tuple(networks), frozenset(hosts)


@dataclass(frozen=True)
class DestinationPolicy:
    """Which webhook destinations this deployment allows: public addresses, and what
    `allowed` lists (CIDR ranges, or host names whose addresses are then trusted)."""

    allowed: Sequence[str] = ()
    resolver: Resolver = field(default=resolve, compare=False)
    networks: tuple[IPNetwork, ...] = field(init=False, compare=False)
    hosts: frozenset[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        networks, hosts = _entries(self.allowed)
        object.__setattr__(self, "networks", networks)
        object.__setattr__(self, "hosts", hosts)

    def check_address(self, address: IPAddress, host: str) -> None:
        """Refuse an address `host` resolved to, unless it is public or allowed."""
        if any(address in network for network in self.networks):
            return
        why = refusal(address)
        if why is None:
            return
        if host.lower().rstrip(".") in self.hosts and address not in METADATA_ADDRESSES:
            return
        raise DestinationRefused(
            f"webhook destination {host} is {why} ({address}): deliveries go to public "
            "addresses only, unless the deployment allows this destination "
            "(CITYOPS_FEEDS_WEBHOOK_ALLOWED_DESTINATIONS)")

    def _lookup(self, host: str, port: int) -> list[IPAddress]:
        """An address literal is itself; a name is resolved."""
        try:
            return [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            return self.resolver(host, port)

    def addresses(self, host: str, port: int) -> list[IPAddress]:
        """The addresses to connect to for `host`, every one of them checked; an address
        refused refuses the destination (a name with one internal address is refused)."""
        try:
            found = self._lookup(host, port)
        except (OSError, UnicodeError) as error:
            raise DestinationRefused(f"webhook destination {host} cannot be resolved") \
                from error
        if not found:
            raise DestinationRefused(f"webhook destination {host} cannot be resolved")
        for address in found:
            self.check_address(address, host)
        return found

    def check_url(self, url: str) -> None:
        """What a subscription's URL is checked against when it is set: its host's
        addresses now (a name that does not resolve yet is let through: it is checked
        again, like every destination, when a delivery connects)."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            found = self._lookup(host, port)
        except (OSError, UnicodeError):
            return
        for address in found:
            self.check_address(address, host)
