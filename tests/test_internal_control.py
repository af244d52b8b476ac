"""InternalControl: the env in which internal RL happens, and its batched VecEnv.

Each failure mode of earlier public attempts is a test here (design.md §5): a controller computed
but never injected, a base model whose context is dropped between abstract steps, a switching unit
reset every step, upper layers skipped, a batched env that drifts from the single env.
"""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv

import internal_rl_gym  # noqa: F401
from internal_rl_gym.internal_control import (
    InternalControlEnv,
    InternalControlVecEnv,
    InternalControlWrapper,
    make_internal_control_vec_env,
)
from tests.conftest import build_tiny_grid_models as tiny_models

D, LAYER = 16, 1


@pytest.fixture
def checkpoints(tiny_checkpoints):
    return tiny_checkpoints


def make_env(checkpoints, **kw) -> gym.Env:
    return gym.make("InternalControl-v0", **checkpoints, **kw)


def test_spaces(checkpoints):
    env = make_env(checkpoints)
    assert env.observation_space.shape == (D,)
    assert env.action_space.shape == (4,)
    assert env.action_space.low.min() == -1.0 and env.action_space.high.max() == 1.0
    obs, info = env.reset(seed=0)
    assert obs.shape == (D,) and obs.dtype == np.float32 and "success" in info
    env2 = make_env(checkpoints, include_step_count=True)
    assert env2.observation_space.shape == (D + 1,)


def test_both_env_checkers_pass(checkpoints):
    env = make_env(checkpoints)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env, warn=True)


def test_info_contract(checkpoints):
    env = make_env(checkpoints, max_primitive_steps=7)
    env.reset(seed=1)
    _, r, term, trunc, info = env.step(env.action_space.sample())
    n = info["primitive_steps"]
    assert 1 <= n <= 7 and len(info["primitive_actions"]) == n
    assert isinstance(info["success"], bool) and isinstance(r, float)
    assert type(term) is bool and type(trunc) is bool  # mutant: terminated None at the gate
    # one β per primitive step, the one that ended the episode included
    assert len(info["beta"]) == n
    assert all(0.0 <= b <= 1.0 for b in info["beta"])


def _rollout(env, actions, seed):
    env.reset(seed=seed)
    trace = []
    for a in actions:
        _, r, term, trunc, info = env.step(a)
        trace.append(info["primitive_actions"])
        if term or trunc:
            break
    return trace


def test_controller_is_injected(checkpoints):
    """Different controller codes, same seed (same sampling noise): different primitive actions."""
    env = make_env(checkpoints, max_primitive_steps=5)
    a = _rollout(env, [np.full(4, 1.0, np.float32)] * 4, seed=3)
    b = _rollout(env, [np.full(4, -1.0, np.float32)] * 4, seed=3)
    c = _rollout(env, [np.full(4, 1.0, np.float32)] * 4, seed=3)
    assert a == c
    assert a != b


class RecordObs(gym.Wrapper):
    def reset(self, **kw):
        obs, info = self.env.reset(**kw)
        self.obs = [obs]
        return obs, info

    def step(self, action):
        out = self.env.step(action)
        self.obs.append(out[0])
        return out


