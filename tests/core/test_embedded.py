"""The embedded cluster's first start on a machine that has never run civio.

As root, ``initdb`` needs an unprivileged system user. On a fresh machine the first
``make test`` starts one cluster per xdist worker at the same instant, so the user must be
created once, by whichever process comes first, and every other process must find it.
"""

from __future__ import annotations

import multiprocessing
import os
import pwd
import secrets
import subprocess
from collections.abc import Iterator
from multiprocessing.synchronize import Barrier

import pytest

from civio.core.embedded import ensure_cluster_user

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="only root creates system users (as another user, none is needed)"
)

CONTENDERS = 16
ROUNDS = 3


def _contend(barrier: Barrier, name: str) -> None:
    barrier.wait()
    ensure_cluster_user(name)


@pytest.fixture
def unused_user_names() -> Iterator[list[str]]:
    names = [f"civio-t{secrets.token_hex(4)}" for _ in range(ROUNDS)]
    for name in names:
        with pytest.raises(KeyError):
            pwd.getpwnam(name)
    yield names
    for name in names:
        subprocess.run(["userdel", name], capture_output=True)


def test_processes_starting_at_once_all_find_the_user(unused_user_names: list[str]) -> None:
    """Forked contenders released by one barrier collide inside the creation; with
    pgserver's own unlocked check-then-``useradd`` this harness sees 1-2 of 16 fail in
    most rounds ("user already exists")."""
    context = multiprocessing.get_context("fork")
    for name in unused_user_names:
        barrier = context.Barrier(CONTENDERS)
        contenders = [
            context.Process(target=_contend, args=(barrier, name)) for _ in range(CONTENDERS)
        ]
        for process in contenders:
            process.start()
        for process in contenders:
            process.join(timeout=60)
        assert [process.exitcode for process in contenders] == [0] * CONTENDERS
        entry = pwd.getpwnam(name)
        assert entry.pw_uid < 1000, "a system user, not a login account"
        assert entry.pw_shell.endswith("nologin")
