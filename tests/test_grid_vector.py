"""The natively vectorised GridPinpad (``gym.make_vec(..., vectorization_mode="vector_entry_point")``).

Its layouts come from one batched generator, so they cannot equal those of N single envs seeded
``s, s+1, ...``; instead every step is replayed in single envs reset onto the vector env's layouts
and tasks, and must give the same observation, reward, termination, truncation and info.
"""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import internal_rl_gym  # noqa: F401
from internal_rl_gym.envs import GridPinpadEnv, GridPinpadVectorEnv, grid_core
from internal_rl_gym.envs.grid_expert import GridPinpadExpert
from internal_rl_gym.envs.grid_layouts import solvable_layouts

UP, RIGHT, DOWN, LEFT = range(4)
# Agent at (3,3)=24; colour 0 to its right (25), colour 1 to its left (23), a wall above (17).
LAYOUT = {"walls": [17, 0, 6, 42], "colours": [25, 23, 31, 1, 2, 3, 4, 5], "agent": 24}
INFO_KEYS = ("success", "is_success", "target", "subgoal", "progress", "task", "visited")

GRID_IDS = sorted(
    env_id
    for env_id, spec in gym.registry.items()
    if str(spec.entry_point).endswith(":GridPinpadEnv")
)
# Task variants and env arguments the vector env must reproduce exactly.
VARIANTS = [
    {"task": "post"},
    {"task": "pretraining"},
    {"task": "0-1", "max_steps": 12},
    {"task": (2, 3, 2), "terminate_on_wrong_colour": False, "max_steps": 30},
    {"task": (0, 2, 1), "size": 5, "n_colours": 3, "n_walls": 6, "max_steps": 20},
    {"task": (1, 0), "size": 9, "n_colours": 2, "n_walls": 20},  # larger than 7x7: labels path
]


def make(n=4, **kw):
    return gym.make_vec("GridPinpad-v0", num_envs=n, vectorization_mode="vector_entry_point", **kw)


def layout_of(envs, i):
    e = envs.unwrapped
    return {"walls": e.walls[i], "colours": e.colours[i], "agent": int(e.agent[i])}


def reset_single(single, envs, i):
    return single.reset(options={"layout": layout_of(envs, i), "task": envs.unwrapped.tasks[i]})


def assert_info_row(info, i, single_info):
    assert set(info) == set(INFO_KEYS) | {f"_{k}" for k in INFO_KEYS} | (
        {"final_obs", "_final_obs", "final_info", "_final_info"} & set(info)
    )
    for key in INFO_KEYS:
        assert info[f"_{key}"][i], key
        assert info[key][i] == single_info[key], (key, info[key][i], single_info[key])


@pytest.mark.parametrize("kwargs", VARIANTS, ids=lambda kw: "-".join(map(str, kw.values())))
def test_every_step_equals_single_envs_on_the_same_layouts(kwargs):
    """N=6 envs for 300 steps (many autoresets): a noisy expert, so that episodes succeed, fail
    on wrong colours and time out."""
    n = 6
    envs = make(n, **kwargs)
    singles = [GridPinpadEnv(**kwargs) for _ in range(n)]
    experts = [GridPinpadExpert(seed=i) for i in range(n)]
    rng = np.random.default_rng(0)
    obs, info = envs.reset(seed=1)
    for i, single in enumerate(singles):
        o, inf = reset_single(single, envs, i)
        np.testing.assert_array_equal(obs[i], o)
        assert_info_row(info, i, inf)
    ended = np.zeros(n, dtype=bool)
    outcomes = set()
    for _ in range(300):
        actions = rng.integers(4, size=n)
        for i, single in enumerate(singles):
            if not ended[i] and single.progress < len(single.task) and rng.random() < 0.7:
                actions[i] = experts[i].act(single)
        obs, rew, term, trunc, info = envs.step(actions)
        assert obs.dtype == np.float32 and rew.dtype == np.float64 and term.dtype == bool
        for i, single in enumerate(singles):
            if ended[i]:  # NEXT_STEP autoreset: a new episode, the action is ignored
                o, inf = reset_single(single, envs, i)
                r, te, tr = 0.0, False, False
            else:
                o, r, te, tr, inf = single.step(int(actions[i]))
                if te or tr:
                    outcomes.add("success" if inf["success"] else "truncated" if tr else "failed")
            np.testing.assert_array_equal(obs[i], o)
            assert (rew[i], term[i], trunc[i]) == (r, te, tr)
            assert_info_row(info, i, inf)
        ended = term | trunc
    assert "success" in outcomes
    if kwargs.get("terminate_on_wrong_colour", True) and kwargs["task"] != "post":
        assert "failed" in outcomes


