"""Guard: every ``@task`` in the code is registered by ``civio.jobs``, which both the embedded
worker and ``civio worker`` import."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

CIVIO = Path(__file__).resolve().parents[2] / "civio"


def test_every_task_is_registered_by_civio_jobs() -> None:
    declared = set()
    for path in CIVIO.rglob("*.py"):
        for match in re.finditer(r"@task\((\w+)\)", path.read_text()):
            declared.add(match.group(1))
    # Resolve the constants in a fresh interpreter that imports only civio.jobs.
    code = (
        "import json, civio.jobs\n"
        "from civio.core.queue import registered_tasks\n"
        "print(json.dumps(sorted(registered_tasks())))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    registered = json.loads(out.stdout)
    assert len(registered) == len(declared), (registered, declared)
