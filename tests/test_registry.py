"""Property tests over every environment id the package registers (dm_control/MiniGrid style).

The list comes from the Gymnasium registry, not from a hand-kept list, so a new id is covered the
moment it is registered.
"""

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import internal_rl_gym

ENV_IDS = sorted(
    env_id
    for env_id, spec in gym.registry.items()
    if isinstance(spec.entry_point, str) and spec.entry_point.startswith("internal_rl_gym")
)
# Infinite Box bounds are expected for residual-stream observations; nothing else may warn.
ALLOWED_WARNINGS = ("infinite", "inf", "Box bound precision lowered")


@pytest.fixture
def make(tiny_for_spec):
    """``gym.make`` for any of our ids; InternalControl ids get tiny local checkpoints for their
    task env (the embedded defaults are tested on their own in test_default_checkpoints.py)."""

    def _make(env_id, **kw):
        spec = gym.spec(env_id)
        if spec.entry_point.endswith(":InternalControlEnv"):
            kw = {**tiny_for_spec(spec), **kw}
        return gym.make(env_id, **kw)

    return _make


def test_registry_is_not_empty():
    assert "GridPinpad-v0" in ENV_IDS


def test_register_envs_is_idempotent():
    before = dict(gym.registry)
    internal_rl_gym.register_envs()
    assert dict(gym.registry).keys() == before.keys()


def _unexpected(caught):
    return [
        str(w.message) for w in caught if not any(a in str(w.message) for a in ALLOWED_WARNINGS)
    ]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_env_checker(env_id, make):
    env = make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env.unwrapped, skip_render_check=True)
    assert _unexpected(caught) == []
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_env_checker(env_id, make):
    env = make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sb3_check_env(env, warn=True)
    assert _unexpected(caught) == []
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_two_envs_with_one_seed_agree_for_50_steps(env_id, make):
    a, b = make(env_id), make(env_id)
    oa, _ = a.reset(seed=42)
    ob, _ = b.reset(seed=42)
    a.action_space.seed(0)
    for _ in range(50):
        act = a.action_space.sample()
        ra, rb = a.step(act), b.step(act)
        assert np.array_equal(ra[0], rb[0]) and ra[1:4] == rb[1:4]
        if ra[2] or ra[3]:
            oa, _ = a.reset()
            ob, _ = b.reset()
            assert np.array_equal(oa, ob)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_observations_do_not_share_memory(env_id, make):
    env = make(env_id)
    o1, _ = env.reset(seed=0)
    o2, *_ = env.step(env.action_space.sample())
    assert not np.shares_memory(o1, o2)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_pickle_roundtrip(env_id, make):
    env = make(env_id)
    env.reset(seed=0)
    clone = pickle.loads(pickle.dumps(env))
    oa, _ = env.reset(seed=5)
    ob, _ = clone.reset(seed=5)
    assert np.array_equal(oa, ob)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_spec_is_json_serialisable_and_remakes_the_env(env_id, make):
    env = make(env_id)
    spec = gym.envs.registration.EnvSpec.from_json(env.spec.to_json())
    again = gym.make(spec)  # the spec carries the merged kwargs
    assert again.observation_space == env.observation_space


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_info_reports_success(env_id, make):
    env = make(env_id)
    _, info = env.reset(seed=0)
    assert isinstance(info["success"], bool)
    *_, info = env.step(env.action_space.sample())
    assert isinstance(info["success"], bool)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_rgb_rendering(env_id, make):
    env = make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    img = env.render()
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[-1] == 3


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_a_nan_action_is_a_clear_value_error(env_id, make):
    """Every id refuses NaN with a ValueError that names the action, never a deep numeric
    error or a silently executed step."""
    env = make(env_id)
    env.reset(seed=0)
    space = env.action_space
    nan = np.full(space.shape, np.nan) if isinstance(space, gym.spaces.Box) else np.float64("nan")
    with pytest.raises(ValueError, match="(?i)nan|non-finite|subgoal index|integer"):
        env.step(nan)


def test_module_colon_id_syntax():
    env = gym.make("internal_rl_gym:GridPinpad-v0")
    assert env.unwrapped.spec.id == "GridPinpad-v0"


def test_without_mujoco_the_grid_works_and_the_ant_says_how_to_install_it():
    """MuJoCo is the optional extra [ant]: run in a fresh interpreter where it cannot import."""
    import subprocess
    import sys

    code = """
import sys
sys.modules["mujoco"] = None  # as if MuJoCo were not installed
import gymnasium as gym
import internal_rl_gym
gym.make("GridPinpad-v0").reset(seed=0)
import internal_rl_gym.internal_control
try:
    gym.make("AntPinpad-v0")
except ImportError as err:
    print("ImportError:", err)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "internal-rl-gym[ant]" in out.stdout and "GridPinpad" in out.stdout


@pytest.mark.parametrize(
    "retired, current",
    [
        ("InternalControl-Ant-v0", "InternalControl-Ant-v3"),
        ("InternalControl-Ant-v1", "InternalControl-Ant-v3"),
        ("InternalControl-Ant-v2", "InternalControl-Ant-v3"),
        ("InternalControl-Ant-Oracle-v0", "InternalControl-Ant-Oracle-v2"),
        ("InternalControl-Ant-Oracle-v1", "InternalControl-Ant-Oracle-v2"),
    ],
)
def test_the_retired_ant_ids_name_their_successor(retired, current):
    """Ant ids that steered other weights (v0: ant-hawk; v1 and Oracle-v0: ant-transformer's
    step-55,000 weights; v2 and Oracle-v1: its step-85,000 weights) are no longer registered; Gymnasium's own error points to the current
    one. Mutant: a retired id registered again."""
    with pytest.raises(gym.error.DeprecatedEnv, match=current):
        gym.make(retired)
