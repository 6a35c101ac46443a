"""The mail transport against a real SMTP server (aiosmtpd), with STARTTLS, implicit TLS and
AUTH, and the Maildir fallback. ``smtp_server`` is shared with the email-validation tests."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import mailbox
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from civio.core.config import Settings
from civio.core.mail import MailDeliveryError, SmtpTarget, parse_smtp_url, send_mail
from tests.smtp import SmtpServer, free_port, smtp_server

USER, PASSWORD = "civio", "s3cret p@ss"


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    if not ok:
        return AuthResult(success=False, handled=False)  # aiosmtpd answers 535
    return AuthResult(success=True, auth_data=USER.encode())


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@dataclass
class Pki:
    ca_file: Path
    server_context: ssl.SSLContext


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A private CA and a server certificate for 127.0.0.1, as a relay with its own CA."""
    directory = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.UTC)

    def certificate(
        subject: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: str,
        issuer_key: ec.EllipticCurvePrivateKey,
        *,
        ca: bool,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = certificate("civio test CA", ca_key, "civio test CA", ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = certificate("127.0.0.1", server_key, "civio test CA", ca_key, ca=False)
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    (directory / "server.pem").write_bytes(
        server_cert.public_bytes(pem) + ca_cert.public_bytes(pem)
    )
    (directory / "server.key").write_bytes(
        server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "server.pem", directory / "server.key")
    return Pki(directory / "ca.pem", context)


def mail_settings(tmp_path: Path, smtp_url: str = "") -> Settings:
    return Settings(
        data_dir=tmp_path,
        smtp_url=smtp_url,
        mail_from="civio <no-reply@civio.test>",
    )


def a_message(to: str = "mario.rossi@example.org") -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = "Prova"
    message["To"] = to
    message.set_content("Ciao Mario,\nquesta è una prova.\n")
    return message


# --- CIVIO_SMTP_URL ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://relay.example.org", SmtpTarget("relay.example.org", 25)),
        ("smtp://127.0.0.1:2525", SmtpTarget("127.0.0.1", 2525)),
        (
            "smtp://relay:587?starttls=1",
            SmtpTarget("relay", 587, start_tls=True),
        ),
        ("smtp://relay:25?starttls=0", SmtpTarget("relay", 25, start_tls=False)),
        (
            "smtp://user%40example.org:p%40ss%3Aw0rd@relay:587?starttls=true&timeout=5",
            SmtpTarget(
                "relay", 587, username="user@example.org", password="p@ss:w0rd", start_tls=True
            ),
        ),
        (
            "smtps://u:p@relay.example.org",
            SmtpTarget(
                "relay.example.org", 465, username="u", password="p", use_tls=True, start_tls=False
            ),
        ),
        (
            "SMTPS://relay:4650?cafile=/etc/civio/ca.pem",
            SmtpTarget(
                "relay", 4650, use_tls=True, start_tls=False, cert_bundle="/etc/civio/ca.pem"
            ),
        ),
    ],
)
def test_smtp_url_forms(url: str, expected: SmtpTarget) -> None:
    parsed = parse_smtp_url(url)
    if "timeout=" in url:
        assert parsed.timeout == 5.0
        expected = SmtpTarget(**{**expected.__dict__, "timeout": 5.0})
    assert parsed == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://user:s3cret@relay:25",
        "smtp://user:s3cret@:25",
        "smtp://user:s3cret@relay:notaport",
        "smtp://user:s3cret@relay:25?startls=1",
        "smtp://user:s3cret@relay:25?starttls=maybe",
        "smtps://user:s3cret@relay?starttls=1",
        "smtp://user:s3cret@relay:25?timeout=-1",
        "smtp://user:s3cret@relay:25?timeout=soon",
    ],
)
def test_a_wrong_smtp_url_is_refused_without_echoing_the_password(url: str) -> None:
    with pytest.raises(ValueError, match="CIVIO_SMTP_URL") as caught:
        parse_smtp_url(url)
    assert "s3cret" not in str(caught.value)


def test_the_parsed_target_does_not_show_its_password() -> None:
    assert "s3cret" not in repr(parse_smtp_url("smtp://user:s3cret@relay:25"))


# --- SMTP --------------------------------------------------------------------------------------


async def test_plain_smtp_delivers_and_completes_the_headers(
    smtp: SmtpServer, tmp_path: Path
) -> None:
    await send_mail(mail_settings(tmp_path, smtp.url), a_message())
    [received] = smtp.capture.received
    assert received.mail_from == "no-reply@civio.test"
    assert received.rcpt_tos == ["mario.rossi@example.org"]
    message = received.message
    assert message["From"] == "civio <no-reply@civio.test>"
    assert message["Message-ID"].endswith("@civio.test>")
    assert message["Date"]
    assert message.get_content().startswith("Ciao Mario,")
    assert not received.tls
    assert not (tmp_path / "mail").exists()


