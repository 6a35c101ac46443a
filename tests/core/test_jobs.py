"""Guard: every ``@task`` and every ``@periodic`` job declared in the code is registered by
``civio.jobs``, which both the embedded worker and ``civio worker`` import, and nothing is
registered that the code does not declare.

Names are compared, not counts: a missing job and an extra one would cancel out in a count.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from civio.core.queue import registered_periodic, registered_tasks

ROOT = Path(__file__).resolve().parents[2]
CIVIO = ROOT / "civio"


def declared_jobs(decorator: str) -> set[str]:
    """The names given to ``@<decorator>(name, …)`` anywhere in civio (a string literal or
    a module-level constant, resolved by importing the declaring module here)."""
    names: set[str] = set()
    for path in CIVIO.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        module_name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for node in ast.walk(tree):
            if not isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef):
                continue
            for deco in node.decorator_list:
                if not (
                    isinstance(deco, ast.Call)
                    and isinstance(deco.func, ast.Name)
                    and deco.func.id == decorator
                    and deco.args
                ):
                    continue
                first = deco.args[0]
                module = importlib.import_module(module_name)
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    names.add(first.value)
                elif isinstance(first, ast.Name):
                    names.add(getattr(module, first.id))
                else:
                    pytest.fail(f"{path}:{deco.lineno}: a job name must be a literal or constant")
    return names


def registered_by_civio_jobs() -> dict[str, list[str]]:
    """What a fresh interpreter that imports only ``civio.jobs`` registers, and which
    periodic jobs lack a callable handler."""
    code = (
        "import json, civio.jobs\n"
        "from civio.core.queue import registered_periodic, registered_tasks\n"
        "periodic = registered_periodic()\n"
        "print(json.dumps({\n"
        "    'tasks': sorted(registered_tasks()),\n"
        "    'periodic': sorted(periodic),\n"
        "    'periodic_without_handler': sorted(\n"
        "        n for n, s in periodic.items() if not callable(s.handler)\n"
        "    ),\n"
        "}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result: dict[str, list[str]] = json.loads(out.stdout)
    return result


def test_every_declared_job_is_registered_by_civio_jobs_and_nothing_else() -> None:
    registered = registered_by_civio_jobs()
    assert set(registered["tasks"]) == declared_jobs("task")
    assert set(registered["periodic"]) == declared_jobs("periodic")
    assert registered["periodic_without_handler"] == []


def test_the_declaration_scan_finds_what_the_registry_holds() -> None:
    """The scan above is only as good as its parser: in this process (which has imported
    the declaring modules) it must see exactly what the decorators registered."""
    declared_tasks, declared_periodic = declared_jobs("task"), declared_jobs("periodic")
    assert declared_tasks == set(registered_tasks())
    assert declared_periodic == set(registered_periodic())
    assert "auth.purge_expired_sessions" in declared_periodic
