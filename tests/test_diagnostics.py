"""Base-model diagnostics compute what they claim (checked against the expert itself)."""

from __future__ import annotations

import numpy as np

from agents.diagnostics import last_visited_colours
from internal_rl_gym.envs.grid_expert import (
    collect_grid_demonstrations,
    grid_layouts_from_obs,
    optimal_action_mask,
)


def test_expert_actions_are_always_optimal_and_ties_exist():
    data = collect_grid_demonstrations(64, "pretraining", seed=0)
    batch = data.batch(np.arange(64))
    optimal = optimal_action_mask(batch)
    taken = np.take_along_axis(optimal, batch["actions"][..., None], -1)[..., 0]
    assert taken[batch["mask"]].all()
    assert optimal[batch["mask"]].sum(-1).mean() > 1.2  # several shortest-path actions often


def test_layouts_recovered_from_the_first_observation():
    data = collect_grid_demonstrations(4, "post", seed=1)
    walls, colours = grid_layouts_from_obs(data.batch(np.arange(4))["obs"][:, 0])
    assert walls.shape == (4, 4) and colours.shape == (4, 8)
    assert all(len(set(w) | set(c)) == 12 for w, c in zip(walls, colours))


def test_last_visited_colour_labels():
    targets = np.array([[0, 0, 1, 1, 4, 5, -1], [6, 7, 7, 2, 3, -1, -1]])
    expected = np.array([[8, 8, 0, 0, 1, 4, 4], [8, 6, 6, 7, 2, 2, 2]])
    assert np.array_equal(last_visited_colours(targets), expected)


def test_free_play_judge_ends_on_a_finished_or_impossible_task():
    """_AnyTaskJudge: success = the colours visited form one of the tasks; any colour that no
    task continues with ends the episode at once."""
    import gymnasium as gym

    from agents.diagnostics import _AnyTaskJudge

    class Scripted(gym.Env):
        observation_space = gym.spaces.Box(0, 1, (1,))
        action_space = gym.spaces.Discrete(1)

        def __init__(self, visits):
            self.visits = visits

        def reset(self, **kwargs):
            self.t = 0
            return np.zeros(1, np.float32), {}

        def step(self, action):
            v, self.t = self.visits[self.t], self.t + 1
            if v == "fall":
                return np.zeros(1, np.float32), 0.0, True, False, {"visited": -1, "termination": v}
            return np.zeros(1, np.float32), 0.0, False, self.t == len(self.visits), {"visited": v}

    def play(visits):
        env = _AnyTaskJudge(Scripted(visits), tasks=[(0, 2, 1), (1, 3)])
        env.reset()
        for k in range(len(visits)):
            *_, term, trunc, info = env.step(0)
            if term or trunc:
                return k + 1, info["success"], env.visited, env.ending

    assert play([-1, 0, -1, 2, 1, -1]) == (5, True, (0, 2, 1), "task_done")
    assert play([1, -1, 0, -1]) == (3, False, (1, 0), "no_task")  # 1-0 starts no task
    assert play([-1, 1, -1]) == (3, False, (1,), "time")  # time ran out mid-task
    assert play([0, "fall", 2]) == (2, False, (0,), "fall")  # the env's own ending
