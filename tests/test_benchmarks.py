"""Every maintained benchmark imports the installed package (no sys.path edits) and has --help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.stem)
def test_benchmark_help_runs_from_anywhere(script, tmp_path):
    """Run from an unrelated folder, so only the installed packages are importable."""
    out = subprocess.run(
        [sys.executable, str(script), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "", "OMP_NUM_THREADS": "1", "HOME": str(tmp_path), "MUJOCO_GL": "egl"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage" in out.stdout.lower()