@pytest.mark.parametrize("gain", [1.0, 0.05])
def test_matches_the_training_time_forward_pass(gain):
    """The strongest check of context, injection and switching state: replay a whole episode
    through the base model's full-sequence forward with the same codes, and recover exactly the
    primitive actions (greedy) and the β trace the env produced step by step. With a controller
    gain, the replay writes e + gain * U(z) e."""
    base, meta = tiny_models(switch_bias=0.0)
    task_env = RecordObs(gym.make("GridPinpad-v0", task="post"))
    env = InternalControlWrapper(
        task_env,
        base,
        meta,
        primitive_sampling="greedy",
        max_primitive_steps=6,
        controller_gain=gain,
    )
    for seed in range(50):  # find an episode long enough to span several abstract steps
        env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        z_per_step, actions, betas, n_abstract = [], [], [], 0
        for _ in range(30):
            a = rng.uniform(-1, 1, 4).astype(np.float32)
            _, _, term, trunc, info = env.step(a)
            n = info["primitive_steps"]
            z_per_step += [3.0 * a] * n
            actions += info["primitive_actions"]
            betas += info["beta"]
            n_abstract += 1
            if term or trunc:
                break
        if len(actions) >= 15 and n_abstract >= 4:
            break
    assert len(actions) >= 15 and n_abstract >= 4
    obs = torch.as_tensor(np.stack(task_env.obs[: len(actions)]))[None]
    z = torch.as_tensor(np.stack(z_per_step))[None]
    with torch.no_grad():
        e_l = base.run_layers(base.embed(obs), 0, LAYER)
        e_hat = e_l + gain * (meta.control(e_l, z) - e_l)
        logits = base.heads(base.run_layers(e_hat, LAYER, base.n_layers)).action_logits
        trace = meta.switching_trace(e_l, z)[0, 1:]
    assert logits[0].argmax(-1).tolist() == actions
    assert len(betas) == len(actions)
    np.testing.assert_allclose(trace.numpy(), betas[: len(trace)], atol=1e-5)


def test_controller_gain_scales_the_push(checkpoints):
    """Codes that steer differently at gain 1 (see above) steer alike once the gain shrinks
    their push towards nothing."""
    up, down = [np.full(4, 1.0, np.float32)] * 4, [np.full(4, -1.0, np.float32)] * 4
    env = make_env(checkpoints, max_primitive_steps=5)
    assert _rollout(env, up, seed=3) != _rollout(env, down, seed=3)
    weak = make_env(checkpoints, max_primitive_steps=5, controller_gain=1e-6)
    assert _rollout(weak, up, seed=3) == _rollout(weak, down, seed=3)


@pytest.mark.parametrize("gain", [0.0, -1.0, float("nan")])
def test_bad_controller_gain_raises(checkpoints, gain):
    with pytest.raises(ValueError, match="controller_gain"):
        make_env(checkpoints, controller_gain=gain)


def test_context_is_kept_across_abstract_steps(checkpoints):
    env = make_env(checkpoints, max_primitive_steps=3)
    env.reset(seed=0)
    core = env.unwrapped._core
    total = 0
    for _ in range(4):
        *_, term, trunc, info = env.step(env.action_space.sample())
        total += info["primitive_steps"]
        if term or trunc:
            break
    # observation 1 plus one per primitive step, all in the same context
    assert int(core.state.lengths[0]) == total + 1
    assert float(core.h.abs().sum()) > 0  # the switching unit's history carried over


def test_gate_fires_and_caps(checkpoints, tmp_path):
    base, meta = tiny_models(switch_bias=20.0)  # β ≈ 1 always: one primitive step per action
    env = InternalControlWrapper(gym.make("GridPinpad-v0"), base, meta)
    env.reset(seed=0)
    *_, info = env.step(env.action_space.sample())
    assert info["primitive_steps"] == 1 and info["beta"][0] > 0.99
    base, meta = tiny_models(switch_bias=-20.0)  # β ≈ 0: runs to the cap
    env = InternalControlWrapper(gym.make("GridPinpad-v0"), base, meta, max_primitive_steps=4)
    env.reset(seed=0)
    *_, term, trunc, info = env.step(env.action_space.sample())
    assert info["primitive_steps"] == 4 or term or trunc


@pytest.mark.parametrize(
    "action, match",
    [
        (np.zeros(3, np.float32), "shape"),
        (np.zeros((2, 4), np.float32), "shape"),
        (np.array([0, np.nan, 0, 0], np.float32), "NaN"),
        (np.array([0, np.inf, 0, 0], np.float32), "NaN or inf"),
    ],
)
def test_bad_actions_raise(checkpoints, action, match):
    env = make_env(checkpoints)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)