def test_make_vec_defaults_to_the_native_env_and_matches_sync_spaces():
    envs = gym.make_vec("GridPinpad-v0", num_envs=3)  # no mode: the id's vector_entry_point
    assert isinstance(envs.unwrapped, GridPinpadVectorEnv)
    assert envs.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    sync = gym.make_vec("GridPinpad-v0", num_envs=3, vectorization_mode="sync")
    assert envs.single_observation_space == sync.single_observation_space
    assert envs.observation_space == sync.observation_space
    assert envs.single_action_space == sync.single_action_space
    assert envs.action_space == sync.action_space
    assert envs.spec.kwargs["vectorization_mode"] == "vector_entry_point"
    # Info: the same keys, masks and dtypes as SyncVectorEnv's, on reset and on step.
    _, info = envs.reset(seed=0)
    _, sync_info = sync.reset(seed=0)
    assert info.keys() == sync_info.keys()
    for key in info:
        assert info[key].dtype == sync_info[key].dtype, key
    actions = np.array([RIGHT, DOWN, LEFT])
    step, sync_step = envs.step(actions), sync.step(actions)
    for a, b in zip(step[:4], sync_step[:4]):
        assert a.shape == b.shape and a.dtype == b.dtype
    assert step[4].keys() == sync_step[4].keys()


@pytest.mark.parametrize("env_id", GRID_IDS)
@pytest.mark.parametrize("task", ["post", "pretraining", "4-5-6"])
def test_every_registered_grid_id_has_a_vector_entry_point(env_id, task):
    assert gym.spec(env_id).vector_entry_point is not None
    envs = gym.make_vec(env_id, num_envs=5, vectorization_mode="vector_entry_point", task=task)
    obs, info = envs.reset(seed=0)
    assert obs.shape == (5, *gym.make(env_id).observation_space.shape)
    for _ in range(50):
        obs, *_ = envs.step(envs.action_space.sample())
        assert envs.observation_space.contains(obs)
    expected = {"post": "0-1-2-3-4-5-6-7-0-1-2-3", "4-5-6": "4-5-6"}.get(task)
    assert expected is None or set(info["task"]) == {expected}


def test_autoreset_next_step_starts_a_new_episode_and_ignores_the_action():
    envs = make(2, task=(0,))
    obs0, _ = envs.reset(seed=0, options={"layout": LAYOUT})
    _, rew, term, trunc, info = envs.step(np.array([RIGHT, UP]))  # env 0 succeeds, env 1 bumps
    assert rew.tolist() == [1.0, 0.0] and term.tolist() == [True, False] and not trunc.any()
    assert info["success"].tolist() == [True, False] and info["visited"].tolist() == [0, -1]
    obs, rew, term, trunc, info = envs.step(np.array([LEFT, RIGHT]))
    assert rew.tolist() == [0.0, 1.0] and term.tolist() == [False, True]
    e = envs.unwrapped
    assert e.steps[0] == 0 and info["progress"][0] == 0 and not info["success"][0]
    assert info["target"][0] == 0 and info["visited"][0] == -1
    # The new episode's first observation, on a freshly sampled layout (the option was one reset's)
    reference = GridPinpadEnv(task=(0,))
    first, _ = reference.reset(options={"layout": layout_of(envs, 0)})
    np.testing.assert_array_equal(obs[0], first)
    assert not np.array_equal(obs[0], obs0[0])


def test_same_step_autoreset_reports_the_final_observation():
    envs = make(2, task=(0,), autoreset_mode="SameStep")
    assert envs.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    envs.reset(seed=0, options={"layout": LAYOUT})
    final_single = GridPinpadEnv(task=(0,))
    final_single.reset(options={"layout": LAYOUT})
    final_obs, *_ = final_single.step(RIGHT)
    obs, rew, term, trunc, info = envs.step(np.array([RIGHT, UP]))
    assert rew.tolist() == [1.0, 0.0] and term.tolist() == [True, False]
    assert info["_final_obs"].tolist() == [True, False] and info["final_obs"][1] is None
    np.testing.assert_array_equal(info["final_obs"][0], final_obs)
    assert info["final_info"]["success"][0] and info["final_info"]["_success"].tolist() == [
        True,
        False,
    ]
    # The returned row is already the next episode; the env keeps stepping without a reset.
    assert info["progress"][0] == 0 and envs.unwrapped.steps[0] == 0
    envs.step(np.array([UP, UP]))


