"""benchmarks/mutation_testing.py is a maintained script, but its runs are not part of pytest:
only that it starts, lists its targets and scores as documented."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "mutation_testing.py"


def _module():
    spec = importlib.util.spec_from_file_location("mutation_testing", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_help_and_list_run_without_mutmut():
    for flag in ("--help", "--list"):
        out = subprocess.run(
            [sys.executable, str(SCRIPT), flag], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
    assert "grid_core" in out.stdout and "internal_control" in out.stdout


def test_targets_exist_and_the_score_counts_timeouts_as_killed():
    """Mutants: a target naming a file or test that moved; timeouts scored as survivors."""
    m = _module()
    repo = SCRIPT.parents[1]
    for target in m.TARGETS.values():
        assert (repo / target.source).is_file()
        assert all((repo / t).is_file() for t in target.tests)
    assert m.status(1) == "killed" and m.status(0) == "survived" and m.status(-24) == "timeout"
    assert m.score({"killed": 6, "timeout": 2, "survived": 1, "no tests": 1}) == 0.8
    assert m.score({}) is None
