"""The dev test login's password: random per data dir, never a published constant.

Generated the first time any process of a data dir needs it, stored with mode 0600 beside
the embedded cluster, and shown once, in the banner of the ``civio serve`` that created it.
An operator may set ``CIVIO_TEST_LOGIN_PASSWORD`` instead (tests do).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from civio.core.config import Settings

FILE_NAME = "test-login.password"


@dataclass(frozen=True)
class DevLoginPassword:
    value: str
    path: Path | None  # None when it comes from CIVIO_TEST_LOGIN_PASSWORD
    created: bool  # True only for the call that generated it


_known: dict[Path, str] = {}


def dev_login_password(settings: Settings) -> DevLoginPassword:
    if settings.test_login_password:
        return DevLoginPassword(settings.test_login_password, None, False)
    path = (Path(settings.data_dir) / FILE_NAME).resolve()
    known = _known.get(path)
    if known is not None:
        return DevLoginPassword(known, path, False)
    created = _create(path)
    value = path.read_text().strip()
    _known[path] = value
    return DevLoginPassword(value, path, created)


def _create(path: Path) -> bool:
    """Write a fresh password unless one exists; atomic, so concurrent first starts agree
    (the file appears whole, through a hard link, or not at all)."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_urlsafe(24) + "\n")
    try:
        os.link(draft, path)
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            draft.unlink()
    return True
