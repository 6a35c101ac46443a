"""The embedded PostgreSQL cluster that makes ``make run`` work with no configuration.

The cluster lives in ``<data_dir>/pgdata`` and listens only on a Unix socket. It comes from
the ``pgserver`` wheel (PostgreSQL 16 bundled, nothing from apt); when that wheel cannot
be imported, the machine's own PostgreSQL binaries are used instead. ``initdb`` refuses
to run as root, so as root the cluster belongs to an unprivileged system user (pgserver
creates ``pgserver``; the system-binaries path uses ``postgres``, created when missing).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

_servers: dict[Path, Any] = {}


def embedded_database_url(data_dir: Path) -> str:
    """Start (or join) the embedded cluster and return its ``postgresql://`` URL."""
    pgdata = (data_dir / "pgdata").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        import pgserver
    except ImportError:  # pragma: no cover - exercised only where the wheel is unavailable
        return _system_postgres_url(pgdata)
    server = _servers.get(pgdata)
    if server is None:
        # "stop": the cluster stops when the last process using it exits.
        server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
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
        if subprocess.run(["id", "postgres"], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
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
