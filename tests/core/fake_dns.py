"""A resolver that tests control, for the outbound guard's resolver hook
(``civio.core.ssrf.use_resolver``): a name resolves to what the test says now, so it can
resolve to one address at registration and to another at connection time."""

from __future__ import annotations

import ipaddress
import socket

from civio.core.ssrf import IPAddress


class FakeDNS:
    """What each name resolves to now; an unknown name does not resolve."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}
        self.lookups: list[str] = []

    def point(self, name: str, *addresses: str) -> None:
        self.answers[name] = list(addresses)

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.lookups.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [ipaddress.ip_address(a) for a in self.answers[host]]
