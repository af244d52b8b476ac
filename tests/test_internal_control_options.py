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
    # z is computed from the action's value, not in its precision: a float16 action gives the
    # z of its exact value (mutant: the action left in its dtype, core check_action 38, 40)
    half = np.array([0.3, -0.7, 0.9, 0.1], np.float16)
    scaled.reset(seed=2)
    scaled.step(half)
    want = (1.5 * half.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(scaled._core.z[0].numpy(), want)


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
        # acting needs only the action head (mutant: predict_obs True or left to its default)
        assert out.obs_pred is None
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


# ------------------------------------------ what the mutation run found unpinned (survivors)
# benchmarks/mutation_testing.py's survivors in internal_control.py that a cheap test kills;
# docs/mutation_testing.md lists those left and why.


def tiny_meta(base, **kw):
    """A metacontroller for the tiny grid base model (weights random)."""
    from internal_rl_gym.hub import model_fingerprint
    from internal_rl_gym.models import Metacontroller

    args = dict(d_model=16, layer=1, n_z=4, n_h=8, n_s=8, rank=4)
    args.update(base_model_name=base.config.name, base_model_fingerprint=model_fingerprint(base))
    return Metacontroller(**{**args, **kw}).eval()


@pytest.mark.parametrize(
    "option, message",
    [
        ({"action_scale": 0.0}, "action_scale must be > 0"),
        ({"beta_threshold": 0.0}, r"beta_threshold must be in \(0, 1\]"),
        ({"beta_threshold": 1.5}, r"beta_threshold must be in \(0, 1\]"),
        ({"max_primitive_steps": 0}, "max_primitive_steps must be >= 1"),
        ({"primitive_sampling": "top-k"}, "primitive_sampling must be one of"),
        # an id without "torch_thread": the mutation run deselects tests named so (-k)
        pytest.param(
            {"torch_threads": 0}, r"^torch_threads must be >= 1 or None .*, got 0\.$", id="threads"
        ),
    ],
)
def test_invalid_options_are_refused_with_their_range(option, message):
    """Mutants: each bound moved (action_scale <= 1, 0 <= β, β <= 2) or its message dropped;
    ``torch_threads is None and ...`` (0 accepted) or its message None (core validate 26, 29;
    the torch-threads test that also checks it is outside the mutation run's subset)."""
    with pytest.raises(ValueError, match=message):
        wrapper(**option)


def test_options_at_their_bounds_are_accepted():
    """Mutants: the bounds moved inwards (an action_scale below 1, beta_threshold 1 refused)."""
    env = wrapper(action_scale=0.25, beta_threshold=1.0, max_primitive_steps=1)
    env.reset(seed=0)
    env.step(np.ones(4, np.float32))
    np.testing.assert_allclose(env._core.z[0].numpy(), 0.25)


def test_modules_passed_directly_are_checked_against_each_other():
    """The core's own check (modules skip the loaders' check_compatible). Mutants: layer 0 (the
    embedding) refused; the messages' base model name or layer text dropped."""
    from internal_rl_gym.hub import CheckpointError

    base, _ = tiny_models()
    task = gym.make("GridPinpad-v0", task="0-1")
    wide = tiny_meta(base, d_model=24)
    with pytest.raises(CheckpointError, match=r"d_model=24 .*load_base_model\('tiny-grid'\)"):
        InternalControlWrapper(task, base, wide)
    unnamed = tiny_meta(base, d_model=24, base_model_name="")
    with pytest.raises(CheckpointError, match=r"load_base_model\('<not recorded>'\)"):
        InternalControlWrapper(task, base, unnamed)
    with pytest.raises(
        CheckpointError, match=r"controls layer 3, which base model .* \(2 layers\) does not have"
    ):
        InternalControlWrapper(task, base, tiny_meta(base, layer=3))
    env = InternalControlWrapper(task, base, tiny_meta(base, layer=0))
    env.reset(seed=0)
    assert env._core.layer == 0 and env.step(np.zeros(4, np.float32))[4]["primitive_steps"] >= 1


def test_sampled_primitive_actions_follow_the_heads_probabilities():
    """Each action drawn with its probability, the last one included. Mutant: the clamp one
    lower (``n - 2``: the last action never drawn)."""
    from types import SimpleNamespace

    env = wrapper()
    env.reset(seed=0)
    core = env._core
    probs = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    head = SimpleNamespace(action_logits=probs.log())
    core.rngs[0] = np.random.default_rng(0)
    draws = [core._sample_primitive(head, np.array([0]))[0] for _ in range(4000)]
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / 4000, probs[0], atol=0.03)


