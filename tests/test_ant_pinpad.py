"""AntPinpad-v0 / AntPinpadShaped-v0 dynamics, rules, rendering, and the gait + planner expert."""

import json
import pickle
import warnings
from dataclasses import asdict

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import internal_rl_gym  # noqa: F401
from internal_rl_gym.envs import grid_core
from internal_rl_gym.envs.ant_expert import (
    ANT_EXPERT_CONFIG,
    AntPinpadExpert,
    PlannerParams,
    collect_ant_demonstrations,
    load_ant_expert_params,
    run_episode,
)
from internal_rl_gym.envs.ant_gait import GaitParams, search_walking_gait
from internal_rl_gym.envs.ant_pinpad import AntPinpadEnv, AntPinpadShapedEnv, cell_centre
from internal_rl_gym.tasks import ANT_PRETRAINING_TASKS

IDS = ("AntPinpad-v0", "AntPinpadRoutes-v0", "AntPinpadRoutes-v1", "AntPinpadShaped-v0")
ALLOWED_WARNINGS = ("infinite", "infinity")
ZERO = np.zeros(8, dtype=np.float32)
# 4x4 grid, cell = row * 4 + col, row 0 at the top (largest y), cell size 2 -> centres at +-1, +-3.
#   row 0:  A  W  .  .      A = start (cell 0), W = wall (cell 1)
#   row 1:  0  .  .  .      0..3 = colours
#   row 2:  1  .  .  .
#   row 3:  2  .  .  3
LAYOUT = {"walls": [1], "colours": [4, 8, 12, 15], "agent": 0}
CENTRE = {c: cell_centre(c, 4, 2.0) for c in range(16)}


def make(env_id="AntPinpad-v0", task=(0, 1), seed=0, options=None, **kw):
    env = gym.make(env_id, task=task, **kw)
    opts = {"layout": LAYOUT, "xy": CENTRE[0], "yaw": 0.0, **(options or {})}
    obs, info = env.reset(seed=seed, options=opts)
    return env, obs, info


def teleport(env, x, y, z=None):
    """Move the torso (state manipulation) without stepping."""
    e = env.unwrapped
    e.data.qpos[0], e.data.qpos[1] = x, y
    if z is not None:
        e.data.qpos[2] = z
    mujoco.mj_forward(e.model, e.data)


def _unexpected(caught, env_id=""):
    # Gymnasium says a -v0 is "out of date" once a -v1 of its name exists: true of Routes-v0
    allowed = ALLOWED_WARNINGS + (("out of date",) if env_id == "AntPinpadRoutes-v0" else ())
    return [str(w.message) for w in caught if not any(a in str(w.message) for a in allowed)]


