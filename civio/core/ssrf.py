"""Which addresses civio may call on behalf of citizens and senders.

A Web Push endpoint is chosen by a citizen's browser and a callback URL by a sender, so
either could point the worker at an address inside the deployment: the database, a
metrics endpoint, the cloud's metadata service (169.254.169.254, fd00:ec2::254). Outside
dev, civio calls such URLs only at public addresses: the URL is checked when it is
registered, and again at every connection (``civio.core.outbound``), because the name may
resolve differently by then (DNS rebinding).

What counts as public is the standard library's ``is_global``, with the special cases it
lets through refused as well (multicast, reserved, deprecated site-local), and IPv6
addresses that carry an IPv4 address (IPv4-mapped, NAT64, 6to4) judged by that address.
An operator can allow more networks (``CIVIO_OUTBOUND_ALLOWED_NETWORKS``), for example a
push relay inside the deployment. In dev everything is allowed: tests and local receivers
live on 127.0.0.1.

Operator-configured destinations (the push gateway, SMTP) are not checked: the operator
chose them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass

import httpx

from civio.core.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# Resolves a host name to its addresses (raises OSError when it does not resolve).
Resolver = Callable[[str, int], Awaitable[Sequence[IPAddress]]]

# Cloud metadata services (AWS, GCP, Azure; AWS over IPv6; Alibaba; Oracle), named so
# that a refusal says what the address is.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598, carrier-grade NAT
# Not globally reachable per IANA, but global to Pythons before 3.11.10 / 3.12.4.
IETF_PROTOCOL_ASSIGNMENTS = ipaddress.ip_network("192.0.0.0/24")
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix
RESOLVE_TIMEOUT_SECONDS = 5.0
NOT_ADDRESS_CATEGORIES = frozenset({"invalid", "unresolvable", "unix socket"})


class DestinationRefused(httpx.TransportError):
    """civio will not call this URL (or connect to this address).

    A transport error, so code that only knows httpx still treats it as a failed request;
    code that knows it treats it as permanent (the same URL will be refused again).
    """

    def __init__(self, reason: str, *, category: str) -> None:
        super().__init__(f"refused: the host {reason}")
        # A phrase to follow "the host": "resolves to 127.0.0.1, a loopback address".
        self.reason = reason
        # What kind of address it was ("loopback", ...), or "unresolvable": safe to log.
        self.category = category

    @property
    def is_address(self) -> bool:
        """Refused for where it points (not for a name that is invalid or does not resolve)."""
        return self.category not in NOT_ADDRESS_CATEGORIES


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, when it is one of the forms that reach
    IPv4 hosts (IPv4-mapped, NAT64 well-known prefix, 6to4)."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def address_category(address: IPAddress) -> str | None:
    """What kind of non-public address this is, or None when it is public."""
    embedded = embedded_ipv4(address)
    if embedded is not None:
        return address_category(embedded)
    if address in METADATA_ADDRESSES:
        return "cloud metadata"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site-local"
    if address in SHARED_ADDRESS_SPACE:
        return "shared (carrier-grade NAT)"
    if address.is_private or address in IETF_PROTOCOL_ASSIGNMENTS:
        return "private or special-purpose"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "non-global"
    return None


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # Strip an IPv6 scope ("fe80::1%eth0") only for the check; it is link-local anyway.
    found = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    return list(dict.fromkeys(found))


_resolver: Resolver = system_resolver


@contextlib.contextmanager
def use_resolver(resolver: Resolver) -> Iterator[None]:
    """Answer host lookups with ``resolver`` meanwhile, at registration and at connection
    alike (tests use it to make a name resolve to what they need, rebinding included)."""
    global _resolver
    previous, _resolver = _resolver, resolver
    try:
        yield
    finally:
        _resolver = previous


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True)
class OutboundGuard:
    """The outbound rule of one deployment: off in dev, else public addresses only plus the
    operator's allowed networks."""

    enforce: bool
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, settings: Settings) -> OutboundGuard:
        networks = tuple(
            ipaddress.ip_network(n, strict=False) for n in settings.outbound_allowed_networks
        )
        return cls(enforce=not settings.is_dev, allowed_networks=networks)

    def _allowed(self, address: IPAddress) -> bool:
        candidates = [address]
        embedded = embedded_ipv4(address)
        if embedded is not None:
            candidates.append(embedded)
        return any(a in network for a in candidates for network in self.allowed_networks)

    def refusal(self, address: IPAddress) -> str | None:
        """The category that keeps civio from calling ``address``, or None if it may."""
        if not self.enforce or self._allowed(address):
            return None
        return address_category(address)

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        """The addresses to connect to for ``host``: all of them pass, or DestinationRefused.

        A name with one internal address among public ones is refused whole: which address
        a connection uses is not the caller's to choose. Raises OSError (or TimeoutError)
        when the name does not resolve.
        """
        literal = _literal(host)
        try:
            found = [literal] if literal is not None else list(await _resolver(host, port))
        except ValueError as exc:  # UnicodeError, IDNAError: no such name can exist
            raise DestinationRefused("is not a valid host name", category="invalid") from exc
        if not found:
            raise socket.gaierror(socket.EAI_NONAME, "no address")
        for address in found:
            category = self.refusal(address)
            if category is not None:
                verb = "is" if literal is not None else "resolves to"
                reason = f"{verb} {address}, {_article(category)} {category} address"
                raise DestinationRefused(reason, category=category)
        return found

    async def check_url(self, url: str) -> None:
        """At registration: an http(s) URL whose host resolves to allowed addresses only.

        The host is taken as httpx will connect to it (IDNA-encoded), so the name checked
        is the name called. In dev nothing is resolved.
        """
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, ValueError) as exc:
            raise DestinationRefused("cannot be read", category="invalid") from exc
        if parsed.scheme not in ("http", "https") or not parsed.raw_host:
            raise DestinationRefused(
                "cannot be called (only http and https URLs can)", category="invalid"
            )
        if not self.enforce:
            return
        host = parsed.raw_host.decode("ascii")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
                await self.addresses(host, port)
        except (OSError, TimeoutError) as exc:
            raise DestinationRefused("does not resolve", category="unresolvable") from exc