def test_oracle_actions_are_checked_as_subgoal_indices(tiny_oracle):
    """Mutants: the oracle's index called a "code index" or upper-cased; the range text off by
    one; the dtype check dropped (the string "1" accepted as subgoal 1)."""
    env = gym.make("InternalControl-Pinpad-Oracle-v0", **tiny_oracle)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"^The subgoal index 4 is not an integer in 0\.\.3\.$"):
        env.step(4)
    with pytest.raises(ValueError, match=r"expects one subgoal index in 0\.\.3, got '1'"):
        env.step("1")


def test_a_pickled_env_keeps_every_option(tiny_checkpoints):
    """EzPickle rebuilds the env from its constructor arguments. Mutants: any argument replaced
    by None or dropped from EzPickle (``torch_threads`` too: None here, so the clone's default 1
    differs; internal_control ``InternalControlEnv.__init__`` 57); env_kwargs or render_mode not
    passed to the task env; render_mode not kept."""
    import pickle

    from internal_rl_gym.internal_control import InternalControlEnv

    env = InternalControlEnv(
        **tiny_checkpoints,
        torch_threads=None,
        task="0-1",
        env_kwargs={"max_steps": 7},
        hub_kwargs={"local_files_only": True},
        action_scale=1.5,
        max_primitive_steps=3,
        beta_threshold=0.7,
        primitive_sampling="greedy",
        include_step_count=True,
        max_abstract_steps=9,
        render_mode="ansi",
        controller_gain=0.5,
    )
    clone = pickle.loads(pickle.dumps(env))
    for e in (env, clone):
        assert e._core.options == env._core.options and e._core.options.max_abstract_steps == 9
        assert e.task_env.unwrapped.max_steps == 7 and e.render_mode == "ansi"
        assert e.reset(seed=0)[1]["task"] == "0-1"
        assert isinstance(e.render(), str)
    assert env._core.options.beta_threshold == 0.7 and env.observation_space.shape == (17,)
    assert clone._core.options.torch_threads is None


def test_the_defaults_build_the_papers_post_task_env():
    """Mutant: a default checkpoint name changed (upper-cased; upper-casing the default task
    is an equivalent mutant: task names are case-insensitive); a default option changed
    (``max_abstract_steps`` 101, ``torch_threads`` 2) or ``torch_threads`` passed on as None
    (internal_control ``InternalControlEnv.__init__`` 15, 19, 96)."""
    from internal_rl_gym.internal_control import (
        ControlOptions,
        InternalControlEnv,
        make_internal_control_vec_env,
    )

    env = InternalControlEnv()
    assert env._core.options == ControlOptions(
        action_scale=3.0, max_primitive_steps=50, beta_threshold=0.5, primitive_sampling="sample",
        include_step_count=False, max_abstract_steps=100, controller_gain=1.0, torch_threads=1,
    )  # fmt: skip
    assert env.base_model._checkpoint_source == "pinpad-transformer"
    assert env.metacontroller._checkpoint_source == "pinpad-metacontroller"
    assert env.reset(seed=0)[1]["task"] == "0-1-2-3-4-5-6-7-0-1-2-3"
    vec = make_internal_control_vec_env(1, seed=0, monitor=False)
    assert vec.env_method("reset", seed=0)[0][1]["task"] == "0-1-2-3-4-5-6-7-0-1-2-3"


def test_device_auto_runs_where_there_is_no_gpu(tiny_checkpoints):
    """``device="auto"`` picks CUDA when there is one, else the CPU. It raised on a CPU-only
    machine (``torch.device("auto")``); mutants: the fallback's condition inverted."""
    env = gym.make("InternalControl-v0", **tiny_checkpoints, device="auto")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert env.unwrapped.base_model.device.type == expected
    assert next(env.unwrapped.metacontroller.parameters()).device.type == expected


