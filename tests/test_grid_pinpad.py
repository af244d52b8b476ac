"""GridPinpad-v0 dynamics: visits, terminations, walls, determinism, observation content."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import internal_rl_gym  # noqa: F401
from internal_rl_gym.envs import grid_core

UP, RIGHT, DOWN, LEFT = range(4)
# 7x7 grid, cell = row * 7 + col. Agent in the centre (3,3) = 24.
# colour 0 right of the agent (3,4)=25, colour 1 left (3,2)=23, colour 2 below (4,3)=31,
# a wall above (2,3)=17, the other colours and walls in the corners area.
LAYOUT = {
    "walls": [17, 0, 6, 42],
    "colours": [25, 23, 31, 1, 2, 3, 4, 5],
    "agent": 24,
}


def make(task=(0, 1), **kw):
    env = gym.make("GridPinpad-v0", task=task, **kw)
    obs, info = env.reset(seed=0, options={"layout": LAYOUT})
    return env, obs, info


def test_spaces_and_observation_layout():
    env, obs, info = make()
    assert env.observation_space.shape == (637,) and obs.dtype == np.float32
    assert env.action_space.n == 4
    grid = obs.reshape(7, 7, 13)
    assert grid[3, 3, 12] == 1 and grid[..., 12].sum() == 1  # agent channel
    assert grid[2, 3, 0] == 1 and grid[..., :4].sum() == 4  # wall k in channel k
    assert grid[3, 4, 4] == 1 and grid[3, 2, 5] == 1  # colour i in channel 4 + i
    assert obs.sum() == 13
    assert info["target"] == 0 and info["subgoal"] == 0 and info["progress"] == 0


def test_success_terminates_with_reward_one():
    env, _, _ = make(task=(0, 1))
    _, r, term, trunc, info = env.step(RIGHT)  # onto colour 0
    assert (r, term, trunc, info["progress"], info["target"]) == (0.0, False, False, 1, 1)
    env.step(LEFT)  # back to the centre
    _, r, term, trunc, info = env.step(LEFT)  # onto colour 1
    assert (r, term, trunc) == (1.0, True, False)
    assert info["success"] and info["is_success"]


def test_wrong_colour_terminates_without_reward():
    env, _, _ = make(task=(0, 1))
    _, r, term, trunc, info = env.step(LEFT)  # colour 1 before colour 0
    assert (r, term, trunc, info["success"]) == (0.0, True, False, False)


def test_visiting_a_completed_colour_again_fails():
    env, _, _ = make(task=(0, 2))
    env.step(RIGHT)  # colour 0 visited
    env.step(LEFT)
    _, r, term, _, info = env.step(RIGHT)  # colour 0 again, but 2 is next
    assert term and r == 0.0 and not info["success"]


def test_walls_and_borders_are_no_ops_and_do_not_revisit():
    env, obs, _ = make(task=(0, 0))
    obs2, r, term, _, _ = env.step(UP)  # wall above
    assert np.array_equal(obs, obs2) and not term
    env.step(RIGHT)  # colour 0, progress 1
    # colour 0 sits at (3,4); above it (2,4) is free, so step there and back along the border:
    # standing still on a colour (bumping) must not count as a second visit.
    layout = dict(LAYOUT, agent=48)  # bottom-right corner (6,6)
    env2 = gym.make("GridPinpad-v0", task=(0,))
    o, _ = env2.reset(seed=0, options={"layout": layout})
    for a in (DOWN, RIGHT):
        o2, _, term, _, info = env2.step(a)
        assert np.array_equal(o, o2) and not term and info["progress"] == 0


def test_bumping_while_standing_on_a_colour_is_not_a_visit():
    layout = {"walls": [17, 0, 6, 42], "colours": [48, 23, 31, 1, 2, 3, 4, 5], "agent": 47}
    env = gym.make("GridPinpad-v0", task=(0, 0))
    env.reset(seed=0, options={"layout": layout})
    _, _, term, _, info = env.step(RIGHT)  # onto colour 0 at the corner (6,6)
    assert info["progress"] == 1 and not term
    for a in (DOWN, RIGHT, DOWN):  # bumps into the border: still on colour 0
        _, _, term, _, info = env.step(a)
        assert info["progress"] == 1 and not term
    env.step(LEFT)
    _, r, term, _, info = env.step(RIGHT)  # re-entering from another cell counts
    assert term and r == 1.0 and info["success"]


def test_free_play_continues_after_a_wrong_colour():
    """Mutant: a wrong colour always terminates, ignoring terminate_on_wrong_colour=False."""
    env, _, _ = make(task=(0, 1), terminate_on_wrong_colour=False)
    _, r, term, trunc, info = env.step(LEFT)  # colour 1 before colour 0
    assert (r, term, trunc, info["visited"], info["progress"]) == (0.0, False, False, 1, 0)
    env.step(RIGHT)
    _, r, term, _, info = env.step(RIGHT)  # now colour 0: the task goes on
    assert (r, term, info["progress"]) == (0.0, False, 1)


def test_success_on_the_last_step_terminates_without_truncating():
    """Mutant: success that lands on step max_steps also sets truncated."""
    env, _, _ = make(task=(0,), max_steps=1)
    _, r, term, trunc, info = env.step(RIGHT)  # onto colour 0 on the last allowed step
    assert (r, term, trunc, info["success"]) == (1.0, True, False, True)


def test_horizon_truncates():
    env, _, _ = make(task=(0, 1), max_steps=5)
    for _ in range(5):
        _, r, term, trunc, _ = env.step(UP)  # bump the wall forever
    assert trunc and not term and r == 0.0
    with pytest.raises(RuntimeError, match="reset"):
        env.step(UP)


def test_default_horizon_is_the_papers():
    env = gym.make("GridPinpad-v0")
    env.reset(seed=0)
    assert env.unwrapped.max_steps == 100


def test_reset_is_deterministic_under_seed_and_layouts_vary():
    env = gym.make("GridPinpad-v0", task="pretraining")
    a, ia = env.reset(seed=123)
    b, ib = env.reset(seed=123)
    c, _ = env.reset(seed=124)
    assert np.array_equal(a, b) and ia == ib
    assert not np.array_equal(a, c)
    starts = {tuple(env.reset(seed=s)[0].nonzero()[0]) for s in range(50)}
    assert len(starts) == 50


def test_rollouts_are_deterministic():
    def rollout():
        env = gym.make("GridPinpad-v0", task="pretraining")
        obs, _ = env.reset(seed=7)
        env.action_space.seed(7)
        out = [obs]
        for _ in range(30):
            obs, r, term, trunc, _ = env.step(env.action_space.sample())
            out.append(obs)
            if term or trunc:
                obs, _ = env.reset()
                out.append(obs)
        return np.stack(out)

    assert np.array_equal(rollout(), rollout())


@pytest.mark.parametrize("task", ["pretraining", "post", (0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3)])
def test_observation_never_contains_the_task(task):
    """Same layout and agent position, different tasks/progress: identical observation."""
    env = gym.make("GridPinpad-v0", task=task)
    obs_a, _ = env.reset(seed=0, options={"layout": LAYOUT, "task": (0, 1)})
    obs_b, _ = env.reset(seed=1, options={"layout": LAYOUT, "task": (2, 7, 5)})
    assert np.array_equal(obs_a, obs_b)
    assert env.observation_space.shape == (637,)


def test_sampled_layouts_are_always_solvable():
    rng = np.random.default_rng(0)
    tasks = [(0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3)] * 2000
    walls, colours, agent = grid_core.sample_layouts(rng, tasks, 7, 4, 8)
    targets = np.array(tasks)
    assert grid_core.is_solvable(walls, colours, agent, targets, 7).all()
    cells = np.concatenate([walls, colours, agent[:, None]], axis=1)
    assert all(len(set(row)) == 13 for row in cells)


def test_solvability_check_detects_a_walled_off_target():
    # colour 0 in the top-left corner (0,0), sealed by walls at (0,1) and (1,0).
    walls = np.array([[1, 7, 40, 41]])
    colours = np.array([[0, 20, 21, 22, 23, 24, 25, 26]])
    ok = grid_core.is_solvable(walls, colours, np.array([48]), np.array([[0]]), 7)
    assert not ok[0]
    ok = grid_core.is_solvable(walls, colours, np.array([48]), np.array([[1]]), 7)
    assert ok[0]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"task": (0, 8)}, "outside 0..7"),
        ({"task": ()}, "empty"),
        ({"task": "zebra"}, "Unknown task"),
        ({"size": 3}, "cannot hold"),
        ({"max_steps": 0}, "max_steps"),
        ({"render_mode": "depth"}, "render_mode"),
        ({"n_colours": 4, "task": "post"}, "explicit colour sequence"),
    ],
)
def test_bad_constructor_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make("GridPinpad-v0", **kwargs)


@pytest.mark.parametrize("action", [4, -1, 1.5, [0, 1], "up"])
def test_bad_actions_raise(action):
    env, _, _ = make()
    with pytest.raises(ValueError, match="action|Action"):
        env.unwrapped.step(action)


def test_bad_layout_raises():
    env = gym.make("GridPinpad-v0")
    with pytest.raises(ValueError, match="overlap"):
        env.reset(options={"layout": dict(LAYOUT, agent=25)})
    with pytest.raises(ValueError, match="walls"):
        env.reset(options={"layout": {"walls": [1]}})


def test_render_modes():
    env, _, _ = make(render_mode="rgb_array")
    img = env.render()
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    text = gym.make("GridPinpad-v0", render_mode="ansi")
    text.reset(seed=0)
    s = text.render()
    assert "A" in s and "#" in s and s.count("\n") == 8


def test_smaller_custom_grid():
    env = gym.make("GridPinpad-v0", size=4, n_colours=4, n_walls=1, task=(0, 1, 2, 3))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4 * 4 * 6,)


def test_fast_and_batched_solvability_checks_agree():
    """The env's scalar check (components) and the collector's (distance maps) must agree,
    including on crowded grids where many layouts are unsolvable."""
    rng = np.random.default_rng(0)
    tasks = [(0, 1, 4, 5, 0, 1), (0, 0, 1), (2, 3, 6, 7, 4, 5)] * 300
    for n_walls in (4, 14):
        perm = np.argsort(rng.random((len(tasks), 49)), axis=1)
        walls, colours, agent = perm[:, :n_walls], perm[:, n_walls : n_walls + 8], perm[:, -1]
        batched = grid_core.is_solvable(
            walls, colours, agent, np.array([t + (-1,) * (6 - len(t)) for t in tasks]), 7
        )
        single = [
            grid_core.is_solvable_single(
                walls[i].tolist(), colours[i].tolist(), int(agent[i]), tasks[i], 7
            )
            for i in range(len(tasks))
        ]
        assert np.array_equal(batched, single)
        assert 0 < batched.mean() < 1


@pytest.mark.parametrize("turns, mirror", grid_core.SYMMETRIES)
def test_grid_symmetries_map_moves_to_moves(turns, mirror):
    """In the transformed frame, action perm[a] moves the agent to the transformed image of
    where a moved it (mutant: a wrong quarter-turn direction or a missing mirror fails)."""
    size, c = 7, grid_core.n_channels(4, 8)
    moves = grid_core.move_table(size)
    perm = grid_core.symmetry_action_permutation(turns, mirror)
    assert sorted(perm) == [0, 1, 2, 3]

    def agent_obs(cell: int) -> np.ndarray:
        obs = np.zeros(size * size * c, dtype=np.float32)
        obs[cell * c + c - 1] = 1
        return obs

    def agent_cell(obs: np.ndarray) -> int:
        return int(obs.reshape(-1, c)[:, -1].argmax())

    for cell in range(size * size):
        for a in range(4):
            before = grid_core.transform_grid_observations(agent_obs(cell), turns, mirror, size)
            after = grid_core.transform_grid_observations(
                agent_obs(int(moves[a, cell])), turns, mirror, size
            )
            assert moves[perm[a], agent_cell(before)] == agent_cell(after)
    x = np.random.default_rng(0).random((3, size * size * c)).astype(np.float32)
    np.testing.assert_array_equal(
        grid_core.transform_grid_observations(torch.as_tensor(x), turns, mirror, size).numpy(),
        grid_core.transform_grid_observations(x, turns, mirror, size),
    )
    if (turns, mirror) != (0, False):
        assert not np.array_equal(grid_core.transform_grid_observations(x, turns, mirror, size), x)