def test_step_before_reset_raises(checkpoints):
    env = InternalControlEnv(**checkpoints)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(4, np.float32))


def test_mismatched_observation_size_raises():
    base, meta = tiny_models()
    with pytest.raises(ValueError, match="trained on a different environment"):
        InternalControlWrapper(gym.make("GridPinpad-v0", size=5, task=(0,)), base, meta)


def test_batched_vec_env_matches_separate_envs(checkpoints):
    n, seed = 3, 11
    batched = make_internal_control_vec_env(n, seed=seed, monitor=False, **checkpoints)
    separate = DummyVecEnv([lambda: InternalControlEnv(**checkpoints) for _ in range(n)])
    separate.seed(seed)
    ob, os_ = batched.reset(), separate.reset()
    np.testing.assert_allclose(ob, os_, atol=1e-5)
    rng = np.random.default_rng(0)
    n_done = 0
    for _ in range(40):
        actions = rng.uniform(-1, 1, (n, 4)).astype(np.float32)
        ob, rb, db, ib = batched.step(actions)
        os_, rs, ds, is_ = separate.step(actions)
        np.testing.assert_allclose(ob, os_, atol=1e-4)
        assert np.array_equal(rb, rs) and np.array_equal(db, ds)
        for a, b in zip(ib, is_):
            assert a["primitive_actions"] == b["primitive_actions"]
            if "terminal_observation" in b:
                np.testing.assert_allclose(
                    a["terminal_observation"], b["terminal_observation"], atol=1e-4
                )
                assert a["TimeLimit.truncated"] == b["TimeLimit.truncated"]
        n_done += int(db.sum())
    assert n_done > 0  # auto-reset was exercised


def test_a_full_rank_controller_batches_like_separate_rows():
    """A full-rank metacontroller's U(z) is one (d, d) matrix per row, not the low-rank pair:
    as rows leave the lockstep batch (their gates fire at different primitive steps) it is
    subset with them, and each row runs as it would alone. Mutant: U treated as a pair when
    rows leave (core ``_step_rows`` 208)."""
    from internal_rl_gym.internal_control import InternalControlCore
    from tests.conftest import tiny_metacontroller

    base, _ = tiny_models()
    torch.manual_seed(0)
    meta = tiny_metacontroller(base, rank=0)
    with torch.no_grad():
        meta.hyper[-1].weight.mul_(30.0)
    meta.eval()

    def make_core(n):
        envs = [gym.make("GridPinpad-v0", task="0-1-2-3") for _ in range(n)]
        return InternalControlCore(envs, base, meta)

    batched, alone = make_core(3), [make_core(1) for _ in range(3)]
    batched.reset_rows([0, 1, 2], [4, 5, 6])
    for j, core in enumerate(alone):
        core.reset_rows([0], [4 + j])
    rng = np.random.default_rng(0)
    lengths = set()
    live = [0, 1, 2]
    for _ in range(4):
        actions = {i: rng.uniform(-1, 1, 4) for i in live}
        out = batched.step_rows(actions)
        for i in live:
            want = alone[i].step_rows({0: actions[i]})[0]
            assert out[i].info["primitive_actions"] == want.info["primitive_actions"]
            np.testing.assert_allclose(out[i].info["beta"], want.info["beta"], atol=1e-5)
            np.testing.assert_allclose(out[i].obs, want.obs, atol=1e-5)
        lengths.add(tuple(out[i].info["primitive_steps"] for i in live))
        live = [i for i in live if not (out[i].terminated or out[i].truncated)]
        if len(live) < 2:
            break
    assert any(len(set(n)) > 1 for n in lengths), "the rows always left together"