def test_the_engine_keeps_to_the_models_device_whatever_torchs_default(tiny_oracle):
    """The engine allocates its state, index tensors and observations on the models' device,
    never on torch's default device (``torch.set_default_device("cuda")`` with models on the
    CPU). Torch's "meta" device as the default stands in for another device on a machine without
    a GPU: a tensor left to the default lands there and cannot mix with the models' CPU
    tensors. The batched engine (rows leaving the batch at different steps, auto-resets), the
    oracle and categorical codes then run exactly as without it. Mutants: ``device=`` dropped or
    None on the engine's tensors (core ``__init__``, ``_lower``, ``_observe``, ``_reset_rows``,
    ``_step_rows``)."""
    from internal_rl_gym.hub import load_base_model, load_subgoal_controllers

    base, meta = tiny_models()
    oracle_base = load_base_model(tiny_oracle["base_model"])
    ctrl = load_subgoal_controllers(tiny_oracle["metacontroller"], base_model=oracle_base)
    categorical = tiny_meta(base, n_z=3, code="categorical")
    setups = [  # (base model, metacontroller, n_envs, actions of step k)
        (base, meta, 3, lambda k: np.random.default_rng(k).uniform(-1, 1, (3, 4))),
        (oracle_base, ctrl, 2, lambda k: np.array([k % 4, (k + 1) % 4])),
        (base, categorical, 2, lambda k: np.array([k % 3, (k + 2) % 3])),
    ]

    def run(b, m, n, actions):
        envs = [gym.make("GridPinpad-v0", task="0-1-2-3") for _ in range(n)]
        vec = InternalControlVecEnv(envs, b, m, max_primitive_steps=5)
        vec.seed(0)
        out = [vec.reset()]
        for k in range(8):
            obs, rewards, dones, infos = vec.step(actions(k))
            out += [obs, rewards, dones, [info["primitive_actions"] for info in infos]]
        return out

    for setup in setups:
        want = run(*setup)
        with torch.device("meta"):
            got = run(*setup)
        for a, b in zip(want, got):
            np.testing.assert_array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object))


def test_vec_env_passes_reset_options_and_keeps_its_reset_infos(tiny_checkpoints):
    """SB3's set_options reaches the task envs' reset; reset_infos hold each row's latest
    reset; options reach every row; step_wait needs step_async; VecMonitor records
    is_success. Mutants: options dropped (None, or ``and`` for ``or``); reset_infos set to
    None; ControlOptions or **options dropped; get_attr's indices ignored; the error message
    lost; another info keyword."""
    from internal_rl_gym.internal_control import make_internal_control_vec_env

    layout = {"walls": [0, 1, 2, 3], "colours": [10, 11, 12, 13, 14, 15, 16, 17], "agent": 24}
    vec = make_internal_control_vec_env(
        2, seed=0, task="0-1", env_kwargs={"max_steps": 3}, max_primitive_steps=1,
        **tiny_checkpoints,
    )  # fmt: skip
    inner = vec.venv
    vec.set_options([{"layout": layout}, None])
    vec.reset()
    first = inner.core.envs[0].unwrapped
    assert first.walls.tolist() == layout["walls"] and first.agent == 24
    assert inner.core.envs[1].unwrapped.agent != 24 or inner.core.envs[1].unwrapped.walls[0] != 0
    assert vec.get_attr("max_steps", indices=[1]) == [3]
    ended = set()
    for _ in range(3):  # max_steps=3: every episode ends within 3 primitive steps
        _, _, dones, infos = vec.step(np.zeros((2, 4), np.float32))
        assert all(info["primitive_steps"] == 1 for info in infos)
        for i in np.flatnonzero(dones):  # reset automatically
            assert "is_success" in infos[i]["episode"]
            assert isinstance(inner.reset_infos[i], dict) and inner.reset_infos[i]["progress"] == 0
            ended.add(int(i))
    assert ended == {0, 1}
    with pytest.raises(RuntimeError, match="^step_async must be called before step_wait"):
        inner.step_wait()


def test_wrapper_takes_the_loading_arguments_and_seeds_the_task_env():
    """Mutants: a loading argument (device, base_model_revision) left in the ControlOptions
    (TypeError); a given seed replaced by a drawn one; the options left out of the wrapper's
    recorded constructor arguments (its spec)."""
    base, meta = tiny_models()
    env = InternalControlWrapper(
        gym.make("GridPinpad-v0", task="0-1"), base, meta, device="cpu",
        base_model_revision=None, metacontroller_revision=None, hub_kwargs={},
        max_primitive_steps=6,
    )  # fmt: skip
    assert env.spec.additional_wrappers[-1].kwargs["max_primitive_steps"] == 6
    env.reset(seed=3)
    plain = gym.make("GridPinpad-v0", task="0-1")
    plain.reset(seed=3)
    assert env.unwrapped.walls.tolist() == plain.unwrapped.walls.tolist()
    assert env.unwrapped.agent == plain.unwrapped.agent


