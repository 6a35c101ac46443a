"""What a new user does on a fresh clone: ``make run``, then the CLI and real HTTP."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import CIVIO, ROOT, free_port
from tests.factories import random_fiscal_code, valid_message


@pytest.fixture(scope="module")
def make_run() -> Iterator[tuple[str, dict[str, str], Path]]:
    data_dir = Path(tempfile.mkdtemp(prefix="civio-run-", dir="/tmp"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVIO_")}
    env["CIVIO_DATA_DIR"] = str(data_dir)
    log = data_dir / "make-run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["make", "run", f"PORT={port}"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield url, env, log
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        shutil.rmtree(data_dir, ignore_errors=True)


def cli(env: dict[str, str], *args: str) -> dict[str, object]:
    out = subprocess.run(
        [CIVIO, *args, "--json"], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def wait_status(url: str, location: str, key: str, wanted: str) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while True:
        body = httpx.get(f"{url}{location}", headers={"Ocp-Apim-Subscription-Key": key}).json()
        if body["status"] == wanted or time.monotonic() > deadline:
            return body  # type: ignore[no-any-return]
        time.sleep(0.1)


@pytest.mark.e2e
def test_new_user_sends_a_message_end_to_end(make_run: tuple[str, dict[str, str], Path]) -> None:
    url, env, log = make_run
    output = log.read_text()
    assert f"{url}/api/v1" in output
    service = cli(
        env,
        "service",
        "create",
        "--name",
        "Anagrafe",
        "--organization-name",
        "Comune di Prova",
        "--organization-fiscal-code",
        "12345678901",
        "--group",
        "ApiMessageWrite",
        "--group",
        "ApiMessageRead",
    )
    key = str(service["primary_key"])
    headers = {"Ocp-Apim-Subscription-Key": key}
    citizen = random_fiscal_code()
    cli(env, "citizen", "create", citizen, "--email", "citizen@example.org")

    sent = httpx.post(f"{url}/api/v1/messages/{citizen}", json=valid_message(), headers=headers)
    assert sent.status_code == 201, sent.text
    processed = wait_status(url, sent.headers["Location"], key, "PROCESSED")
    assert processed["status"] == "PROCESSED"
    assert processed["message"]["content"]["subject"] == "Your permit is ready"  # type: ignore[index]

    stranger = httpx.post(
        f"{url}/api/v1/messages/{random_fiscal_code()}", json=valid_message(), headers=headers
    )
    assert stranger.status_code == 201
    rejected = wait_status(url, stranger.headers["Location"], key, "REJECTED")
    assert rejected["status"] == "REJECTED"
    assert "content" not in rejected["message"]  # type: ignore[operator]


@pytest.mark.e2e
def test_printed_sandbox_key_is_limited_to_authorized_recipients(
    make_run: tuple[str, dict[str, str], Path],
) -> None:
    url, _, log = make_run
    match = re.search(r"Ocp-Apim-Subscription-Key: ([0-9a-f]{64})", log.read_text())
    assert match, log.read_text()
    headers = {"Ocp-Apim-Subscription-Key": match.group(1)}
    outside = httpx.post(
        f"{url}/api/v1/messages/{random_fiscal_code()}", json=valid_message(), headers=headers
    )
    assert outside.status_code == 403
    assert outside.json()["title"] == "Recipient forbidden"
    sandbox = httpx.post(
        f"{url}/api/v1/messages/AAAAAA00A00A000A", json=valid_message(), headers=headers
    )
    assert sandbox.status_code == 201


def _banner_secret(output: str, pattern: str) -> str:
    match = re.search(pattern, output)
    assert match, output
    return match.group(1)


def _test_login(url: str, password: str) -> httpx.Response:
    return httpx.post(
        f"{url}/api/auth/v1/test-login",
        json={"username": random_fiscal_code(), "password": password},
    )


PASSWORD_LINE = r"test-login password \(shown once, kept in (?:\S+)\): (\S+)"
KEY_LINE = r"Ocp-Apim-Subscription-Key: ([0-9a-f]{64})"


@pytest.mark.e2e
def test_make_run_is_dev_with_a_password_of_its_own(
    make_run: tuple[str, dict[str, str], Path],
) -> None:
    url, env, log = make_run
    output = log.read_text()
    assert "(dev: embedded database, on 127.0.0.1 only)" in output
    password = _banner_secret(output, PASSWORD_LINE)
    stored = Path(env["CIVIO_DATA_DIR"]) / "test-login.password"
    assert stored.read_text().strip() == password
    assert stored.stat().st_mode & 0o777 == 0o600
    published = _test_login(url, "civio-dev-password")
    assert published.status_code == 401, "the old published constant opens nothing"
    assert _test_login(url, password).status_code == 200


@pytest.mark.e2e
def test_a_second_instance_renews_nothing_and_prints_no_secret(
    make_run: tuple[str, dict[str, str], Path],
) -> None:
    url, env, log = make_run
    first = log.read_text()
    key = _banner_secret(first, KEY_LINE)
    password = _banner_secret(first, PASSWORD_LINE)
    port = free_port()
    second_log = Path(env["CIVIO_DATA_DIR"]) / "second.log"
    with second_log.open("wb") as out:
        second = subprocess.Popen(
            [CIVIO, "serve", "--port", str(port), "--no-worker"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        # The test-login line is the banner's last, whatever it says.
        while "test-login password" not in second_log.read_text():
            assert second.poll() is None, second_log.read_text()
            assert time.monotonic() < deadline, second_log.read_text()
            time.sleep(0.2)
    finally:
        second.send_signal(signal.SIGINT)
        second.wait(timeout=20)
    banner = second_log.read_text()
    assert key not in banner
    assert password not in banner
    assert "its key was shown when it was created" in banner
    assert "test-login password: in" in banner
    still = httpx.post(
        f"{url}/api/v1/messages/AAAAAA00A00A000A",
        json=valid_message(),
        headers={"Ocp-Apim-Subscription-Key": key},
    )
    assert still.status_code == 201, "the key the first instance printed still works"


@pytest.mark.e2e
def test_secrets_never_reach_the_structured_log(
    make_run: tuple[str, dict[str, str], Path],
) -> None:
    _, _, log = make_run
    output = log.read_text()
    secrets_shown = [_banner_secret(output, KEY_LINE), _banner_secret(output, PASSWORD_LINE)]
    log_lines = [line for line in output.splitlines() if line.startswith("{")]
    assert log_lines, "the platform logs JSON lines"
    for line in log_lines:
        for secret in secrets_shown:
            assert secret not in line