def test_pickle_and_sb3_vec_envs(checkpoints):
    env = InternalControlEnv(**checkpoints)
    clone = pickle.loads(pickle.dumps(env))
    np.testing.assert_array_equal(env.reset(seed=2)[0], clone.reset(seed=2)[0])
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    vec = make_vec_env("InternalControl-v0", n_envs=2, seed=0, env_kwargs=checkpoints)
    assert vec.reset().shape == (2, D)
    # Child processes do not import internal_rl_gym: the module:id form registers the ids there.
    sub = make_vec_env(
        "internal_rl_gym:InternalControl-v0",
        n_envs=2,
        seed=0,
        env_kwargs=checkpoints,
        vec_env_cls=SubprocVecEnv,
    )
    try:
        obs = sub.reset()
        obs2, *_ = sub.step(np.zeros((2, 4), np.float32))
        assert obs.shape == obs2.shape == (2, D)
    finally:
        sub.close()


def test_stock_ppo_runs_on_the_env_and_the_batched_vec_env(checkpoints):
    from stable_baselines3 import PPO

    PPO("MlpPolicy", make_env(checkpoints), n_steps=16, batch_size=16, n_epochs=1).learn(32)
    vec = make_internal_control_vec_env(2, seed=0, **checkpoints)
    PPO("MlpPolicy", vec, n_steps=8, batch_size=16, n_epochs=1).learn(32)


def test_vec_env_is_an_sb3_vec_env(checkpoints):
    vec = make_internal_control_vec_env(2, seed=0, monitor=False, **checkpoints)
    assert isinstance(vec, InternalControlVecEnv)
    assert vec.env_is_wrapped(gym.Wrapper) == [True, True]
    assert vec.get_attr("max_steps") == [100, 100]


def test_internal_control_loads_checkpoints_from_the_hub(fake_hub, tiny_checkpoints, tmp_path):
    """gym.make with Hub repo ids: the real download path against the loopback fake Hub."""
    fake_hub.add_repo("ic-test/tiny-base", tiny_checkpoints["base_model"])
    fake_hub.add_repo("ic-test/tiny-meta", tiny_checkpoints["metacontroller"])
    hub_kwargs = {"endpoint": fake_hub.url, "cache_dir": str(tmp_path / "cache")}
    env = gym.make(
        "InternalControl-v0",
        base_model="ic-test/tiny-base",
        metacontroller="ic-test/tiny-meta",
        hub_kwargs=hub_kwargs,
    )
    local = gym.make("InternalControl-v0", **tiny_checkpoints)
    np.testing.assert_array_equal(env.reset(seed=0)[0], local.reset(seed=0)[0])
    assert (tmp_path / "cache" / "models--ic-test--tiny-base" / "snapshots").is_dir()
    # the second construction is served from the cache, offline
    offline = gym.make(
        "InternalControl-v0",
        base_model="ic-test/tiny-base",
        metacontroller="ic-test/tiny-meta",
        hub_kwargs={**hub_kwargs, "local_files_only": True},
    )
    np.testing.assert_array_equal(offline.reset(seed=0)[0], local.reset(seed=0)[0])


def test_env_agnostic_continuous_control_on_the_ant(tiny_ant):
    """The same machinery drives a Hawk base model with torques on AntPinpad (what
    InternalControl-Ant-v3 registers with the embedded ant checkpoints, there on
    AntPinpadRoutes-v1)."""
    from internal_rl_gym.hub import load_base_model, load_metacontroller

    task_env = gym.make("AntPinpad-v0")
    base = load_base_model(tiny_ant["base_model"])
    meta = load_metacontroller(tiny_ant["metacontroller"], base_model=base)
    env = InternalControlWrapper(task_env, base, meta, max_primitive_steps=5)
    gym_check_env(env, skip_render_check=True)
    env.reset(seed=0)
    *_, info = env.step(np.zeros(4, np.float32))
    actions = np.stack(info["primitive_actions"])
    assert actions.shape[1] == 8 and np.all(np.abs(actions) <= 1.0)


