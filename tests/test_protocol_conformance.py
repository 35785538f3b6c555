"""broker/_conformance.py: every Protocol has its implementations checked by mypy, and the check bites."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BROKER = ROOT / "broker"
CLIENT = ROOT / "clients" / "awsbroker" / "src" / "awsbroker"  # its Protocols have server-side implementations too


def _protocols() -> set[str]:
    found = set()
    for path in [*BROKER.rglob("*.py"), *CLIENT.rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(b, ast.Name) and b.id == "Protocol" for b in node.bases
            ):
                found.add(node.name)
    return found


def _checked() -> set[str]:
    """The X of every ``type[X]`` annotation in broker/_conformance.py."""
    tree = ast.parse((BROKER / "_conformance.py").read_text())
    return {
        node.slice.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and node.value.id == "type"
        and isinstance(node.slice, ast.Name)
    }


def test_every_protocol_has_its_implementations_checked():
    protocols = _protocols()
    assert {"StateStore", "MappingStore", "DecisionLog", "PasswordConnector", "SAMLConnector", "Credentials"} <= protocols
    # Connector and UpstreamConnector are checked through the capabilities that extend them
    missing = protocols - _checked() - {"Connector", "UpstreamConnector"}
    assert not missing, f"add `_x: type[P] = Implementation` lines to broker/_conformance.py for {sorted(missing)}"


def test_the_conformance_module_loads_nothing_at_run_time():
    code = "import sys, broker._conformance; print(sorted(m for m in sys.modules if m.startswith('broker')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "['broker', 'broker._conformance']"


def test_mypy_refuses_an_implementation_that_drifted_from_its_protocol(tmp_path):
    """The mechanism itself: a class missing a member or with a changed signature fails the lint,
    on the line that names it; a faithful implementation passes."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        textwrap.dedent(
            """
            from __future__ import annotations

            from typing import TYPE_CHECKING

            from broker.state.memory import MemoryState

            if TYPE_CHECKING:
                from broker.state.base import StateStore


            class Drifted(MemoryState):
                def ttl(self, key: str, *, now: float) -> float | None:  # a new required keyword
                    return None


            class Partial:
                def get(self, key: str) -> str | None:
                    return None


            if TYPE_CHECKING:
                _faithful: type[StateStore] = MemoryState
                _drifted: type[StateStore] = Drifted
                _partial: type[StateStore] = Partial
            """
        )
    )
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--cache-dir", str(tmp_path / "cache"),
         "--config-file", str(ROOT / "pyproject.toml"), str(probe)],
        capture_output=True, text=True, cwd=tmp_path, env=env, check=False,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert result.returncode == 1, result.stdout + result.stderr
    assert len(errors) == 3, result.stdout  # the Liskov violation in Drifted, then the two assignments
    assert any('"type[Drifted]"' in e and '"type[StateStore]"' in e for e in errors), result.stdout
    assert any('"type[Partial]"' in e and '"type[StateStore]"' in e for e in errors), result.stdout
    assert not any("MemoryState]\"" in e and "variable has type" in e for e in errors), result.stdout
