"""The real-component rule itself: a missing component skips locally and FAILS under CI=true."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_probe(tmp_path: Path, ci: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_probe.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.mark.postgres
            def test_needs_postgres():
                pass
            """
        )
    )
    (tmp_path / "conftest.py").write_text(f"import sys\nsys.path.insert(0, {str(ROOT)!r})\npytest_plugins = ['tests.conftest']\n")
    env = {"PATH": "/usr/bin:/bin", "CI": ci, "HOME": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:schemathesis", "-o",
         "markers=postgres", str(tmp_path / "test_probe.py")],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False,
    )


def test_missing_component_fails_in_ci(tmp_path):
    result = run_probe(tmp_path, "true")
    assert result.returncode == 1, result.stdout
    assert ("1 failed" in result.stdout or "1 error" in result.stdout)  # either way the run fails
    assert "required test component missing in CI" in result.stdout


def test_missing_component_skips_locally(tmp_path):
    result = run_probe(tmp_path, "")
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout
