"""InternalControl: the environment in which internal RL happens (paper §5, Algorithms 1-3).

The task env, the frozen base model and the frozen causal parts of the metacontroller (switching
unit with its history GRU, controller decoder) together form a new environment:

* observation: the base model's residual stream ``e_{t,l}`` at the controlled layer ``l``;
* action: a controller code ``z`` (one *abstract action*);
* one step: hold ``z`` (``ê = e + U(z) e`` at layer ``l``, the upper layers run on ``ê`` and the
  base model's action head samples the primitive action) until the switching gate fires
  (``β ≥ 0.5``), the episode ends, or ``max_primitive_steps`` primitive steps have run. The first
  primitive step of every abstract step always executes;
* reward: the sum of the task rewards collected during the abstract step.

The base model keeps its whole context (KV cache / recurrent state) across primitive and abstract
steps, and the switching unit's state (history h and the previous code) carries over, exactly as in
the metacontroller's training-time forward pass.

Three front ends share one batched engine, :class:`InternalControlCore`:

* :class:`InternalControlEnv` (registered as ``InternalControl-v0`` and friends) owns its task env;
* :class:`InternalControlWrapper` wraps a task env instance you already have;
* :class:`InternalControlVecEnv` runs N episodes with one base-model forward call per primitive
  step for all N (a Stable-Baselines3 ``VecEnv``; build it with :func:`make_internal_control_vec_env`).

The engine and its options live in :mod:`internal_rl_gym.internal_control_core`; this module
holds the front ends and the loaders they share, and re-exports the engine's names.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import EzPickle

from internal_rl_gym.internal_control_core import (
    DEFAULT_ACTION_SCALE,
    AbstractStepResult,
    ControlOptions,
    InternalControlCore,
)

# The engine lives in internal_control_core; its names stay importable from here (older code
# and pickles refer to internal_rl_gym.internal_control).
__all__ = [
    "DEFAULT_ACTION_SCALE",
    "AbstractStepResult",
    "ControlOptions",
    "InternalControlCore",
    "InternalControlEnv",
    "InternalControlVecEnv",
    "InternalControlWrapper",
    "load_frozen_models",
    "make_internal_control_vec_env",
    "make_task_env",
]


# --- front ends --------------------------------------------------------------------------------
def _spaces(core: InternalControlCore) -> tuple[spaces.Box, spaces.Box]:
    obs_space = spaces.Box(-np.inf, np.inf, (core.obs_dim,), dtype=np.float32)
    if core.index_actions:
        return obs_space, spaces.Discrete(core.n_actions)
    act_space = spaces.Box(-1.0, 1.0, (core.n_z,), dtype=np.float32)
    return obs_space, act_space


def load_frozen_models(
    base_model: Any,
    metacontroller: Any,
    *,
    base_model_revision: str | None = None,
    metacontroller_revision: str | None = None,
    hub_kwargs: dict[str, Any] | None = None,
    device: str = "cpu",
):
    """(base model, metacontroller) from names/paths/repo ids (or already-loaded modules),
    frozen, on ``device``, checked to belong together."""
    from internal_rl_gym import hub

    hub_kwargs = dict(hub_kwargs or {})
    if isinstance(base_model, (str, os.PathLike)):
        base_model = hub.load_base_model(base_model, revision=base_model_revision, **hub_kwargs)
    if isinstance(metacontroller, (str, os.PathLike)):
        # a metacontroller, or ground-truth subgoal controllers (the oracle)
        folder = hub.resolve_checkpoint(
            metacontroller, revision=metacontroller_revision, **hub_kwargs
        )
        if hub.checkpoint_kind(hub.read_config(folder)) == "subgoal_controllers":
            load = hub.load_subgoal_controllers
        else:
            load = hub.load_metacontroller
        metacontroller = load(
            metacontroller, base_model=base_model, revision=metacontroller_revision, **hub_kwargs
        )
    if device == "auto":  # torch.device("auto") is an error: resolve it first
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    base_model = base_model.to(dev).eval().requires_grad_(False)
    metacontroller = metacontroller.to(dev).eval().requires_grad_(False)
    return base_model, metacontroller


def make_task_env(
    env_id: str, task: Any, env_kwargs: dict[str, Any] | None, render_mode: str | None = None
) -> gym.Env:
    """The task env an InternalControl env owns (``task=None`` passes no task argument)."""
    kwargs = dict(env_kwargs or {})
    if task is not None:
        kwargs["task"] = task
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    try:
        return gym.make(env_id, **kwargs)
    except TypeError as err:
        if "task" not in str(err):
            raise
        raise ValueError(
            f"InternalControl needs a task env that takes a `task` argument and reports "
            f"info['success'] (GridPinpad-v0, AntPinpad-v0, or your own env built the same "
            f"way), with the observations its base model was trained on; {env_id!r} does not "
            f"take `task` ({err}). For an env without tasks pass task=None."
        ) from None


class _InternalControlMixin:
    """``reset``/``step``/``render`` of a single-episode front end over a 1-row core."""

    _core: InternalControlCore
    metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 4}

    def _setup(self, task_env: gym.Env, base, meta, options: ControlOptions) -> None:
        self._core = InternalControlCore([task_env], base, meta, options)
        self.observation_space, self.action_space = _spaces(self._core)
        self._needs_reset = True

    @property
    def task_env(self) -> gym.Env:
        return self._core.envs[0]

    @property
    def base_model(self):
        return self._core.base

    @property
    def metacontroller(self):
        return self._core.meta

    def _reset(self, seed: int | None, options: dict | None) -> tuple[np.ndarray, dict]:
        if seed is None:
            seed = int(self.np_random.integers(2**31))
        (obs,), (info,) = self._core.reset_rows([0], [seed], [options])
        self._needs_reset = False
        return obs, dict(info, success=bool(info.get("success", False)))

    def _step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._needs_reset:
            raise RuntimeError("Call reset() before step() (the episode has ended or not begun).")
        z = self._core.check_action(action)
        res = self._core.step_rows({0: z})[0]
        self._needs_reset = res.terminated or res.truncated
        return res.obs, res.reward, res.terminated, res.truncated, res.info


class InternalControlEnv(_InternalControlMixin, gym.Env, EzPickle):
    """Internal RL: act on a frozen base model's residual stream with controller codes.

    ## Description
    The environment of the paper's internal RL (Kobayashi et al., arXiv 2512.20605, §5,
    Algorithm 1). It owns a task env (``env_id``), a frozen base model and the frozen switching
    unit and controller decoder of a metacontroller. An action is a controller code ``z``; the
    env holds it, writing ``ê = e + U(z) e`` into the base model's residual stream at the
    metacontroller's layer, and lets the base model act in the task env until the switching gate
    fires. An RL agent on this env therefore acts on the contracted, abstract timescale.

    ## Action Space
    ``Box(-1, 1, (n_z,), float32)``; the controller code is ``z = action_scale * action``
    (default ``action_scale = 3``: the metacontroller's prior over ``z`` is ``N(0, I)``, so the
    box spans +-3 standard deviations). Values outside the box are used as given (``z`` is
    unbounded; SB3 clips to the box before stepping). NaN/inf or a wrong shape raise
    ``ValueError``. ``Discrete(n)`` instead when ``metacontroller`` names ground-truth subgoal
    controllers (the oracle: the action is a subgoal, and an abstract step ends when the task
    env's ``info["subgoal"]`` changes) or a metacontroller with categorical codes (the action
    picks one of its ``n_z`` codes).

    ## Observation Space
    ``Box(-inf, inf, (d_model,), float32)``: the residual stream ``e_{t,l}`` of the base model at
    the controlled layer ``l`` for the current observation (before control). With
    ``include_step_count=True`` one more feature holds ``abstract steps / max_abstract_steps``
    (for memoryless policies).

    ## Rewards
    The sum of the task env's rewards over the primitive steps of the abstract step (for
    GridPinpad: 1 on completing the task).

    ## Starting State
    The task env's reset; the base model's context, the switching unit's history ``h`` and the
    previous code ``z`` start at zero (``β_1 = 1``: the first action always applies).

    ## Episode End
    When the task env terminates or truncates (e.g. GridPinpad's 100 primitive steps). One
    abstract step ends when the gate fires (``β >= beta_threshold``), the episode ends, or after
    ``max_primitive_steps`` primitive steps. ``info`` carries ``primitive_steps``, ``beta`` (the
    gate β after each primitive step of the abstract step, ``primitive_steps`` values, the step
    that ended the episode included), ``primitive_actions``, ``visited_colours`` (colours entered during the
    step, when the task env reports ``info["visited"]``), ``success``/``is_success``,
    ``abstract_steps`` and the task env's last info (e.g. ``target``, ``subgoal``, ``progress``).

    ## Arguments
    * ``env_id`` (``"GridPinpad-v0"``), ``task`` (passed to the task env; ``None`` to pass none),
      ``env_kwargs`` (dict of further task-env arguments).
    * ``base_model``, ``metacontroller``: an embedded default name, a local checkpoint directory
      or a Hugging Face repo id; ``base_model_revision``, ``metacontroller_revision``,
      ``hub_kwargs`` (``cache_dir``, ``local_files_only``, ``token``, ``endpoint``).
    * ``action_scale``, ``max_primitive_steps`` (50), ``beta_threshold`` (0.5),
      ``primitive_sampling`` (``"sample"`` from the base model's action head, ``"greedy"``: its
      most probable action, or ``"mean"``: a continuous head's mean action),
      ``include_step_count``, ``max_abstract_steps``.
    * ``controller_gain`` (1.0): writes ``ê = e + gain · U(z) e``. 1 is the paper's controller.
      Ground-truth controllers trained on the pretraining tasks turned out under-powered for
      transitions the base model never saw (research/scripts/controller_gain.py); a gain
      above 1 widens the pushes a code can make beyond what the decoder was trained to produce.
    * ``device``: where the frozen models run (``"cpu"`` default, ``"cuda"``, ``"auto"``). On
      CUDA, forward passes are not bit-reproducible.
    * ``torch_threads`` (1): torch CPU threads inside each reset and step, restored after it
      (``None``: torch's own setting). Its calls are small, and with torch's default threads a
      busy 2-core machine ran them ~15x slower than with one.

    ## Version History
    * v0: initial release.
    * ``InternalControl-Ant-v1``: the ant steers ``ant-transformer`` (a transformer with a
      32-step attention window and a mixture action head, acting with its mean action) in
      ``AntPinpadRoutes-v1``; ``InternalControl-Ant-Oracle-v0`` added. ``InternalControl-Ant-v0``
      (``ant-hawk`` in ``AntPinpad-v0``, whose stream held no subgoal) is retired.
    * ``InternalControl-Ant-v2``, ``InternalControl-Ant-Oracle-v1``: ``ant-transformer`` is the
      same model trained 30,000 updates further on twice the data (step 85,000), with its own
      ``ant-subgoal-controllers`` and ``ant-metacontroller``; results on the previous ids
      (``ant-transformer``'s step-55,000 weights) are not comparable, so those ids are retired.
    * ``InternalControl-Ant-v3``, ``InternalControl-Ant-Oracle-v2``: ``ant-transformer`` is the
      step-85,000 model fine-tuned on recovery data (expert episodes with random heading kicks,
      four rounds, each the weight average of two fine-tunes), which completes more of its
      pretraining tasks alone; new ``ant-subgoal-controllers``, and ``ant-metacontroller``
      carried over from the previous model and fine-tuned on this one. v2 and Oracle-v1 are
      retired.
    """

    def __init__(
        self,
        env_id: str = "GridPinpad-v0",
        base_model: Any = "pinpad-transformer",
        metacontroller: Any = "pinpad-metacontroller",
        task: Any = "post",
        env_kwargs: dict[str, Any] | None = None,
        base_model_revision: str | None = None,
        metacontroller_revision: str | None = None,
        hub_kwargs: dict[str, Any] | None = None,
        action_scale: float = DEFAULT_ACTION_SCALE,
        max_primitive_steps: int = 50,
        beta_threshold: float = 0.5,
        primitive_sampling: str = "sample",
        include_step_count: bool = False,
        max_abstract_steps: int = 100,
        device: str = "cpu",
        render_mode: str | None = None,
        controller_gain: float = 1.0,
        torch_threads: int | None = 1,
    ) -> None:
        EzPickle.__init__(
            self,
            env_id,
            base_model,
            metacontroller,
            task,
            env_kwargs,
            base_model_revision,
            metacontroller_revision,
            hub_kwargs,
            action_scale,
            max_primitive_steps,
            beta_threshold,
            primitive_sampling,
            include_step_count,
            max_abstract_steps,
            device,
            render_mode,
            controller_gain,
            torch_threads,
        )
        self.render_mode = render_mode
        task_env = make_task_env(env_id, task, env_kwargs, render_mode)
        base, meta = load_frozen_models(
            base_model,
            metacontroller,
            base_model_revision=base_model_revision,
            metacontroller_revision=metacontroller_revision,
            hub_kwargs=hub_kwargs,
            device=device,
        )
        self._setup(
            task_env,
            base,
            meta,
            ControlOptions(
                action_scale,
                max_primitive_steps,
                beta_threshold,
                primitive_sampling,
                include_step_count,
                max_abstract_steps,
                controller_gain,
                torch_threads,
            ),
        )

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return self._reset(seed, options)

    def step(self, action: Any):
        return self._step(action)

    def render(self):
        return self.task_env.render()

    def close(self) -> None:
        self.task_env.close()


class InternalControlWrapper(_InternalControlMixin, gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Turn a task env you already have into an internal-control env.

    >>> wrapped = InternalControlWrapper(gym.make("GridPinpad-v0", task="post"),
    ...                                  base_model="my/base", metacontroller="my/meta")

    ``base_model``/``metacontroller`` are names, directories, repo ids or loaded modules; the
    remaining keyword arguments are those of :class:`InternalControlEnv` (``action_scale``,
    ``max_primitive_steps``, ...). See :class:`InternalControlEnv` for the semantics.
    """

    def __init__(self, env: gym.Env, base_model: Any, metacontroller: Any, **kwargs: Any) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self, base_model=base_model, metacontroller=metacontroller, **kwargs
        )
        gym.Wrapper.__init__(self, env)
        hub = {
            k: kwargs.pop(k)
            for k in ("base_model_revision", "metacontroller_revision", "hub_kwargs", "device")
            if k in kwargs
        }
        base, meta = load_frozen_models(base_model, metacontroller, **hub)
        self._setup(env, base, meta, ControlOptions(**kwargs))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None or not hasattr(self, "_wrapper_rng"):
            self._wrapper_rng = np.random.default_rng(seed)
        if seed is None:
            seed = int(self._wrapper_rng.integers(2**31))
        (obs,), (info,) = self._core.reset_rows([0], [seed], [options])
        self._needs_reset = False
        return obs, info

    def step(self, action: Any):
        return self._step(action)


# --- batched SB3 VecEnv ---------------------------------------------------------------------
def _vec_env_base():
    from stable_baselines3.common.vec_env import VecEnv

    return VecEnv


class InternalControlVecEnv(_vec_env_base()):
    """N InternalControl episodes with ONE base-model forward call per primitive step for all rows.

    A Stable-Baselines3 ``VecEnv``: ``step`` returns after every row has finished one abstract
    step (rows whose gate fired early wait, without computing, for the others); finished episodes
    are reset automatically, with the last observation in ``infos[i]["terminal_observation"]``
    and ``infos[i]["TimeLimit.truncated"]`` set as SB3 expects. Row ``i`` behaves exactly like a
    separate :class:`InternalControlEnv` seeded with ``seed + i`` (``DummyVecEnv`` semantics), up
    to floating-point differences between batched and single-row matrix products.

    Build it with :func:`make_internal_control_vec_env`.
    """

    def __init__(self, envs: Sequence[gym.Env], base_model, metacontroller, **options: Any):
        self._core = InternalControlCore(
            envs, base_model, metacontroller, ControlOptions(**options)
        )
        obs_space, act_space = _spaces(self._core)
        super().__init__(len(envs), obs_space, act_space)
        self._np_randoms: list[np.random.Generator | None] = [None] * self.num_envs
        self._actions: np.ndarray | None = None

    @property
    def core(self) -> InternalControlCore:
        return self._core

    def _row_seed(self, i: int, seed: int | None) -> int:
        """Same seed derivation as ``InternalControlEnv.reset`` (gymnasium's ``np_random``)."""
        from gymnasium.utils import seeding

        if seed is not None or self._np_randoms[i] is None:
            self._np_randoms[i], _ = seeding.np_random(seed)
        return seed if seed is not None else int(self._np_randoms[i].integers(2**31))

    def reset(self) -> np.ndarray:
        rows = list(range(self.num_envs))
        seeds = [self._row_seed(i, self._seeds[i]) for i in rows]
        options = [self._options[i] or None for i in rows]
        obs, infos = self._core.reset_rows(rows, seeds, options)
        self.reset_infos = [dict(info) for info in infos]
        self._reset_seeds()
        self._reset_options()
        return np.stack(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        if self._actions is None:
            raise RuntimeError("step_async must be called before step_wait.")
        acts = self._actions.reshape(self.num_envs, -1)
        results = self._core.step_rows(
            {i: self._core.check_action(acts[i]) for i in range(self.num_envs)}
        )
        self._actions = None
        obs = np.zeros((self.num_envs, self.observation_space.shape[0]), dtype=np.float32)
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        dones = np.zeros(self.num_envs, dtype=bool)
        infos: list[dict[str, Any]] = []
        done_rows = []
        for i in range(self.num_envs):
            res = results[i]
            obs[i], rewards[i] = res.obs, res.reward
            dones[i] = res.terminated or res.truncated
            info = res.info
            if dones[i]:
                info["terminal_observation"] = res.obs
                info["TimeLimit.truncated"] = res.truncated and not res.terminated
                done_rows.append(i)
            infos.append(info)
        if done_rows:
            new_obs, reset_infos = self._core.reset_rows(
                done_rows, [self._row_seed(i, None) for i in done_rows]
            )
            for i, o, ri in zip(done_rows, new_obs, reset_infos):
                obs[i] = o
                self.reset_infos[i] = dict(ri)
        return obs, rewards, dones, infos

    def close(self) -> None:
        for env in self._core.envs:
            env.close()

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [
            getattr(self._core.envs[i].unwrapped, attr_name) for i in self._get_indices(indices)
        ]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        for i in self._get_indices(indices):
            setattr(self._core.envs[i].unwrapped, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs):
        """Call a method of the task envs, found through their wrappers (as SB3's
        ``DummyVecEnv`` does): a method of the task env itself or of one of its wrappers."""
        return [
            self._core.envs[i].get_wrapper_attr(method_name)(*method_args, **method_kwargs)
            for i in self._get_indices(indices)
        ]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        from stable_baselines3.common.env_util import is_wrapped

        return [is_wrapped(self._core.envs[i], wrapper_class) for i in self._get_indices(indices)]

    def get_images(self):
        return [env.render() for env in self._core.envs]


def make_internal_control_vec_env(
    n_envs: int,
    env_id: str = "GridPinpad-v0",
    base_model: Any = "pinpad-transformer",
    metacontroller: Any = "pinpad-metacontroller",
    task: Any = "post",
    env_kwargs: dict[str, Any] | None = None,
    seed: int | None = None,
    monitor: bool = True,
    base_model_revision: str | None = None,
    metacontroller_revision: str | None = None,
    hub_kwargs: dict[str, Any] | None = None,
    device: str = "cpu",
    **options: Any,
):
    """The batched InternalControl VecEnv, like SB3's ``make_vec_env``: N task envs, one frozen
    base model and metacontroller shared by all rows, wrapped in ``VecMonitor`` (episode return,
    length and ``is_success`` for SB3's logger) unless ``monitor=False``. ``options`` are
    :class:`ControlOptions` fields (``action_scale``, ``max_primitive_steps``, ...)."""
    if n_envs < 1:
        raise ValueError(f"n_envs must be >= 1, got {n_envs}.")
    envs = [make_task_env(env_id, task, env_kwargs) for _ in range(n_envs)]
    base, meta = load_frozen_models(
        base_model,
        metacontroller,
        base_model_revision=base_model_revision,
        metacontroller_revision=metacontroller_revision,
        hub_kwargs=hub_kwargs,
        device=device,
    )
    vec = InternalControlVecEnv(envs, base, meta, **options)
    if seed is not None:
        vec.seed(seed)
    if monitor:
        from stable_baselines3.common.vec_env import VecMonitor

        vec = VecMonitor(vec, info_keywords=("is_success",))
    return vec