def test_continuous_primitive_actions_are_the_mean_or_a_draw_around_it_clipped(tiny_ant):
    """Torques from a fake head (mean, log σ): greedy takes the mean, "sample" draws
    mean + σ·N(0, 1) with the row's generator; both clipped to the task env's bounds, in its
    dtype. Mutants (core ``_sample_primitive`` 54-58, 61): greedy ignored or always on, ``-`` or
    ``/`` for the noise's sign and scale, one shared draw (``standard_normal(None)``), the
    float64 draw not cast back (``astype(None)``)."""
    from types import SimpleNamespace

    from internal_rl_gym.hub import load_base_model, load_metacontroller

    base = load_base_model(tiny_ant["base_model"])
    meta = load_metacontroller(tiny_ant["metacontroller"], base_model=base)
    mean = torch.tensor([[0.1, -0.2, 0.3, 5.0, -5.0, 0.0, 0.05, -0.05]])
    log_std = torch.full((1, 8), np.log(0.2))
    head = SimpleNamespace(action_mean=mean, action_log_std=log_std, action_mix_logits=None)
    for sampling in ("greedy", "sample"):
        env = InternalControlWrapper(
            gym.make("AntPinpad-v0"), base, meta, primitive_sampling=sampling
        )
        env.reset(seed=0)
        core, space = env._core, env.unwrapped.action_space
        core.rngs[0] = np.random.default_rng(7)
        action = core._sample_primitive(head, np.array([0]))[0]
        drawn = mean[0].numpy() + 0.2 * np.random.default_rng(7).standard_normal(8)
        want = mean[0].numpy() if sampling == "greedy" else drawn
        assert action.dtype == space.dtype == np.float32
        np.testing.assert_allclose(action, np.clip(want, space.low, space.high), rtol=1e-6)
        assert action[3] == 1.0 and action[4] == -1.0  # clipped


def test_a_mixture_head_picks_each_rows_component_then_draws_around_its_mean(tiny_ant):
    """A mixture head (``action_mix_logits``): greedy takes the most probable component's mean;
    "sample" picks the component by inverse CDF with the row's generator, then draws around
    that component's mean with the same generator."""
    from types import SimpleNamespace

    from internal_rl_gym.hub import load_base_model, load_metacontroller

    base = load_base_model(tiny_ant["base_model"])
    meta = load_metacontroller(tiny_ant["metacontroller"], base_model=base)
    means = torch.stack([torch.full((8,), v) for v in (-0.5, 0.25, 0.75)])[None]  # (1, 3, 8)
    log_std = torch.log(torch.tensor([0.1, 0.2, 0.3]))[None, :, None].expand(1, 3, 8)
    mix = torch.tensor([[0.0, 1.5, -1.0]])
    head = SimpleNamespace(action_mean=means, action_log_std=log_std, action_mix_logits=mix)
    probs = torch.softmax(mix, -1)[0].numpy()
    picked = []
    for sampling, seed in [("greedy", 0)] + [("sample", s) for s in range(40)]:
        env = InternalControlWrapper(
            gym.make("AntPinpad-v0"), base, meta, primitive_sampling=sampling
        )
        env.reset(seed=0)
        env._core.rngs[0] = np.random.default_rng(seed)
        action = env._core._sample_primitive(head, np.array([0]))[0]
        if sampling == "greedy":
            np.testing.assert_allclose(action, np.full(8, 0.25, np.float32))
            continue
        rng = np.random.default_rng(seed)
        k = int(np.searchsorted(np.cumsum(probs), rng.random(), side="right"))
        want = means[0, k].numpy() + [0.1, 0.2, 0.3][k] * rng.standard_normal(8)
        np.testing.assert_allclose(action, np.clip(want, -1.0, 1.0), rtol=1e-5)
        picked.append(k)
    assert set(picked) == {0, 1, 2}  # every component is reachable