# --- API ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", IDS)
def test_checkers_pass_with_only_infinite_bound_warnings(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(gym.make(env_id), warn=True)
    assert _unexpected(caught, env_id) == []


def test_spaces_and_observation_layout():
    env, obs, info = make()
    e = env.unwrapped
    assert env.action_space == gym.spaces.Box(-1, 1, (8,), np.float32)
    assert env.observation_space.shape == (41,) and obs.dtype == np.float32
    assert (e.size, e.cell_size, e.max_steps, e.frame_skip, e.dt) == (4, 2.0, 500, 5, 0.05)
    s = e.obs_slices
    np.testing.assert_allclose(obs[s["xy"]], np.array(CENTRE[0]) / 4.0, atol=1e-6)
    rel = obs[s["relative"]].reshape(5, 2)
    expected = [(np.array(CENTRE[c]) - CENTRE[0]) / 8.0 for c in [4, 8, 12, 15, 1]]
    np.testing.assert_allclose(rel, np.array(expected), atol=1e-6)  # colours in order, then wall
    np.testing.assert_allclose(obs[s["local"]], 0.0, atol=1e-6)  # at the cell centre
    proprio = np.concatenate([e.data.qpos[2:], e.data.qvel])
    np.testing.assert_allclose(
        obs[s["proprio"]], np.sign(proprio) * np.log1p(np.abs(proprio)), rtol=1e-6
    )
    for key in ("success", "is_success", "target", "subgoal", "progress", "task"):
        assert key in info
    assert (info["target"], info["subgoal"], info["progress"], info["task"]) == (0, 0, 0, "0-1")
    assert info["cell"] == 0 and info["x_position"] == pytest.approx(-3.0)


def test_local_coordinate_and_heading_frame():
    env, _, _ = make(options={"xy": (-3.5, 2.5)})  # cell 0 spans x in [-4, -2], y in [2, 4]
    obs, *_ = env.step(ZERO)
    e = env.unwrapped
    x, y = e.data.qpos[:2]
    np.testing.assert_allclose(obs[e.obs_slices["local"]], [x + 3.0, y - 3.0], atol=1e-5)
    h, _, _ = make(relative_frame="heading", options={"yaw": np.pi / 2})
    w, _, _ = make(relative_frame="world", options={"yaw": np.pi / 2})
    oh, ow = h.unwrapped._get_obs(), w.unwrapped._get_obs()
    rel_w, rel_h = ow[29:39].reshape(5, 2), oh[29:39].reshape(5, 2)
    # facing +y: a world vector (vx, vy) is (vy, -vx) in the ant's frame
    np.testing.assert_allclose(rel_h, np.stack([rel_w[:, 1], -rel_w[:, 0]], 1), atol=1e-4)


def test_route_hints_point_along_a_shortest_path_to_every_colour():
    # Layout (see LAYOUT): A W . . / 0 . . . / 1 . . . / 2 . . 3, the ant at cell 0's centre.
    env, obs, _ = make(route_hints=True)
    e = env.unwrapped
    assert env.observation_space.shape == (49,) and e.obs_slices["route_hints"] == slice(41, 49)
    route = obs[e.obs_slices["route_hints"]].reshape(4, 2)
    # From cell 0: colour 0 (cell 4) is straight down. Cell 0 is boxed in by the wall (cell 1)
    # and colour 0, an obstacle on the way to the others: no path, so those hints are zero.
    np.testing.assert_allclose(route[0], (np.array(CENTRE[4]) - CENTRE[0]) / 2.0, atol=1e-6)
    np.testing.assert_allclose(route[1:], 0.0, atol=1e-6)
    # On colour 0 (cell 4): its own hint points to its centre; colour 1 (cell 8) is down;
    # colour 3 (cell 15) goes right first (down is colour 1, up the dead end cell 0).
    teleport(env, *CENTRE[4])
    obs, *_ = env.step(ZERO)
    x, y = e.data.qpos[:2]
    route = obs[e.obs_slices["route_hints"]].reshape(4, 2)
    np.testing.assert_allclose(route[0], (np.array(CENTRE[4]) - (x, y)) / 2.0, atol=1e-5)
    np.testing.assert_allclose(route[1], (np.array(CENTRE[8]) - (x, y)) / 2.0, atol=1e-5)
    np.testing.assert_allclose(route[3], (np.array(CENTRE[5]) - (x, y)) / 2.0, atol=1e-5)


def test_route_hints_follow_the_relative_frame_and_default_off():
    assert make()[0].observation_space.shape == (41,)
    assert "route_hints" not in make()[0].unwrapped.obs_slices
    opts = {"layout": {**LAYOUT, "agent": 5}, "xy": CENTRE[5], "yaw": np.pi / 2}
    oh = make(route_hints=True, relative_frame="heading", options=opts)[1][41:49].reshape(4, 2)
    ow = make(route_hints=True, options=opts)[1][41:49].reshape(4, 2)
    assert np.abs(ow).max() > 0.5
    np.testing.assert_allclose(oh, np.stack([ow[:, 1], -ow[:, 0]], 1), atol=1e-4)
    routes = gym.make("AntPinpadRoutes-v0").unwrapped
    assert (routes.route_hints, routes.relative_frame) == (True, "heading")


def test_route_hints_match_the_experts_planner():
    """The mean expert's aim (before its border corrections) is the hint of its target colour."""
    env = gym.make("AntPinpadRoutes-v0", task="pretraining", relative_frame="world")
    e = env.unwrapped
    expert = AntPinpadExpert(seed=0, stochastic=False)
    obs, _ = env.reset(seed=3)
    expert.reset()
    for _ in range(120):
        expert.direction(e)  # updates the plan (its aim) for the current cell and progress
        hint = obs[e.obs_slices["route_hints"]].reshape(4, 2)[e.task[e.progress]]
        np.testing.assert_allclose(hint, (expert._aim - e.data.qpos[:2]) / 2.0, atol=1e-5)
        obs, _, term, trunc, _ = env.step(expert.act(env))
        if term or trunc:
            break


def test_colour_underfoot_is_the_one_hot_of_the_cell_the_torso_is_in():
    env, obs, _ = make(task=(3, 2, 1, 0), colour_underfoot=True, terminate_on_wrong_colour=False)
    e = env.unwrapped
    assert env.observation_space.shape == (45,) and e.obs_slices["colour_underfoot"] == slice(
        41, 45
    )
    np.testing.assert_array_equal(obs[41:45], 0)  # the start cell has no colour
    for colour, cell in enumerate(LAYOUT["colours"]):
        teleport(env, *CENTRE[cell])
        obs, *_ = env.step(ZERO)
        assert e.cell == cell
        np.testing.assert_array_equal(obs[41:45], np.eye(4)[colour])
    teleport(env, *CENTRE[5])
    obs, *_ = env.step(ZERO)
    np.testing.assert_array_equal(obs[41:45], 0)
    v1 = gym.make("AntPinpadRoutes-v1").unwrapped
    assert v1.observation_space.shape == (53,)
    assert (v1.obs_slices["route_hints"], v1.obs_slices["colour_underfoot"]) == (
        slice(41, 49),
        slice(49, 53),
    )
    assert (v1.route_hints, v1.relative_frame, v1.colour_underfoot) == (True, "heading", True)


def test_colour_underfoot_marks_every_visit_of_an_expert_episode():
    """Along an episode, the feature turns on exactly in the cells of the colours the ant
    visits, and a visit (``info["visited"]``) is the step it switches on."""
    env = gym.make("AntPinpadRoutes-v1", task="pretraining")
    e = env.unwrapped
    expert = AntPinpadExpert(seed=0, stochastic=False)
    obs, _ = env.reset(seed=1)
    expert.reset()
    before, visits = obs[49:53].copy(), 0
    done = False
    while not done:
        obs, _, term, trunc, info = env.step(expert.act(env))
        done = term or trunc
        under = obs[49:53]
        on = np.flatnonzero(under)
        assert len(on) <= 1 and (e.cell in e.colours) == (len(on) == 1)
        if info["visited"] >= 0:
            visits += 1
            assert not before[info["visited"]] and under[info["visited"]] == 1
        before = under.copy()
    assert info["success"] and visits == 3


# --- episode ends ------------------------------------------------------------------------------
def test_entering_the_wall_cell_terminates():
    env, _, _ = make()
    teleport(env, *CENTRE[1])
    _, r, term, trunc, info = env.step(ZERO)
    assert (r, term, trunc, info["termination"], info["success"]) == (
        0.0,
        True,
        False,
        "wall",
        False,
    )


def test_torso_height_outside_range_terminates():
    env, _, _ = make()
    teleport(env, *CENTRE[0], z=1.6)
    _, r, term, _, info = env.step(ZERO)
    assert term and r == 0.0 and info["termination"] == "unhealthy"
    # The floor pushes a torso below 0.2 back up within a step, so test the lower bound with a
    # raised range.
    env, _, _ = make(healthy_z_range=(0.7, 1.0))
    teleport(env, *CENTRE[0], z=0.35)
    _, _, term, _, info = env.step(ZERO)
    assert term and info["termination"] == "unhealthy"


def test_wrong_colour_terminates_and_right_colours_succeed():
    env, _, _ = make(task=(0, 1))
    teleport(env, *CENTRE[8])  # colour 1 before colour 0
    _, r, term, _, info = env.step(ZERO)
    assert (r, term, info["termination"]) == (0.0, True, "wrong_colour")

    env, _, _ = make(task=(0, 1))
    teleport(env, *CENTRE[4])
    _, r, term, _, info = env.step(ZERO)
    assert (r, term, info["progress"], info["target"]) == (0.0, False, 1, 1)
    teleport(env, *CENTRE[8])
    _, r, term, trunc, info = env.step(ZERO)
    assert (r, term, trunc, info["termination"]) == (1.0, True, False, "success")
    assert info["success"] and info["is_success"] and info["target"] == -1
    with pytest.raises(RuntimeError, match="reset"):
        env.step(ZERO)


def test_free_play_reports_wrong_colours_without_ending():
    """terminate_on_wrong_colour=False (free play): a wrong colour is only reported."""
    env, _, info = make(task=(0, 1), terminate_on_wrong_colour=False)
    assert info["visited"] == -1
    teleport(env, *CENTRE[8])  # colour 1 before colour 0
    _, r, term, _, info = env.step(ZERO)
    assert (r, term, info["visited"], info["progress"]) == (0.0, False, 1, 0)
    _, _, _, _, info = env.step(ZERO)  # staying on the cell is not a new visit
    assert info["visited"] == -1
    teleport(env, *CENTRE[4])
    _, _, term, _, info = env.step(ZERO)
    assert (term, info["visited"], info["progress"]) == (False, 0, 1)


def test_leaving_the_grid_terminates():
    env, _, _ = make()
    teleport(env, -4.5, 3.0)
    _, r, term, _, info = env.step(ZERO)
    assert (r, term, info["termination"], info["cell"]) == (0.0, True, "left_grid", -1)


def test_horizon_truncates():
    env, _, _ = make(max_steps=3)
    for _ in range(3):
        _, r, term, trunc, info = env.step(ZERO)  # the ant stands still in its start cell
    assert trunc and not term and r == 0.0 and info["termination"] == ""
    assert gym.make("AntPinpad-v0").unwrapped.max_steps == 500


def test_visit_counts_only_when_entering_from_another_cell():
    env, _, _ = make(task=(0, 0))
    teleport(env, *CENTRE[4])
    _, _, term, _, info = env.step(ZERO)
    assert info["progress"] == 1 and not term
    for dx in (0.5, -0.5, 0.0):  # moving around inside the colour's cell: no new visit
        teleport(env, CENTRE[4][0] + dx, CENTRE[4][1])
        _, _, term, _, info = env.step(ZERO)
        assert info["progress"] == 1 and not term
    teleport(env, *CENTRE[5])  # leave to a free cell...
    _, _, term, _, info = env.step(ZERO)
    assert info["progress"] == 1 and not term
    teleport(env, *CENTRE[4])  # ...and come back: second visit
    _, r, term, _, info = env.step(ZERO)
    assert term and r == 1.0 and info["success"]


# --- resets -------------------------------------------------------------------------------------
def test_layouts_are_valid_solvable_and_start_inside_the_start_cell():
    env = gym.make("AntPinpad-v0", task="pretraining")
    e = env.unwrapped
    starts = set()
    for seed in range(150):
        _, info = env.reset(seed=seed)
        cells = [*e.walls, *e.colours, e.start_cell]
        assert len(set(cells)) == 6 and info["cell"] == e.start_cell
        assert not e._is_wall[info["cell"]] and e._colour_at[info["cell"]] < 0
        assert grid_core.is_solvable_single(e.walls, e.colours, e.start_cell, e.task, 4)
        assert e.task in ANT_PRETRAINING_TASKS
        offset = np.abs(e.data.qpos[:2] - e._centres[e.start_cell])
        assert (offset <= (0.5 - e.start_margin) * e.cell_size + 1e-9).all()
        assert np.all(np.abs(e.data.qpos[7:] - e.init_qpos[7:]) <= 0.1)
        assert np.all(np.abs(e.data.qvel) <= 0.1)
        starts.add(round(e.yaw(), 3))
    assert len(starts) > 100  # random yaw


def test_reset_does_not_rebuild_the_model_but_recolours_it():
    env = gym.make("AntPinpad-v0", task="pretraining")
    e = env.unwrapped
    env.reset(seed=0)
    model, rgba, wall = e.model, e.model.geom_rgba.copy(), e.model.geom_pos[e._wall_id].copy()
    env.reset(seed=1)
    assert e.model is model
    assert not np.array_equal(e.model.geom_rgba, rgba) or not np.array_equal(
        e.model.geom_pos[e._wall_id], wall
    )
    np.testing.assert_allclose(e.model.geom_pos[e._wall_id][:2], e._centres[e.walls[0]])


def test_unfiltered_layouts_can_be_unsolvable():
    env = AntPinpadEnv(task="post", filter_unsolvable=False)
    bad = 0
    for seed in range(200):
        env.reset(seed=seed)
        bad += not grid_core.is_solvable_single(env.walls, env.colours, env.start_cell, env.task, 4)
    assert 0 < bad < 60


def test_determinism_under_seed():
    def rollout():
        env = gym.make("AntPinpad-v0", task="pretraining")
        obs, _ = env.reset(seed=7)
        rng = np.random.default_rng(0)
        out = [obs]
        for _ in range(40):
            obs, r, term, trunc, _ = env.step(rng.uniform(-1, 1, 8).astype(np.float32))
            out.append(obs)
            if term or trunc:
                break
        return np.stack(out)

    assert np.array_equal(rollout(), rollout())


def test_observation_never_contains_the_task():
    rng = np.random.default_rng(1)
    actions = rng.uniform(-0.5, 0.5, (20, 8)).astype(np.float32)
    a, oa, _ = make(task=(0, 1, 2, 3), seed=3)
    b, ob, _ = make(task=(3, 2, 1, 0), seed=3)
    assert np.array_equal(oa, ob)
    for act in actions:
        oa, *_ = a.step(act)
        ob, *_ = b.step(act)
        assert np.array_equal(oa, ob)
    # and the task set of the env (reset option vs constructor) does not matter either
    c, oc, _ = make(task="pretraining", seed=3, options={"task": (0, 1, 2, 3)})
    d, od, _ = make(task="post", seed=3)
    assert np.array_equal(oc, od)


def test_bad_tasks_and_layouts_raise():
    with pytest.raises(ValueError, match="outside 0..3"):
        gym.make("AntPinpad-v0", task=(0, 4))
    with pytest.raises(ValueError, match="Unknown task"):
        gym.make("AntPinpad-v0", task="nonsense")
    env = gym.make("AntPinpad-v0")
    with pytest.raises(ValueError, match="outside"):
        env.reset(options={"task": "0-9"})
    with pytest.raises(ValueError, match="overlap"):
        env.reset(options={"layout": {"walls": [0], "colours": [0, 1, 2, 3], "agent": 5}})
    with pytest.raises(ValueError, match="not inside the start cell"):
        env.reset(options={"layout": LAYOUT, "xy": CENTRE[5]})
    with pytest.raises(ValueError, match="8 joint torques"):
        env.reset(seed=0)
        env.step(np.zeros(3))


def test_pickle_roundtrip_and_spec():
    env = gym.make("AntPinpad-v0", task="pretraining", cell_size=3.0)
    clone = pickle.loads(pickle.dumps(env))
    oa, _ = env.reset(seed=5)
    ob, _ = clone.reset(seed=5)
    assert np.array_equal(oa, ob) and clone.unwrapped.cell_size == 3.0
    spec = gym.envs.registration.EnvSpec.from_json(env.spec.to_json())
    assert gym.make(spec).unwrapped.cell_size == 3.0


def test_rgb_render_shows_the_cells_and_the_wall():
    """Runs on the backend conftest.py sets (MUJOCO_GL=egl unless the environment says
    otherwise); a render that fails is a failure, not a skip."""
    env = gym.make("AntPinpad-v0", render_mode="rgb_array", width=160, height=160)
    layout = {"walls": [5], "colours": [0, 3, 12, 6], "agent": 15}
    env.reset(seed=0, options={"layout": layout})
    img = env.render()
    assert img.shape == (160, 160, 3) and img.dtype == np.uint8
    view = 2 * 2.1 * 8.0 * np.tan(np.deg2rad(22.5))  # metres across the image (fovy 45)

    def pixel(cell):
        x, y = CENTRE[cell]
        return img[int(80 - y / view * 160), int(80 + x / view * 160)].astype(int)

    assert pixel(5).max() < 90  # the wall is dark
    red = pixel(0)
    assert red[0] > 100 and red[0] > 2 * red[1] and red[0] > 2 * red[2]  # colour 0 is red
    green = pixel(6)
    assert green[1] > green[0] and green[1] > green[2]  # colour 3 is green
    env.close()


# --- shaped variant -----------------------------------------------------------------------------
def test_shaped_env_hints_and_velocity_reward():
    env, obs, _ = make("AntPinpadShaped-v0", task=(1,))
    e = env.unwrapped
    assert isinstance(e, AntPinpadShapedEnv) and obs.shape == (41 + 64,)
    sparse, sobs, _ = make("AntPinpad-v0", task=(1,))
    assert np.array_equal(obs[:41], sobs)  # same sparse part
    hints = obs[41:].reshape(16, 4)
    # target colour 1 at cell 8 (row 2, col 0); wall at 1; colours 0 (cell 4), 2 (12), 3 (15)
    # are obstacles. From the start (cell 0) the only way is right (cell 1 is the wall -> no):
    # cell 0's neighbours are 1 (wall) and 4 (colour 0): cut off -> zeros.
    assert hints[0].sum() == 0
    assert hints[1].sum() == 0  # the wall cell never gets a hint
    assert hints[9].argmax() == 3 and hints[9].sum() == 1  # left into the target from (2, 1)
    assert hints[5].argmax() == 2  # down from (1, 1) towards (2, 1)
    assert hints[8].sum() == 1  # the target cell points to a neighbour (to re-enter it)
    # velocity reward = dot(planar velocity, hint direction of the cell the ant was in)
    teleport(env, *CENTRE[5])
    e.cell = 5
    e.data.qvel[:2] = (0.0, -2.0)  # moving down, the hinted direction
    before = e.data.qpos[:2].copy()
    _, r, *_ = env.step(ZERO)
    v = (e.data.qpos[:2] - before) / e.dt
    assert r == pytest.approx(-v[1]) and r > 0


# --- expert -------------------------------------------------------------------------------------
def test_mean_expert_solves_a_fixed_episode_and_is_deterministic():
    env = AntPinpadEnv(task=(0, 1, 2))
    runs = [run_episode(env, AntPinpadExpert(seed=s), seed=11) for s in (0, 1)]
    assert runs[0]["success"] and runs[0]["length"] == runs[1]["length"] < 500


def test_collect_ant_demonstrations():
    data = collect_ant_demonstrations(2, task="pretraining", seed=3, stochastic=True)
    assert data.n_episodes == 2 and not data.packed and data.obs_dim == 41
    assert data.observations.dtype == np.float32 and data.actions.dtype == np.float32
    assert data.actions.shape == (data.n_steps, 8) and np.abs(data.actions).max() <= 1.0
    assert set(np.unique(data.targets)) <= {0, 1, 2, 3} and np.array_equal(
        data.targets, data.subgoals
    )
    meta = data.metadata
    assert meta["env_id"] == "AntPinpad-v0" and meta["expert_params"]["stochastic"]
    assert "dropped" in meta and "gait" in meta["expert_params"]
    ep = data.episode(0)
    assert tuple(ep["task"]) in ANT_PRETRAINING_TASKS
    assert ep["targets"][0] == ep["task"][0] and ep["targets"][-1] == ep["task"][-1]
    assert ep["obs"].shape == (len(ep["actions"]) + 1, 41)
    assert AntPinpadEnv().observation_space.contains(ep["obs"][0])


def test_recorded_episode_replays_in_the_env():
    env = AntPinpadEnv(task="pretraining")
    ep = run_episode(env, AntPinpadExpert(seed=0, stochastic=True), seed=21, record=True)
    obs, _ = env.reset(seed=21)
    assert np.array_equal(obs, ep["obs"][0])
    for t, a in enumerate(ep["actions"]):
        obs, *_ = env.step(a)
        assert np.array_equal(obs, ep["obs"][t + 1])


# --- shipped parameters and their search ---------------------------------------------------------
def test_shipped_config_is_what_the_expert_uses(tmp_path):
    cfg = json.loads(ANT_EXPERT_CONFIG.read_text())
    assert cfg["command"].startswith("python -m agents.tune_ant_expert --out ")
    assert {"walk_seed", "tune_seed"} <= set(cfg["config"]) and "walk" in cfg["search"]
    gait, planner = load_ant_expert_params()
    assert asdict(gait) == cfg["gait"] and asdict(planner) == cfg["planner"]
    assert (gait, planner) == (GaitParams(), PlannerParams())  # dataclass defaults in sync
    expert = AntPinpadExpert(stochastic=True)
    assert expert.gait == gait and expert.planner == planner
    assert expert.params()["gait"] == cfg["gait"]
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps({"gait": {**cfg["gait"], "extra": 1.0}, "planner": cfg["planner"]}))
    with pytest.raises(ValueError, match="GaitParams"):
        load_ant_expert_params(bad)