def test_disabled_autoreset_needs_a_masked_reset():
    envs = make(3, task=(0,), autoreset_mode=AutoresetMode.DISABLED)
    obs0, _ = envs.reset(seed=0, options={"layout": LAYOUT})
    envs.step(np.array([RIGHT, UP, UP]))
    with pytest.raises(RuntimeError, match="reset_mask"):
        envs.step(np.array([UP, UP, UP]))
    mask = np.array([True, False, False])
    obs, info = envs.reset(options={"reset_mask": mask})
    assert info["_progress"].tolist() == [True, False, False]
    assert info["task"].tolist() == ["0", None, None]
    np.testing.assert_array_equal(obs[1:], obs0[1:])  # the others kept their state
    assert not np.array_equal(obs[0], obs0[0])
    envs.step(np.array([UP, UP, UP]))


def test_horizon_truncates_and_success_on_the_last_step_terminates():
    envs = make(2, task=(0,), max_steps=3)
    envs.reset(seed=0, options={"layout": LAYOUT})
    for t in range(3):
        _, rew, term, trunc, _ = envs.step(np.array([UP, UP if t < 2 else RIGHT]))
    assert trunc.tolist() == [True, False] and term.tolist() == [False, True]
    assert rew.tolist() == [0.0, 1.0]


def test_wrong_colour_rule_and_its_option():
    for terminate in (True, False):
        envs = make(1, task=(0, 1), terminate_on_wrong_colour=terminate)
        envs.reset(seed=0, options={"layout": LAYOUT})
        _, rew, term, _, info = envs.step(np.array([LEFT]))  # colour 1 before colour 0
        assert term[0] == terminate and rew[0] == 0.0 and info["visited"][0] == 1
        assert info["progress"][0] == 0


def test_seeding_is_reproducible_and_seeds_differ():
    def rollout(envs, seed):
        out = [envs.reset(seed=seed)[0]]
        rng = np.random.default_rng(7)
        for _ in range(120):  # ~10 autoresets per env
            obs, rew, term, trunc, info = envs.step(rng.integers(4, size=8))
            out += [obs, rew, term, trunc, info["task"], info["target"]]
        return out

    a, b = make(8, task="pretraining"), make(8, task="pretraining")
    first = rollout(a, 3)
    for x, y in zip(first, rollout(b, 3)):
        np.testing.assert_array_equal(x, y)
    for x, y in zip(first, rollout(a, 3)):  # the same env, seeded again after stepping
        np.testing.assert_array_equal(x, y)
    other = rollout(b, 4)
    assert not np.array_equal(first[0], other[0])


@pytest.mark.parametrize(
    "actions, match",
    [
        (np.array([0, np.nan, 1]), "non-finite actions for env\\(s\\) \\[1\\].*NaN"),
        (np.array([0, 4, 1]), "out-of-range actions for env\\(s\\) \\[1\\]: \\[4\\]; use 0 up"),
        (np.array([-1, 0, 1]), "out-of-range"),
        (np.array([0, 1]), "shape \\(2,\\); expected .*shape \\(3,\\)"),
        (np.zeros((3, 2), dtype=int), "shape \\(3, 2\\)"),
        (2, "shape \\(\\)"),
        (np.array([0.5, 1, 2]), "non-integer"),
        (np.array([True, False, True]), "dtype bool"),
        (["up", "up", "up"], "dtype <U2"),
    ],
)
def test_bad_actions_raise_clear_errors(actions, match):
    envs = make(3)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        envs.step(actions)


def test_friendly_action_forms_are_accepted():
    envs = make(3, task=(0,))
    envs.reset(seed=0, options={"layout": LAYOUT})
    for actions in ([1, 1, 1], np.array([[1], [1], [1]]), np.array([1.0, 1.0, 1.0])):
        envs.reset(options={"layout": LAYOUT})
        _, rew, *_ = envs.step(actions)
        assert rew.tolist() == [1.0, 1.0, 1.0]


def test_bad_arguments_and_options_raise_clear_errors():
    with pytest.raises(ValueError, match="num_envs must be >= 1"):
        make(0)
    with pytest.raises(ValueError, match="autoreset_mode"):
        make(2, autoreset_mode="sometimes")
    with pytest.raises(ValueError, match="n_colours"):
        make(2, n_colours=99)
    envs = make(2)
    with pytest.raises(RuntimeError, match="reset\\(\\) before step"):
        envs.step(np.array([0, 0]))
    with pytest.raises(ValueError, match="one integer seed.*vectorization_mode='sync'"):
        envs.reset(seed=[1, 2])
    with pytest.raises(ValueError, match="Unknown reset option"):
        envs.reset(options={"layuot": LAYOUT})
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="bool array"):
        envs.reset(options={"reset_mask": [True, False]})
    with pytest.raises(ValueError, match="at least one True"):
        envs.reset(options={"reset_mask": np.zeros(2, dtype=bool)})
    with pytest.raises(ValueError, match="overlap"):
        envs.reset(options={"layout": {**LAYOUT, "agent": 17}})
    with pytest.raises(ValueError, match="one per env reset"):
        envs.reset(options={"layout": {**LAYOUT, "agent": [24, 24, 24]}})
    with pytest.raises(ValueError, match="outside 0..7"):
        envs.reset(options={"task": (0, 9)})


