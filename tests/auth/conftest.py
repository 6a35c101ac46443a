"""A real OpenID provider for the login tests: panva's certified ``oidc-provider`` on Node.js.

It is installed once (``npm ci`` from the committed lock file into
``tests/auth/oidc_provider/node_modules``, ignored by git) and started once per xdist worker
on a free port. It never calls civio: the test plays the browser, carrying the redirects
between civio (through the ASGI app) and the provider (over a real socket).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
from fastapi import FastAPI

from civio.app import create_app
from civio.core.config import Settings
from civio.core.runtime import Runtime

PROVIDER_DIR = Path(__file__).resolve().parent / "oidc_provider"
PUBLIC_URL = "http://civio.test"
CALLBACK_URL = f"{PUBLIC_URL}/api/auth/v1/login/callback"
CLIENT_ID = "civio-test"
MINIMUM_NODE = 18


def _locked_version(lock_file: Path) -> str | None:
    try:
        packages = json.loads(lock_file.read_text())["packages"]
    except (OSError, ValueError, KeyError):
        return None
    version = packages.get("node_modules/oidc-provider", {}).get("version")
    return str(version) if version else None


def _installed() -> bool:
    """node_modules holds the version the committed lock file names (npm's hidden lock
    file records what was installed)."""
    wanted = _locked_version(PROVIDER_DIR / "package-lock.json")
    have = _locked_version(PROVIDER_DIR / "node_modules" / ".package-lock.json")
    return wanted is not None and wanted == have


def _tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(
            "The OpenID login tests need Node.js and npm on PATH "
            "(Debian: apt-get install -y nodejs npm)."
        )
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < MINIMUM_NODE:
        pytest.fail(f"oidc-provider 8 needs Node.js >= {MINIMUM_NODE}, found {version}.")
    return node, npm


def install_provider(npm: str) -> None:
    """``npm ci`` unless already done; xdist workers take turns on a lock."""
    with (PROVIDER_DIR / "package.json").open() as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        try:
            if not _installed():
                subprocess.run(
                    [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                    cwd=PROVIDER_DIR,
                    check=True,
                    timeout=600,
                )
        finally:
            fcntl.flock(guard, fcntl.LOCK_UN)


@dataclass(frozen=True)
class OidcProvider:
    issuer: str
    client_id: str
    client_secret: str


def _read_issuer(process: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if ready:
            line = process.stdout.readline()
            if line:
                return str(json.loads(line)["issuer"])
    raise RuntimeError(f"the OpenID provider did not start:\n{log.read_text()}")


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OidcProvider]:
    node, npm = _tools()
    install_provider(npm)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    env = {
        **os.environ,
        "CLIENT_ID": CLIENT_ID,
        "CLIENT_SECRET": secret,
        "REDIRECT_URI": CALLBACK_URL,
        "PORT": "0",
    }
    with tempfile.NamedTemporaryFile(prefix="oidc-provider-", suffix=".log") as log:
        process = subprocess.Popen(
            [node, "server.mjs"],
            cwd=PROVIDER_DIR,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        try:
            issuer = _read_issuer(process, Path(log.name))
            yield OidcProvider(issuer=issuer, client_id=CLIENT_ID, client_secret=secret)
        finally:
            # The provider exits when its standard input closes.
            assert process.stdin is not None
            process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def oidc_settings(settings: Settings, oidc_provider: OidcProvider) -> Settings:
    return settings.model_copy(
        update={
            "oidc_issuer": oidc_provider.issuer,
            "oidc_client_id": oidc_provider.client_id,
            "oidc_client_secret": oidc_provider.client_secret,
            "public_url": PUBLIC_URL,
        }
    )


@pytest.fixture
async def oidc_app(oidc_settings: Settings, runtime: Runtime) -> AsyncIterator[FastAPI]:
    """A fresh app per test, so its provider cache (discovery, JWKS) starts empty."""
    application = create_app(oidc_settings, runtime=runtime, run_worker=False)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def civio(oidc_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=oidc_app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_URL) as client:
        yield client


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    """The citizen's browser on the provider's side: it keeps the provider's cookies."""
    async with httpx.AsyncClient(timeout=10, follow_redirects=False) as client:
        yield client


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and self.action is None:
            self.action = values.get("action", "")
        elif tag == "input" and "name" in values:
            self.fields[values["name"]] = values.get("value", "")


async def sign_in_at_provider(
    browser: httpx.AsyncClient, authorization_url: str, login: str
) -> str:
    """Follow the provider's pages as a browser would: sign in as ``login``, consent, and
    return the URL the provider sends the browser back to (civio's callback)."""
    response = await browser.get(authorization_url)
    for _ in range(12):
        if response.is_redirect:
            target = urljoin(str(response.url), response.headers["location"])
            if target.startswith(PUBLIC_URL):
                return target
            response = await browser.get(target)
            continue
        assert response.status_code == 200, response.text
        form = _Form()
        form.feed(response.text)
        assert form.action is not None, response.text
        data = dict(form.fields)
        if data.get("prompt") == "login":
            data.update(login=login, password="any password")
        response = await browser.post(urljoin(str(response.url), form.action), data=data)
    raise AssertionError("the provider never redirected back to civio")