def test_mean_sampling_takes_the_mixtures_mean_action_clipped(tiny_ant, checkpoints):
    """primitive_sampling="mean": Σ_k π_k μ_k of a mixture head (not the top component's mean),
    clipped to the task env's bounds, whatever the row's generator; a discrete task env has no
    mean action and is refused when the env is built."""
    from internal_rl_gym.hub import load_base_model, load_metacontroller
    from internal_rl_gym.models import HeadOutput

    base = load_base_model(tiny_ant["base_model"])
    meta = load_metacontroller(tiny_ant["metacontroller"], base_model=base)
    means = torch.stack([torch.full((8,), v) for v in (-0.5, 0.25, 20.0)])[None]  # (1, 3, 8)
    means[0, :, 0] = torch.tensor([-0.5, 0.25, 0.75])
    mix = torch.tensor([[0.0, 1.5, -1.0]])
    head = HeadOutput(None, None, means, torch.zeros(1, 3, 8), mix)
    pi = torch.softmax(mix, -1)[0]
    want = (pi[:, None] * means[0]).sum(0).numpy()
    env = InternalControlWrapper(gym.make("AntPinpad-v0"), base, meta, primitive_sampling="mean")
    env.reset(seed=0)
    for seed in (0, 1):
        env._core.rngs[0] = np.random.default_rng(seed)
        action = env._core._sample_primitive(head, np.array([0]))[0]
        assert action.dtype == np.float32
        np.testing.assert_allclose(action, np.clip(want, -1.0, 1.0), rtol=1e-6)
    assert -1 < want[0] < 1 < want[1] and action[1] == 1.0  # Σ π μ is 1.3 there: clipped
    with pytest.raises(ValueError, match="primitive_sampling='mean' averages a continuous"):
        gym.make("InternalControl-v0", **checkpoints, primitive_sampling="mean").reset(seed=0)


def test_an_env_without_tasks_gets_a_clear_error(checkpoints):
    """Mutant: the bare nested TypeError of CartPole's constructor."""
    with pytest.raises(ValueError, match="needs a task env that takes a `task` argument"):
        make_env(checkpoints, env_id="CartPole-v1")
    with pytest.raises(ValueError, match="observations have shape"):
        make_env(checkpoints, env_id="CartPole-v1", task=None)


def test_beta_has_one_entry_per_primitive_step_when_the_episode_ends_inside(checkpoints):
    """Mutant: the β of the primitive step that ended the episode left out; ``terminated``
    None for a step the gate ended (core ``_step_rows`` 185)."""
    env = make_env(checkpoints, max_primitive_steps=100, task="0-1-2-3-4-5-6-7")
    env.action_space.seed(0)
    ended = 0
    for seed in range(10):
        env.reset(seed=seed)
        done = False
        while not done:
            _, _, term, trunc, info = env.step(env.action_space.sample())
            done = term or trunc
            assert len(info["beta"]) == info["primitive_steps"]
            assert type(term) is bool and type(trunc) is bool  # mutant: None when the gate ends
        ended += 1
    assert ended == 10


def test_reward_is_the_task_reward_summed_over_the_abstract_step(checkpoints):
    """Mutant: the reward sum over primitive steps zeroed (or not passed on)."""
    env = make_env(checkpoints, task="0", max_primitive_steps=100)
    env.action_space.seed(0)
    successes = 0
    for seed in range(60):
        env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            _, r, term, trunc, info = env.step(env.action_space.sample())
            total += r
            done = term or trunc
        assert total == float(info["success"])
        assert info["is_success"] is info["success"]  # mutant: is_success read from another key
        successes += info["success"]
    assert successes > 0, "no episode succeeded: the test checked nothing"


class DenseReward(gym.Wrapper):
    """The task env's reward plus ``per_step`` on every primitive step."""

    def __init__(self, env, per_step: float):
        super().__init__(env)
        self.per_step, self.rewards = per_step, []

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        self.rewards.append(float(r) + self.per_step)
        return obs, self.rewards[-1], term, trunc, info