def test_search_walking_gait_is_deterministic_under_seed():
    kw = dict(n_candidates=2, n_directions=1, seconds_per_walk=0.5, init=GaitParams())
    runs = []
    for seed in (0, 0, 1):
        history = []
        best = search_walking_gait(seed=seed, history=history, **kw)
        runs.append((best, history))
    assert runs[0] == runs[1] and len(runs[0][1]) == 3
    assert runs[0][1][0]["gait"] == asdict(GaitParams())  # ``init`` is candidate 0
    assert runs[2][1][1:] != runs[0][1][1:]
    with pytest.raises(ValueError, match="Unknown gait parameter"):
        search_walking_gait(ranges={"speed": (0.0, 1.0)}, **kw)


def test_render_without_a_display_or_backend_says_what_to_set(monkeypatch):
    """Mutant: rendering straight into MuJoCo's GLFW backend, which aborts the process."""
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("MUJOCO_GL", "")
    monkeypatch.setattr("sys.platform", "linux")
    env = gym.make("AntPinpad-v0", render_mode="rgb_array", width=64, height=64)
    env.reset(seed=0)
    with pytest.raises(RuntimeError, match="MUJOCO_GL=egl"):
        env.render()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_torques_are_refused(bad):
    env = gym.make("AntPinpad-v0")
    env.reset(seed=0)
    action = np.zeros(8)
    action[3] = bad
    with pytest.raises(ValueError, match="non-finite torques"):
        env.step(action)


def test_out_of_range_torques_are_clipped_as_documented():
    a, b = gym.make("AntPinpad-v0"), gym.make("AntPinpad-v0")
    a.reset(seed=0)
    b.reset(seed=0)
    oa, *_ = a.step(np.full(8, 5.0))
    ob, *_ = b.step(np.ones(8))
    np.testing.assert_array_equal(oa, ob)
