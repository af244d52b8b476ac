"""The `internal-rl` command line: help, collect for both envs, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agents.cli import COMMANDS, main
from internal_rl_gym.data import Demonstrations


def test_help_lists_every_command(capsys):
    assert main([]) == 2
    text = capsys.readouterr().out
    assert all(name in text for name in COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert "--" in capsys.readouterr().out


def test_collect_grid(tmp_path, capsys):
    out = tmp_path / "grid.npz"
    main(["collect", "--episodes", "12", "--task", "0-1-2-3", "--out", str(out), "--seed", "3"])
    data = Demonstrations.load(out)
    assert data.n_episodes == 12 and data.obs_dim == 637 and data.packed
    assert all(tuple(t[t >= 0]) == (0, 1, 2, 3) for t in data.tasks)
    assert "wrote 12 episodes" in capsys.readouterr().out


def test_collect_ant_clean_data(tmp_path):
    out = tmp_path / "ant.npz"
    main(
        [
            "collect",
            "--env",
            "AntPinpad-v0",
            "--episodes",
            "1",
            "--expert-mode",
            "mean",
            "--task",
            "0-1",
            "--out",
            str(out),
        ]
    )
    data = Demonstrations.load(out)
    assert data.n_episodes == 1 and not data.packed and data.actions.shape[1] == 8
    assert np.isfinite(data.observations).all()


def test_collect_ant_routes_records_its_env(tmp_path):
    """AntPinpadRoutes-v0 data: 49-dim observations, and the id and its registered kwargs in the
    metadata (downstream programs read the env from there). Mutant: the metadata's env id
    hard-coded to AntPinpad-v0."""
    out = tmp_path / "routes.npz"
    main(
        ["collect", "--env", "AntPinpadRoutes-v0", "--episodes", "1", "--task", "0-1"]
        + ["--expert-mode", "mean", "--out", str(out)]
    )
    data = Demonstrations.load(out)
    assert data.observations.shape[1] == 49
    assert data.metadata["env_id"] == "AntPinpadRoutes-v0"
    assert data.metadata["env_kwargs"] == {"relative_frame": "heading", "route_hints": True}


@pytest.mark.parametrize(
    ("obs_dim", "env_id"),
    [(41, "AntPinpad-v0"), (49, "AntPinpadRoutes-v0"), (53, "AntPinpadRoutes-v1")],
)
def test_diagnose_finds_the_ant_env_a_model_reads(obs_dim, env_id):
    from agents.cli import _env_of
    from internal_rl_gym.models import BaseModel

    kw = dict(arch="hawk", action_dim=8, action_type="continuous", d_model=8, n_layers=1)
    assert _env_of(BaseModel(obs_dim=obs_dim, n_heads=1, d_mlp=8, **kw)) == env_id
    with pytest.raises(SystemExit, match="pass --env"):
        _env_of(BaseModel(obs_dim=50, n_heads=1, d_mlp=8, **kw))


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--greedy", "--act", "mean"], "--greedy and --act mean contradict"),
        (["--act", "mode"], "--act must be one of sample, greedy, mean, got 'mode'"),
    ],
)
def test_diagnose_rejects_an_unknown_or_contradictory_act(flags, message):
    with pytest.raises(SystemExit, match=message):
        main(["diagnose", "--model", "no-such-model", *flags])


def test_collect_rejects_unknown_env(tmp_path):
    with pytest.raises(SystemExit, match="no expert"):
        main(["collect", "--env", "CartPole-v1", "--out", str(tmp_path / "x.npz")])


def test_collect_never_imports_torch(tmp_path):
    """The claim in agents/cli.py: `internal-rl collect` (grid and ant) runs with torch made
    unimportable. Mutant: ``import torch`` back at the top of agents/common.py (which the CLI
    imports for every command)."""
    grid, ant = tmp_path / "grid.npz", tmp_path / "ant.npz"
    script = (
        "import sys\n"
        "sys.modules['torch'] = None  # any `import torch` now raises ImportError\n"
        "from agents.cli import main\n"
        f"main(['collect', '--episodes', '3', '--task', '0-1', '--out', {str(grid)!r}])\n"
        "main(['collect', '--env', 'AntPinpad-v0', '--episodes', '1', '--task', '0', "
        f"'--expert-mode', 'mean', '--out', {str(ant)!r}])\n"
    )
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=repo, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert Demonstrations.load(grid).n_episodes == 3 and Demonstrations.load(ant).n_episodes == 1


@pytest.mark.parametrize("finished_only", [True, False])
def test_a_recorded_command_parses_back_to_its_config(finished_only):
    """Reports record the command that made them (`command_line`); rerunning it must give the
    same config, boolean flags included (`--finished-only`, not `--finished-only True`)."""
    import argparse
    import shlex

    from agents.common import add_config_arguments, command_line, config_from_args
    from agents.compare import CompareConfig

    cfg = CompareConfig(env="ant", seeds=[0, 1, 2], threads=1, finished_only=finished_only)
    words = shlex.split(command_line("compare", cfg))
    assert words[:2] == ["internal-rl", "compare"]
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, CompareConfig)
    assert config_from_args(CompareConfig, parser.parse_args(words[2:])) == cfg