def test_a_dense_reward_is_summed_over_every_primitive_step():
    """GridPinpad's reward is sparse and lands on an episode's last primitive step, so a reward
    *kept* from the last step passes the test above. With a reward on every primitive step,
    the abstract step's reward is their sum. Mutants: ``=`` for ``+=`` in the sum, the sum
    started at 1 (core ``_step_rows``)."""
    base, meta = tiny_models()
    task = DenseReward(gym.make("GridPinpad-v0", task="0-1"), per_step=-0.25)
    env = InternalControlWrapper(task, base, meta, max_primitive_steps=6)
    env.action_space.seed(0)
    env.reset(seed=0)
    longest, done = 0, False
    while not done:
        task.rewards = []
        _, r, term, trunc, info = env.step(env.action_space.sample())
        done = term or trunc
        assert len(task.rewards) == info["primitive_steps"] and r == sum(task.rewards)
        longest = max(longest, info["primitive_steps"])
    assert longest > 1, "every abstract step was one primitive step: the test checked nothing"


DROPPED = ("visited", "success", "is_success")


class RecordVisits(gym.Wrapper):
    """The task env's ``info["visited"]`` of every primitive step (``drop``: ``visited``,
    ``success`` and ``is_success`` removed from the info, as a task env that does not report
    them)."""

    def __init__(self, env, drop: bool = False):
        super().__init__(env)
        self.visits, self.drop = [], drop

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        self.visits.append(info["visited"])
        if self.drop:
            info = {k: v for k, v in info.items() if k not in DROPPED}
        return obs, r, term, trunc, info


def test_visited_colours_are_the_colours_entered_during_the_abstract_step():
    """info["visited_colours"] lists, in order, the colour entered at each primitive step of
    this abstract step (colour 0 included, the -1s of steps that entered none left out); a
    task env without ``info["visited"]`` gives an empty list (and without ``info["success"]``
    no success). Mutants (core ``_step_rows``): the list emptied or not passed on; ``> 0`` or
    ``>= 1`` for ``>= 0``; a default other than -1 for a missing key, or the key misspelt;
    success or is_success defaulting to True, is_success not set (the task env's own passed
    on)."""
    base, meta = tiny_models()
    task = gym.make("GridPinpad-v0", task="0-1-2-3-4-5-6-7", terminate_on_wrong_colour=False)
    recorder = RecordVisits(task)
    env = InternalControlWrapper(recorder, base, meta, max_primitive_steps=10)
    env.action_space.seed(0)
    entered, colour_zero = 0, False
    for seed in range(3):
        env.reset(seed=seed)
        done = False
        while not done:
            recorder.visits = []
            _, _, term, trunc, info = env.step(env.action_space.sample())
            done = term or trunc
            assert len(recorder.visits) == info["primitive_steps"]
            assert info["visited_colours"] == [v for v in recorder.visits if v >= 0]
            entered += len(info["visited_colours"])
            colour_zero |= 0 in info["visited_colours"]
    assert entered > 0 and colour_zero, "no colour (or never colour 0) entered: checked nothing"
    silent = RecordVisits(gym.make("GridPinpad-v0", task="0-1-2-3"), drop=True)
    env = InternalControlWrapper(silent, base, meta, max_primitive_steps=100)
    env.action_space.seed(0)
    for seed in range(3):
        env.reset(seed=seed)
        done = False
        while not done:
            _, _, term, trunc, info = env.step(env.action_space.sample())
            done = term or trunc
            assert info["visited_colours"] == []
            assert info["success"] is False and info["is_success"] is False
    assert any(v >= 0 for v in silent.visits), "no colour entered: checked nothing"


