"""The `internal-rl` command line: help, collect for both envs, clear errors."""

from __future__ import annotations

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


def test_collect_rejects_unknown_env(tmp_path):
    with pytest.raises(SystemExit, match="no expert"):
        main(["collect", "--env", "CartPole-v1", "--out", str(tmp_path / "x.npz")])