def test_a_metacontroller_trained_on_another_base_model_is_refused(tiny_checkpoints, tmp_path):
    """Same sizes, other weights: only the recorded fingerprint tells. Mutant: the
    metacontroller loaded without its base model (no check)."""
    from internal_rl_gym.hub import CheckpointError

    other, _ = tiny_models(seed=1)
    tiny_meta(other).save_pretrained(tmp_path / "meta")
    with pytest.raises(CheckpointError, match="was trained on base model"):
        gym.make(
            "InternalControl-v0",
            base_model=tiny_checkpoints["base_model"],
            metacontroller=str(tmp_path / "meta"),
        )


def test_revisions_pick_those_commits_and_survive_pickling(fake_hub, tiny_checkpoints, tmp_path):
    """Hub repos with two commits each: the metacontroller at its old commit, the base model at
    the old commit it was trained on (main holds another base model, which the metacontroller's
    fingerprint refuses). Mutants: a revision not passed on (gym.make, the batched VecEnv) or
    dropped from the pickled constructor arguments: main's weights would load instead."""
    import pickle

    from internal_rl_gym.hub import load_base_model, load_metacontroller, model_fingerprint
    from internal_rl_gym.internal_control import make_internal_control_vec_env

    base = load_base_model(tiny_checkpoints["base_model"])
    torch.manual_seed(5)
    tiny_meta(base).save_pretrained(tmp_path / "new_meta")
    tiny_models(seed=1)[0].save_pretrained(tmp_path / "new_base")
    old_meta = fake_hub.add_repo("ic-options/meta", tiny_checkpoints["metacontroller"])
    fake_hub.add_repo("ic-options/meta", tmp_path / "new_meta")
    old_base = fake_hub.add_repo("ic-options/base", tiny_checkpoints["base_model"])
    fake_hub.add_repo("ic-options/base", tmp_path / "new_base")
    kw = dict(
        base_model="ic-options/base",
        base_model_revision=old_base,
        metacontroller="ic-options/meta",
        metacontroller_revision=old_meta,
        hub_kwargs={"endpoint": fake_hub.url, "cache_dir": str(tmp_path / "cache")},
    )
    want = model_fingerprint(load_metacontroller(tiny_checkpoints["metacontroller"]))
    env = gym.make("InternalControl-v0", **kw)
    clone = pickle.loads(pickle.dumps(env.unwrapped))
    vec = make_internal_control_vec_env(1, monitor=False, **kw)
    for meta, base_model in [
        (env.unwrapped.metacontroller, env.unwrapped.base_model),
        (clone.metacontroller, clone.base_model),
        (vec.core.meta, vec.core.base),
    ]:
        assert model_fingerprint(meta) == want
        assert model_fingerprint(base_model) == model_fingerprint(base)


def test_step_count_feature_and_episode_bookkeeping(tiny_checkpoints):
    """include_step_count: the last feature is abstract steps / max_abstract_steps (0 at reset);
    info counts the abstract steps of this episode; reset's info has success False; reset
    options reach the task env; a finished episode must be reset. Mutants: the feature built
    from None; the count restarting at 1; success None; reset's options dropped; "needs reset"
    only when terminated *and* truncated; the count set to 1 instead of incremented (core
    ``_step_rows`` 210: the episode now lasts several abstract steps, free play)."""
    env = gym.make(
        "InternalControl-v0", **tiny_checkpoints, task="0-1", include_step_count=True,
        max_abstract_steps=10, max_primitive_steps=2,
        env_kwargs={"max_steps": 8, "terminate_on_wrong_colour": False},
    )  # fmt: skip
    layout = {"walls": [0, 1, 2, 3], "colours": [10, 11, 12, 13, 14, 15, 16, 17], "agent": 24}
    obs, info = env.reset(seed=0, options={"layout": layout})
    assert env.unwrapped.task_env.unwrapped.walls.tolist() == layout["walls"]
    assert obs.dtype == np.float32 and obs[-1] == 0.0 and info["success"] is False
    done, k = False, 0
    while not done:
        obs, _, term, trunc, info = env.step(np.zeros(4, np.float32))
        k += 1
        done = term or trunc
        assert info["abstract_steps"] == k and obs[-1] == np.float32(k / 10)
        assert obs.dtype == np.float32
    assert k >= 3, "the count was checked on fewer than 3 abstract steps"
    with pytest.raises(RuntimeError, match="Call reset"):
        env.step(np.zeros(4, np.float32))


