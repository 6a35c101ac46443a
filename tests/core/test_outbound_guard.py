"""The outbound guard: which addresses civio calls for citizens and senders, checked at
registration and again at connection time.

Connections are real (local servers on 127.0.0.1, plain and TLS). Only DNS is simulated,
through the guard's resolver hook, so a name can resolve to one address at registration
and to another at connection time (DNS rebinding). No test sends a packet to any address
but 127.0.0.1: a refused address is refused before any connection is opened.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from civio.core.config import Environment, Settings
from civio.core.outbound import GuardedTransport, guarded_client
from civio.core.ssrf import DestinationRefused, OutboundGuard, address_category, use_resolver
from tests.core.fake_dns import FakeDNS

PRODUCTION = OutboundGuard(enforce=True)
LOOPBACK_ALLOWED = OutboundGuard(
    enforce=True, allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),)
)
NAME = "push.rebind.test"


# --- address classification --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "category"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("192.0.0.192", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("10.0.0.1", "private or special-purpose"),
        ("172.16.5.4", "private or special-purpose"),
        ("192.168.1.1", "private or special-purpose"),
        ("fc00::1", "private or special-purpose"),
        ("fd12:3456:789a::1", "private or special-purpose"),
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("100.127.255.254", "shared (carrier-grade NAT)"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("ff0e::1", "multicast"),  # global-scope multicast: is_global alone lets it through
        ("fec0::1", "site-local"),  # deprecated, and is_global alone lets it through
        # IPv6 forms that reach an IPv4 host are judged by that host.
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private or special-purpose"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "cloud metadata"),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("2002:a00:1::", "private or special-purpose"),  # 6to4 of 10.0.0.1
    ],
)
def test_internal_addresses_are_named(address: str, category: str) -> None:
    assert address_category(ipaddress.ip_address(address)) == category


@pytest.mark.parametrize(
    "address",
    [
        "192.0.2.1",  # documentation
        "198.51.100.7",
        "203.0.113.9",
        "198.18.0.1",  # benchmarking
        "192.0.0.8",  # IETF protocol assignments
        "240.0.0.1",  # reserved
        "255.255.255.255",
        "0.1.2.3",  # "this network"
        "2001:db8::1",  # documentation
        "100::1",  # discard-only
        "2001::1",  # Teredo
        "::127.0.0.1",  # IPv4-compatible (deprecated)
    ],
)
def test_special_purpose_addresses_are_refused(address: str) -> None:
    assert address_category(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "142.250.180.10",
        "2606:4700:4700::1111",
        "2a00:1450:4001:82b::200a",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",  # NAT64 of 8.8.8.8: an IPv6-only deployment reaches IPv4 hosts
    ],
)
def test_public_addresses_pass(address: str) -> None:
    assert address_category(ipaddress.ip_address(address)) is None
    assert PRODUCTION.refusal(ipaddress.ip_address(address)) is None


def test_dev_allows_everything_and_operators_allow_their_networks() -> None:
    dev = OutboundGuard.of(Settings(env=Environment.dev))
    assert dev.refusal(ipaddress.ip_address("127.0.0.1")) is None
    operator = OutboundGuard.of(
        Settings(
            env=Environment.production,
            outbound_allowed_networks="10.20.0.0/16, fd00:1::/64",
        )
    )
    assert operator.enforce
    assert operator.refusal(ipaddress.ip_address("10.20.3.4")) is None
    assert operator.refusal(ipaddress.ip_address("::ffff:10.20.3.4")) is None
    assert operator.refusal(ipaddress.ip_address("fd00:1::5")) is None
    assert operator.refusal(ipaddress.ip_address("10.21.0.1")) == "private or special-purpose"
    assert operator.refusal(ipaddress.ip_address("127.0.0.1")) == "loopback"
    assert OutboundGuard.of(Settings(env=Environment.production)).allowed_networks == ()


def test_a_bad_allowed_network_stops_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIVIO_OUTBOUND_ALLOWED_NETWORKS", "10.0.0.0/8,not-a-network")
    with pytest.raises(pydantic.ValidationError, match="outbound_allowed_networks"):
        Settings()
    monkeypatch.setenv("CIVIO_OUTBOUND_ALLOWED_NETWORKS", "10.1.2.3/8")
    assert Settings().outbound_allowed_networks == ["10.0.0.0/8"]


# --- at registration ---------------------------------------------------------------------------


@pytest.fixture
def dns() -> Iterator[FakeDNS]:
    fake = FakeDNS()
    with use_resolver(fake):
        yield fake


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://127.0.0.1/hook", "is 127.0.0.1, a loopback address"),
        ("https://10.0.0.1/hook", "is 10.0.0.1, a private or special-purpose address"),
        ("http://169.254.169.254/latest/meta-data/", "is 169.254.169.254, a cloud metadata"),
        ("https://[::1]:8443/hook", "is ::1, a loopback address"),
        ("https://[::ffff:7f00:1]/hook", "is ::ffff:7f00:1, a loopback address"),
        # The system resolver, with no DNS query: /etc/hosts and numeric forms.
        ("https://localhost/hook", "resolves to"),
        ("https://2130706433/hook", "resolves to 127.0.0.1, a loopback address"),
        ("https://0x7f.1/hook", "resolves to 127.0.0.1, a loopback address"),
    ],
)
async def test_registration_refuses_internal_hosts(url: str, reason: str) -> None:
    with pytest.raises(DestinationRefused) as refused:
        await PRODUCTION.check_url(url)
    assert reason in refused.value.reason


@pytest.mark.parametrize("url", ["https://" + "a" * 64 + ".example.org/", "https://a..b/"])
async def test_a_host_name_no_resolver_can_encode_is_refused_not_a_500(url: str) -> None:
    # The system resolver refuses to encode these before any query is sent.
    with pytest.raises(DestinationRefused) as refused:
        await PRODUCTION.check_url(url)
    assert refused.value.reason == "is not a valid host name"


async def test_registration_resolves_names_and_refuses_any_internal_answer(dns: FakeDNS) -> None:
    dns.point("push.example.org", "142.250.180.10", "2a00:1450:4001:82b::200a")
    dns.point("mixed.example.org", "142.250.180.10", "10.0.0.7")
    await PRODUCTION.check_url("https://push.example.org/wpush/abc")
    with pytest.raises(DestinationRefused, match=r"resolves to 10\.0\.0\.7, a private"):
        await PRODUCTION.check_url("https://mixed.example.org/hook")
    with pytest.raises(DestinationRefused) as unresolvable:
        await PRODUCTION.check_url("https://nowhere.example.org/hook")
    assert unresolvable.value.reason == "does not resolve"
    # In dev nothing is looked up.
    dns.lookups.clear()
    await OutboundGuard(enforce=False).check_url("https://nowhere.example.org/hook")
    assert dns.lookups == []


# --- at connection time ------------------------------------------------------------------------


@dataclass
class Seen:
    host: str
    path: str


@dataclass
class LocalServer:
    """A real HTTP(S) server on 127.0.0.1 that records the Host of each request."""

    tls: ssl.SSLContext | None = None
    seen: list[Seen] = field(default_factory=list)
    port: int = 0

    def start(self) -> ThreadingHTTPServer:
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                server_self.seen.append(Seen(self.headers["Host"], self.path))
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return server


@pytest.fixture
def receiver() -> Iterator[LocalServer]:
    local = LocalServer()
    server = local.start()
    yield local
    server.shutdown()
    server.server_close()


async def test_a_name_rebound_to_loopback_is_refused_at_connection(
    dns: FakeDNS, receiver: LocalServer
) -> None:
    url = f"http://{NAME}:{receiver.port}/wpush/abc"
    dns.point(NAME, "142.250.180.10")
    await PRODUCTION.check_url(url)  # registered while it resolved to a public address
    dns.point(NAME, "127.0.0.1")  # ... and rebound since
    with pytest.raises(DestinationRefused, match=r"resolves to 127\.0\.0\.1, a loopback address"):
        await guarded_client(PRODUCTION).post(url, content=b"payload")
    dns.point(NAME, "142.250.180.10", "127.0.0.1")
    with pytest.raises(DestinationRefused):
        await guarded_client(PRODUCTION).post(url, content=b"payload")
    assert receiver.seen == []
    # The connection goes where the checked answer says, with Host still the name: an
    # operator who allows loopback gets the request at the local receiver.
    dns.point(NAME, "127.0.0.1")
    response = await guarded_client(LOOPBACK_ALLOWED).post(url, content=b"payload")
    assert response.status_code == 201
    assert receiver.seen == [Seen(f"{NAME}:{receiver.port}", "/wpush/abc")]


async def test_dev_connects_to_loopback_without_looking_anything_up(
    dns: FakeDNS, receiver: LocalServer
) -> None:
    dev = OutboundGuard(enforce=False)
    response = await guarded_client(dev).post(f"http://127.0.0.1:{receiver.port}/hook")
    assert response.status_code == 201
    assert dns.lookups == []


async def test_a_name_that_stops_resolving_is_a_connect_error_worth_retrying(
    dns: FakeDNS,
) -> None:
    with pytest.raises(httpx.ConnectError):
        await guarded_client(PRODUCTION).post("https://gone.example.org/hook")


@dataclass(frozen=True)
class Certificate:
    server: ssl.SSLContext
    client: ssl.SSLContext


def certificate_for(name: str, directory: Path) -> Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (directory / "cert.pem").write_bytes(cert_pem)
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return Certificate(server, client)


@pytest.fixture
async def tls_receiver(tmp_path: Path) -> AsyncIterator[tuple[LocalServer, Certificate]]:
    certificate = certificate_for(NAME, tmp_path)
    local = LocalServer(tls=certificate.server)
    server = local.start()
    yield local, certificate
    server.shutdown()
    server.server_close()


async def test_tls_is_verified_for_the_name_while_connecting_to_the_checked_address(
    dns: FakeDNS, tls_receiver: tuple[LocalServer, Certificate]
) -> None:
    receiver, certificate = tls_receiver
    dns.point(NAME, "127.0.0.1")
    transport = GuardedTransport(LOOPBACK_ALLOWED, ssl_context=certificate.client)
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.post(f"https://{NAME}:{receiver.port}/wpush/abc")
        assert response.status_code == 201
        assert receiver.seen == [Seen(f"{NAME}:{receiver.port}", "/wpush/abc")]
        # The certificate names NAME, not the address: calling the address fails TLS.
        with pytest.raises(httpx.ConnectError, match="certificate"):
            await client.post(f"https://127.0.0.1:{receiver.port}/wpush/abc")