def test_per_env_layouts_and_a_task_option():
    envs = make(2, max_steps=20)
    layouts = {
        "walls": [LAYOUT["walls"], [1, 2, 3, 4]],
        "colours": [LAYOUT["colours"], [40, 41, 42, 43, 44, 45, 46, 47]],
        "agent": [24, 10],
    }
    obs, info = envs.reset(seed=0, options={"layout": layouts, "task": "1-0"})
    assert info["task"].tolist() == ["1-0", "1-0"] and envs.unwrapped.agent.tolist() == [24, 10]
    assert obs[1].reshape(7, 7, 13)[1, 3, 12] == 1  # agent channel of cell 10
    for _ in range(25):  # later episodes (at the latest after the horizon): the default task
        *_, info = envs.step(envs.action_space.sample())
    assert set(info["task"]) == {"0-1-2-3-4-5-6-7-0-1-2-3"}


def test_sampled_layouts_are_solvable_distinct_and_tasks_cover_the_set():
    envs = make(512, task="pretraining")
    envs.reset(seed=0)
    e = envs.unwrapped
    assert len(set(e.tasks)) == 16
    for i in range(e.num_envs):
        cells = [*e.walls[i], *e.colours[i], e.agent[i]]
        assert len(set(cells)) == len(cells)
        assert grid_core.is_solvable_single(e.walls[i], e.colours[i], e.agent[i], e.tasks[i], 7)


@pytest.mark.parametrize("size, n_walls", [(7, 4), (7, 14), (9, 20), (4, 3)])
def test_batched_solvability_equals_the_single_env_check(size, n_walls):
    rng = np.random.default_rng(size * 100 + n_walls)
    n, n_colours = 1500, 8 if size > 4 else 4
    perm = np.argsort(rng.random((n, size * size)), axis=1)
    walls, colours, agent = perm[:, :n_walls], perm[:, n_walls : n_walls + n_colours], perm[:, -1]
    tasks = [(0, 1, 2, 3, 0), (3, 3), (1,)]
    for task in tasks:
        targets = np.tile(np.array(task), (n, 1))
        got = solvable_layouts(walls, colours, agent, targets, size)
        ref = [
            grid_core.is_solvable_single(w, c, a, task, size)
            for w, c, a in zip(walls, colours, agent)
        ]
        np.testing.assert_array_equal(got, ref)
        assert 0 < got.mean() < 1 or n_walls < 5  # both outcomes occur on crowded grids
    # Mixed task lengths (-1 padding) in one batch.
    targets = np.array([[0, 1, 2], [2, -1, -1]] * (n // 2))
    got = solvable_layouts(walls, colours, agent, targets, size)
    ref = [
        grid_core.is_solvable_single(w, c, a, t[t >= 0], size)
        for w, c, a, t in zip(walls, colours, agent, targets)
    ]
    np.testing.assert_array_equal(got, ref)


def test_render_modes_match_the_single_env():
    for mode in ("rgb_array", "ansi"):
        envs = make(3, task=(0, 1), render_mode=mode)
        envs.reset(seed=0)
        envs.step(np.array([UP, RIGHT, DOWN]))
        frames = envs.render()
        assert len(frames) == 3
        for i in range(3):
            single = GridPinpadEnv(task=(0, 1), render_mode=mode)
            single.reset(options={"layout": {**layout_of(envs, i)}})
            single.steps = int(envs.unwrapped.steps[i])
            single.progress = int(envs.unwrapped.progress[i])
            if mode == "rgb_array":
                np.testing.assert_array_equal(frames[i], single.render())
            else:
                assert frames[i] == single.render()
    with pytest.warns(UserWarning, match="render_mode"):
        assert make(2).render() is None


def test_gymnasium_vector_wrappers_work():
    envs = gym.wrappers.vector.RecordEpisodeStatistics(make(4, task="0-1"))
    envs = gym.wrappers.vector.DictInfoToList(envs)
    envs.reset(seed=0)
    lengths = []
    for _ in range(100):
        *_, infos = envs.step(envs.action_space.sample())
        lengths += [info["episode"]["l"] for info in infos if "episode" in info]
    assert lengths and all(1 <= n <= 100 for n in lengths)