def test_vec_env_returns_sb3_dtypes_and_reseeding_repeats(tiny_checkpoints):
    """Mutants: observations or rewards left float64, dones not bool; a second seed() ignored
    (the rows' generators made only once); n_envs < 1's message dropped; the action space not
    passed to SB3's VecEnv; env_is_wrapped's indices ignored."""
    from internal_rl_gym.internal_control import make_internal_control_vec_env

    vec = make_internal_control_vec_env(2, task="0-1", monitor=False, **tiny_checkpoints)
    runs = []
    for _ in range(2):
        vec.seed(7)
        first = vec.reset()
        obs, rewards, dones, _ = vec.step(np.zeros((2, 4), np.float32))
        runs.append((first, obs))
        vec.step(np.ones((2, 4), np.float32))  # move the generators on
    assert obs.dtype == rewards.dtype == np.float32 and dones.dtype == bool
    assert vec.action_space == gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    assert vec.env_is_wrapped(gym.Wrapper, indices=[1]) == [True]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    with pytest.raises(ValueError, match="n_envs must be >= 1, got 0"):
        make_internal_control_vec_env(0, **tiny_checkpoints)


def test_the_core_resets_rows_without_seeds_or_options():
    """InternalControlCore.reset_rows(rows) alone (the front ends always pass both lists):
    unseeded, option-less resets of just those rows, and none for an empty list. Mutants:
    ``list(seeds)`` of None (``or True``), ``[None] / len(rows)`` (core ``_reset_rows`` 5, 8)."""
    from internal_rl_gym.internal_control import InternalControlCore

    base, meta = tiny_models()
    core = InternalControlCore(
        [gym.make("GridPinpad-v0", task="0-1") for _ in range(2)], base, meta
    )
    obs, infos = core.reset_rows([1])
    assert len(obs) == len(infos) == 1 and obs[0].shape == (16,) and infos[0]["progress"] == 0
    assert core.envs[1].unwrapped.steps == 0 and not hasattr(core.envs[0].unwrapped, "walls")
    # no rows: nothing to do (mutants: the row indices left to numpy's and torch's default
    # dtype, float for an empty list, which cannot index; core _observe 7, 9, _reset_rows 75, 78)
    assert core.reset_rows([]) == ([], [])


class _NoSubgoal(gym.Wrapper):
    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs, {k: v for k, v in info.items() if k != "subgoal"}


class _TwoColumns(gym.ObservationWrapper):
    def __init__(self, env):
        super().__init__(env)
        self.observation_space = gym.spaces.Box(0, 1, (637, 2), np.float32)

    def observation(self, obs):
        return np.stack([obs, obs], -1)


def test_task_envs_that_cannot_be_steered_are_refused(tiny_oracle):
    """Mutants: the observation check passing a (637, 2) observation (``and`` for ``or``); the
    oracle's missing-subgoal message changed, or naming the env by its repr although it has a
    spec id, or by ``spec.id`` although it has none (AttributeError; core ``_reset_rows`` 39,
    40)."""
    from internal_rl_gym.hub import load_base_model, load_subgoal_controllers

    base, meta = tiny_models()
    with pytest.raises(ValueError, match=r"observations have shape \(637, 2\)"):
        InternalControlWrapper(_TwoColumns(gym.make("GridPinpad-v0")), base, meta)
    base = load_base_model(tiny_oracle["base_model"])
    ctrl = load_subgoal_controllers(tiny_oracle["metacontroller"], base_model=base)
    env = InternalControlWrapper(_NoSubgoal(gym.make("GridPinpad-v0")), base, ctrl)
    with pytest.raises(
        ValueError, match=r"but GridPinpad-v0 reports no 'subgoal'; use GridPinpad-v0 or AntPinpad"
    ):
        env.reset(seed=0)
    unregistered = InternalControlWrapper(_NoSubgoal(GridPinpadEnv()), base, ctrl)  # no spec
    with pytest.raises(ValueError, match=r"but <_NoSubgoal<GridPinpadEnv instance>> reports no"):
        unregistered.reset(seed=0)