def test_categorical_codes_make_a_discrete_action_that_selects_the_code(tmp_path):
    """A metacontroller with code="categorical": the action is a code index, applied as its
    one-hot z (mutant: the index used as a scalar code)."""
    from internal_rl_gym.hub import model_fingerprint
    from internal_rl_gym.models import Metacontroller

    base, _ = tiny_models()
    torch.manual_seed(0)
    meta = Metacontroller(
        d_model=D, layer=LAYER, n_z=3, n_h=8, n_s=8, rank=4, code="categorical",
        base_model_name=base.config.name, base_model_fingerprint=model_fingerprint(base),
    )  # fmt: skip
    with torch.no_grad():
        meta.hyper[-1].weight.mul_(30.0)
    base.save_pretrained(tmp_path / "base")
    meta.save_pretrained(tmp_path / "meta")
    kw = {"base_model": str(tmp_path / "base"), "metacontroller": str(tmp_path / "meta")}
    env = make_env(kw, task="0-1-2-3", max_primitive_steps=5)
    assert env.action_space == gym.spaces.Discrete(3)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env, warn=True)
    core = env.unwrapped._core
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"^The code index 3 is not an integer in 0\.\.2\.$"):
        env.step(3)  # mutant: "XXcode indexXX" (core check_action 6)
    env.step(2)
    assert core.z[0].tolist() == [0.0, 0.0, 1.0]


def test_engine_calls_run_on_one_torch_thread_and_restore_the_users_setting(tiny_checkpoints):
    """torch_threads=1 (default): every reset/step runs single-threaded and torch's setting is
    restored after it; None leaves it alone (mutant: a missing restore fails the first check)."""
    import torch

    seen: list[int] = []
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        env = gym.make("InternalControl-v0", task="0-1", **tiny_checkpoints)
        core = env.unwrapped._core
        lower = core._lower

        def spy(*args, **kwargs):
            seen.append(torch.get_num_threads())
            return lower(*args, **kwargs)

        core._lower = spy
        env.reset(seed=0)
        env.step(env.action_space.sample())
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
        env2 = gym.make("InternalControl-v0", task="0-1", torch_threads=None, **tiny_checkpoints)
        seen.clear()
        env2.unwrapped._core._lower = spy
        env2.reset(seed=0)
        assert set(seen) == {2}
        with pytest.raises(ValueError, match="torch_threads must be"):
            gym.make("InternalControl-v0", task="0-1", torch_threads=0, **tiny_checkpoints)
    finally:
        torch.set_num_threads(before)


def test_engine_calls_set_their_thread_count_and_restore_it(tiny_checkpoints, monkeypatch):
    """The same contract as the test above, seen through torch's setters (spied, so that no
    thread count really changes: several threads hang mutmut's forked test processes, where
    the test above is left out). Each reset/step sets ``torch_threads`` and restores the
    previous count after it; a count equal to torch's, or None, sets nothing. Mutants: the
    option not passed (core ``reset_rows`` 1, ``step_rows`` 1), and those of ``_TorchThreads``
    (the count not set, not restored, restored to the wrong value, set when equal)."""
    envs = {
        n: gym.make("InternalControl-v0", task="0-1", torch_threads=n, **tiny_checkpoints)
        for n in (3, 2, None)
    }
    threads, calls, seen = [2], [], []
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads[0])

    def set_num_threads(n):
        calls.append(n)
        threads[0] = n

    monkeypatch.setattr(torch, "set_num_threads", set_num_threads)
    for n, env in envs.items():
        core = env.unwrapped._core
        lower = core._lower

        def spy(*args, _lower=lower, **kwargs):
            seen.append(threads[0])
            return _lower(*args, **kwargs)

        core._lower = spy
        calls.clear()
        seen.clear()
        env.reset(seed=0)
        env.step(env.action_space.sample())
        assert threads == [2] and set(seen) == {3 if n == 3 else 2}
        assert calls == ([3, 2, 3, 2] if n == 3 else []), n
