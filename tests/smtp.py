"""A real SMTP server (aiosmtpd) for tests: every message is captured and parsed."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    login: str | None


@dataclass
class Capture:
    """aiosmtpd handler: keeps every message; refuses recipients whose address starts
    with ``refused``, as a relay refuses an unknown mailbox."""

    received: list[Received] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("refused"):
            return f"550 5.1.1 <{address}>: Recipient address rejected"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        # As a mail client would read it: the wire's CRLF back to Python's line ending.
        raw = envelope.original_content.replace(b"\r\n", b"\n")
        parsed = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(parsed, EmailMessage)
        login = session.auth_data.decode() if session.authenticated else None
        self.received.append(
            Received(
                str(envelope.mail_from),
                list(envelope.rcpt_tos),
                parsed,
                session.ssl is not None,
                login,
            )
        )
        return "250 Message accepted"

    def to(self, address: str) -> list[EmailMessage]:
        return [r.message for r in self.received if address in r.rcpt_tos]


@dataclass
class SmtpServer:
    url: str
    port: int
    capture: Capture


@contextlib.contextmanager
def smtp_server(port: int | None = None, **kwargs: Any) -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1 (its own thread and event loop)."""
    capture = Capture()
    port = port or free_port()
    controller = Controller(capture, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield SmtpServer(f"smtp://127.0.0.1:{port}", port, capture)
    finally:
        controller.stop()
