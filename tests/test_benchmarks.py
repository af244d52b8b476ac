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


def test_metacontroller_codes_scores_the_heldout_part_of_a_dataset(tiny_checkpoints, tmp_path):
    """``--data`` scores exactly discover's held-out split (the same episodes, the same numbers)."""
    import json

    import torch
    from internal_rl_agents.discover import (
        cache_activations,
        evaluate_metacontroller,
        heldout_split,
    )

    from internal_rl_gym.data import Demonstrations
    from internal_rl_gym.envs.grid_expert import collect_grid_demonstrations
    from internal_rl_gym.internal_control import load_frozen_models

    collect_grid_demonstrations(40, "pretraining", seed=1).save(tmp_path / "clean.npz")
    script = next(p for p in BENCHMARKS if p.stem == "metacontroller_codes")
    out = subprocess.run(
        [sys.executable, str(script), "--base-model", tiny_checkpoints["base_model"],
         "--metacontroller", tiny_checkpoints["metacontroller"], "--data",
         str(tmp_path / "clean.npz"), "--holdout", "8", "--out", str(tmp_path / "r.json")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={"PATH": "", "OMP_NUM_THREADS": "1", "HOME": str(tmp_path), "MUJOCO_GL": "egl"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads((tmp_path / "r.json").read_text())

    torch.set_num_threads(1)
    base, meta = load_frozen_models(
        tiny_checkpoints["base_model"], tiny_checkpoints["metacontroller"]
    )
    _, held = heldout_split(Demonstrations.load(tmp_path / "clean.npz"), 8)
    assert held.n_episodes == 8
    expected = evaluate_metacontroller(meta, base, cache_activations(base, held, meta.layer), 0.0)
    for key in ("switch_f1", "switches_per_episode", "nll"):
        assert report[key] == pytest.approx(expected[key], rel=1e-6), key