async def test_starttls_and_auth(pki: Pki, tmp_path: Path) -> None:
    with smtp_server(
        tls_context=pki.server_context,
        require_starttls=True,
        auth_required=True,
        authenticator=_authenticator,
    ) as server:
        url = (
            f"smtp://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{server.port}"
            f"?starttls=1&cafile={pki.ca_file}"
        )
        await send_mail(mail_settings(tmp_path, url), a_message())
        [received] = server.capture.received
        assert received.tls
        assert received.login == USER


async def test_a_wrong_password_is_a_transient_error_that_names_no_secret(
    pki: Pki, tmp_path: Path
) -> None:
    with smtp_server(
        tls_context=pki.server_context,
        require_starttls=True,
        auth_required=True,
        authenticator=_authenticator,
    ) as server:
        url = (
            f"smtp://{USER}:wrong-pass@127.0.0.1:{server.port}"
            f"?starttls=1&cafile={pki.ca_file}&timeout=10"
        )
        with pytest.raises(MailDeliveryError) as caught:
            await send_mail(mail_settings(tmp_path, url), a_message())
        assert not caught.value.permanent
        assert "535" in str(caught.value)
        assert "wrong-pass" not in str(caught.value)
        assert not server.capture.received


async def test_an_untrusted_certificate_is_refused(pki: Pki, tmp_path: Path) -> None:
    with smtp_server(tls_context=pki.server_context, require_starttls=True) as server:
        url = f"smtp://127.0.0.1:{server.port}?starttls=1"
        with pytest.raises(MailDeliveryError):
            await send_mail(mail_settings(tmp_path, url), a_message())
        assert not server.capture.received


async def test_required_starttls_is_not_skipped_when_the_server_lacks_it(
    smtp: SmtpServer, tmp_path: Path
) -> None:
    with pytest.raises(MailDeliveryError):
        await send_mail(mail_settings(tmp_path, smtp.url + "?starttls=1"), a_message())
    assert not smtp.capture.received


async def test_smtps_speaks_tls_from_the_first_byte(pki: Pki, tmp_path: Path) -> None:
    with smtp_server(ssl_context=pki.server_context) as server:
        url = f"smtps://127.0.0.1:{server.port}?cafile={pki.ca_file}"
        await send_mail(mail_settings(tmp_path, url), a_message())
        [received] = server.capture.received
        assert received.rcpt_tos == ["mario.rossi@example.org"]


async def test_a_refused_recipient_is_permanent_and_the_error_quotes_no_address(
    smtp: SmtpServer, tmp_path: Path
) -> None:
    with pytest.raises(MailDeliveryError) as caught:
        await send_mail(mail_settings(tmp_path, smtp.url), a_message("refused@example.org"))
    assert caught.value.permanent
    assert "550" in str(caught.value)
    assert "example.org" not in str(caught.value)
    assert caught.value.__cause__ is None


async def test_an_unreachable_relay_is_transient(tmp_path: Path) -> None:
    url = f"smtp://127.0.0.1:{free_port()}?timeout=5"
    with pytest.raises(MailDeliveryError) as caught:
        await send_mail(mail_settings(tmp_path, url), a_message())
    assert not caught.value.permanent


# --- Maildir -----------------------------------------------------------------------------------


async def test_without_smtp_url_the_message_lands_in_the_maildir(tmp_path: Path) -> None:
    await send_mail(mail_settings(tmp_path), a_message())
    root = tmp_path / "mail"
    assert {p.name for p in root.iterdir()} == {"new", "cur", "tmp"}
    [path] = list((root / "new").iterdir())
    parsed = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert parsed["To"] == "mario.rossi@example.org"
    assert parsed["From"] == "civio <no-reply@civio.test>"
    assert parsed["Subject"] == "Prova"
    # And a mail client reading the Maildir sees the same message.
    [stored] = list(mailbox.Maildir(root, create=False))
    assert stored["Message-ID"] == parsed["Message-ID"]
    await send_mail(mail_settings(tmp_path), a_message("luigi@example.org"))
    assert len(list((root / "new").iterdir())) == 2


async def test_concurrent_first_mails_of_a_fresh_data_dir_all_land(tmp_path: Path) -> None:
    # The first mails of a fresh data dir are often concurrent (the worker's send tasks):
    # none may fail because another created the Maildir folders or took its file name first.
    recipients = [f"citizen{n}@example.org" for n in range(50)]
    await asyncio.gather(*(send_mail(mail_settings(tmp_path), a_message(to)) for to in recipients))
    stored = list(mailbox.Maildir(tmp_path / "mail", create=False))
    assert sorted(str(m["To"]) for m in stored) == sorted(recipients)
