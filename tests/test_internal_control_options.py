"""InternalControl's non-default options and the batched VecEnv's ``set_attr``/``env_method``:
each test fails on a mutant that ignores the option (named in its docstring)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import internal_rl_gym  # noqa: F401
from internal_rl_gym.envs.grid_pinpad import GridPinpadEnv
from internal_rl_gym.internal_control import InternalControlVecEnv, InternalControlWrapper
from tests.conftest import build_tiny_grid_models as tiny_models


def wrapper(task: str = "0-1-2-3", **options) -> InternalControlWrapper:
    base, meta = tiny_models()
    return InternalControlWrapper(gym.make("GridPinpad-v0", task=task), base, meta, **options)


def episode_steps(env: gym.Env, seed: int, actions=None) -> list[tuple[dict, bool]]:
    """(info, episode ended) of every abstract step of one seeded episode."""
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out, done = [], False
    while not done:
        a = rng.uniform(-1, 1, 4).astype(np.float32) if actions is None else actions[len(out)]
        *_, term, trunc, info = env.step(a)
        done = term or trunc
        out.append((info, done))
    return out


# ------------------------------------------------------------------------------ beta_threshold


@pytest.mark.parametrize("threshold", [0.45, 0.2])
def test_an_abstract_step_ends_at_the_first_beta_over_the_threshold(threshold):
    """β of the tiny model lies in about [0.42, 0.55]. Each abstract step ends exactly at the
    first β ≥ beta_threshold (or the cap, or the episode's end). Mutant: the option ignored
    (0.5 hard-coded): a β in [threshold, 0.5) would not end the step."""
    cap = 10
    env = wrapper(beta_threshold=threshold, max_primitive_steps=cap)
    ended_below_half = 0
    for seed in range(4):
        for info, episode_ended in episode_steps(env, seed):
            beta, n = info["beta"], info["primitive_steps"]
            assert len(beta) == n
            assert all(b < threshold for b in beta[:-1])
            assert beta[-1] >= threshold or n == cap or episode_ended
            ended_below_half += beta[-1] >= threshold and beta[-1] < 0.5 and not episode_ended
    assert ended_below_half > 0, "no β fell in [threshold, 0.5): the test checked nothing"


def test_beta_threshold_one_runs_every_abstract_step_to_the_cap():
    """β < 1 always, so with beta_threshold=1 only the cap or the episode's end stops a step.
    Mutant: the option ignored (steps end at β ≥ 0.5 after fewer primitive steps)."""
    env = wrapper(beta_threshold=1.0, max_primitive_steps=6)
    passed_half = 0
    for seed in range(3):
        for info, episode_ended in episode_steps(env, seed):
            assert info["primitive_steps"] == 6 or episode_ended
            passed_half += any(b >= 0.5 for b in info["beta"][:-1])
    assert passed_half > 0, "β never reached 0.5 inside a step: the test checked nothing"


# -------------------------------------------------------------------------------- action_scale


def test_action_scale_multiplies_the_action_into_the_code():
    """z = action_scale · action: env(scale=1.5, a) holds z = 1.5 a and behaves exactly like
    env(scale=3, a / 2). Mutant: the option ignored (z = 3 a)."""
    rng = np.random.default_rng(0)
    actions = [rng.uniform(-1, 1, 4).astype(np.float32) for _ in range(60)]
    scaled = wrapper(action_scale=1.5, primitive_sampling="greedy", max_primitive_steps=5)
    default = wrapper(primitive_sampling="greedy", max_primitive_steps=5)
    scaled.reset(seed=2)
    scaled.step(actions[0])
    np.testing.assert_allclose(scaled._core.z[0].numpy(), 1.5 * actions[0], rtol=1e-6)
    a = episode_steps(scaled, 2, actions)
    b = episode_steps(default, 2, [x / 2 for x in actions])
    assert [i["primitive_actions"] for i, _ in a] == [i["primitive_actions"] for i, _ in b]
    np.testing.assert_allclose(
        np.concatenate([i["beta"] for i, _ in a]), np.concatenate([i["beta"] for i, _ in b])
    )
    c = episode_steps(default, 2, actions)  # the same actions at scale 3 steer differently
    assert [i["primitive_actions"] for i, _ in a] != [i["primitive_actions"] for i, _ in c]


def test_action_scale_leaves_the_oracles_subgoal_index_alone(tiny_oracle):
    """The oracle's action is a subgoal index, never scaled. Mutant: the scale applied to it
    (action 1 at scale 2 would pick subgoal 2)."""
    env = gym.make("InternalControl-Pinpad-Oracle-v0", **tiny_oracle, action_scale=2.0)
    env.reset(seed=0)
    env.step(1)
    assert env.unwrapped._core.z[0].tolist() == [1.0]


# -------------------------------------------------------------------------- primitive_sampling


def _recorded_run(env: InternalControlWrapper, rng_seed: int) -> tuple[list, list]:
    """One episode at a fixed layout, with the row's sampling generator replaced after reset:
    (primitive actions, argmax of the action logits at each primitive step)."""
    core = env._core
    logits: list[torch.Tensor] = []
    heads = core.base.heads

    def recording_heads(*args, **kwargs):
        out = heads(*args, **kwargs)
        logits.append(out.action_logits[0].clone())
        return out

    core.base.heads = recording_heads
    try:
        env.reset(seed=5)
        core.rngs[0] = np.random.default_rng(rng_seed)
        taken, done = [], False
        while not done:
            *_, term, trunc, info = env.step(np.full(4, 0.5, np.float32))
            taken += info["primitive_actions"]
            done = term or trunc
    finally:
        del core.base.heads
    return taken, [int(x.argmax()) for x in logits]


def test_greedy_sampling_takes_the_argmax_and_ignores_the_generator():
    """primitive_sampling="greedy": every primitive action is the argmax of the base model's
    logits, whatever the row's generator. Mutant: the option ignored (sampled actions)."""
    env = wrapper(primitive_sampling="greedy", max_primitive_steps=5)
    taken, argmax = _recorded_run(env, rng_seed=1)
    assert taken == argmax and len(taken) > 10
    assert _recorded_run(env, rng_seed=2)[0] == taken


def test_sample_draws_from_the_head_with_the_rows_generator():
    """primitive_sampling="sample" (the default): another generator, other primitive actions,
    and not always the argmax. Mutant: greedy always (sampling never used)."""
    env = wrapper(max_primitive_steps=5)
    taken, argmax = _recorded_run(env, rng_seed=1)
    assert taken != argmax
    assert _recorded_run(env, rng_seed=2)[0] != taken


# ----------------------------------------------------------------------- VecEnv attr/methods


class CountingPinpad(GridPinpadEnv):
    """GridPinpad with a method of its own (not on any wrapper)."""

    def scaled_steps(self, factor: int, offset: int = 0) -> int:
        return self.steps * factor + offset


@pytest.fixture
def vec() -> InternalControlVecEnv:
    base, meta = tiny_models()
    envs = [
        gym.wrappers.OrderEnforcing(CountingPinpad(task="0-1-2-3-4-5-6-7", render_mode="ansi"))
        for _ in range(3)
    ]
    vec = InternalControlVecEnv(envs, base, meta, max_primitive_steps=4)
    vec.seed(0)
    vec.reset()
    return vec


def test_vec_set_attr_reaches_the_stepping_env_of_the_chosen_rows(vec):
    """set_attr changes the task env that the row steps, in the given rows only. Mutants: a
    no-op; indices ignored; set on the outer wrapper (the task env would not see it)."""
    vec.set_attr("max_steps", 3, indices=[1])
    assert vec.get_attr("max_steps") == [100, 3, 100]
    primitive = np.zeros(3, dtype=int)
    for _ in range(10):
        _, _, dones, infos = vec.step(np.zeros((3, 4), np.float32))
        primitive += [info["primitive_steps"] for info in infos]
        if dones[1]:
            break
    assert dones[1] and infos[1]["TimeLimit.truncated"]
    assert primitive[1] == 3
    for r in (0, 2):  # the other rows keep 100 steps (an ending here is a terminal colour)
        assert not (dones[r] and infos[r]["TimeLimit.truncated"])


def test_vec_env_method_calls_the_task_envs_own_method_with_its_arguments(vec):
    """env_method finds a method of the task env itself (as SB3's DummyVecEnv does, through
    its wrappers), passes positional and keyword arguments, and calls only the chosen rows.
    Mutants: looked up on the outer wrapper only (AttributeError); arguments dropped; indices
    ignored."""
    vec.step(np.zeros((3, 4), np.float32))
    steps = [env.unwrapped.steps for env in vec.core.envs]
    assert vec.env_method("scaled_steps", 10, offset=1, indices=[0, 2]) == [
        steps[0] * 10 + 1,
        steps[2] * 10 + 1,
    ]
    assert vec.env_method("scaled_steps", 2) == [s * 2 for s in steps]
    (text,) = vec.env_method("render", indices=[1])  # a method of the wrappers too
    assert isinstance(text, str) and text
