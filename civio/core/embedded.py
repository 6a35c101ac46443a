"""The embedded PostgreSQL cluster that makes ``make run`` work with no configuration.

The cluster lives in ``<data_dir>/pgdata`` and listens only on a Unix socket. It comes from
the ``pgserver`` wheel (PostgreSQL 16 bundled, nothing from apt); when that wheel cannot
be imported, the machine's own PostgreSQL binaries are used instead. ``initdb`` refuses
to run as root, so as root the cluster belongs to an unprivileged system user: ``pgserver``
for the wheel's binaries, ``postgres`` for the system's. civio creates that user itself,
once, under a machine-wide lock, before any cluster starts (``ensure_cluster_user``).
"""

from __future__ import annotations

import fcntl
import glob
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

# The system user pgserver runs its clusters as when started by root (fixed by the wheel).
PGSERVER_USER = "pgserver"
# ``useradd``'s exit status when the name is already taken.
_USERADD_EXISTS = 9

_servers: dict[Path, Any] = {}


def exit_on_sigterm() -> None:
    """Make SIGTERM (what systemd, Docker and Kubernetes send) end the process as Ctrl-C does.

    uvicorn catches the signal, shuts down gracefully, then raises it again against the
    handler that was installed before it started. With the default handler the process
    died there, before the ``atexit`` hook that stops the embedded PostgreSQL, which was
    left running. Installed before the server starts, this handler turns that re-raised
    signal into an ordinary exit (status 143, as a shell reports a TERM).
    """

    def exit_now(signum: int, _: FrameType | None) -> None:
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, exit_now)


def _user_lock_path() -> Path:
    """A lock every civio process on the machine agrees on; only root creates users, and
    /run/lock is root's (sticky, world-writable on Debian) lock directory."""
    run_lock = Path("/run/lock")
    return (run_lock if run_lock.is_dir() else Path(tempfile.gettempdir())) / "civio-users.lock"


def ensure_cluster_user(name: str = PGSERVER_USER) -> None:
    """Create the unprivileged system user that owns embedded clusters, if it is missing.

    On a machine that has never run civio, the first ``make test`` starts one cluster per
    pytest-xdist worker at the same moment; pgserver's own check-then-``useradd`` raced,
    and the loser failed with "user already exists" (217 errors). Here the check and the
    creation happen under one exclusive lock, and a name taken meanwhile by something
    outside civio counts as success. Without root there is nothing to do: the cluster
    belongs to the calling user.
    """
    if os.geteuid() != 0:
        return
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
    descriptor = os.open(_user_lock_path(), flags, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        if _user_exists(name):
            return
        created = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            capture_output=True,
            text=True,
        )
        if created.returncode not in (0, _USERADD_EXISTS) or not _user_exists(name):
            raise RuntimeError(
                f"could not create the system user {name!r} for the embedded PostgreSQL: "
                f"{created.stderr.strip() or created.returncode}"
            )
    finally:
        os.close(descriptor)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def start_cluster(pgdata: Path) -> Any:
    """Start (or join) the pgserver cluster in ``pgdata``; it stops when the last process
    using it exits (pgserver's "stop" cleanup)."""
    import pgserver

    ensure_cluster_user()
    return pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]


def embedded_database_url(data_dir: Path) -> str:
    """Start (or join) the embedded cluster and return its ``postgresql://`` URL."""
    pgdata = (data_dir / "pgdata").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if importlib.util.find_spec("pgserver") is None:  # pragma: no cover - wheel unavailable
        return _system_postgres_url(pgdata)
    server = _servers.get(pgdata)
    if server is None:
        server = start_cluster(pgdata)
        _servers[pgdata] = server
    return str(server.get_uri())


def _system_postgres_url(pgdata: Path) -> str:  # pragma: no cover - fallback path
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    initdb = candidates[0] if candidates else shutil.which("initdb")
    if not initdb:
        raise RuntimeError(
            "No PostgreSQL available: install the 'pgserver' wheel or PostgreSQL binaries, "
            "or set CIVIO_DATABASE_URL."
        )
    bindir = Path(initdb).parent
    run_as: list[str] = []
    if os.geteuid() == 0:
        ensure_cluster_user("postgres")
        shutil.chown(pgdata.parent, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    if not (pgdata / "PG_VERSION").exists():
        subprocess.run(
            [
                *run_as,
                str(bindir / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
            check=True,
            capture_output=True,
        )
    status = subprocess.run(
        [*run_as, str(bindir / "pg_ctl"), "-D", str(pgdata), "status"], capture_output=True
    )
    if status.returncode != 0:
        subprocess.run(
            [
                *run_as,
                str(bindir / "pg_ctl"),
                "-D",
                str(pgdata),
                "-w",
                "-l",
                str(pgdata / "log"),
                "-o",
                f"-c listen_addresses='' -k {pgdata}",
                "start",
            ],
            check=True,
            capture_output=True,
        )
    return f"postgresql://postgres@/postgres?host={pgdata}"
