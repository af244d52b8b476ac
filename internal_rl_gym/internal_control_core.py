"""The batched engine of InternalControl (paper §5, Algorithms 1-3) and its options.

:class:`InternalControlCore` runs N task envs, one frozen base model and the frozen causal parts
of one metacontroller (or ground-truth subgoal controllers, the oracle): each row holds its code
``z`` (``ê = e + U(z) e`` at the controlled layer) until the switching gate fires, the episode
ends or :attr:`ControlOptions.max_primitive_steps` primitive steps have run. The base model keeps
its whole context and the switching unit its state across abstract steps. The front ends
(:class:`~internal_rl_gym.internal_control.InternalControlEnv`, ``...Wrapper``, ``...VecEnv``) are
in :mod:`internal_rl_gym.internal_control`, which re-exports every public name here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from internal_rl_gym.hub import check_shapes

__all__ = [
    "DEFAULT_ACTION_SCALE",
    "AbstractStepResult",
    "ControlOptions",
    "InternalControlCore",
]

#: z = ACTION_SCALE * action. The metacontroller's prior over z is N(0, I), so the action box
#: [-1, 1] covers +-3 standard deviations.
DEFAULT_ACTION_SCALE = 3.0


PRIMITIVE_SAMPLING = ("sample", "greedy", "mean")


@dataclass
class ControlOptions:
    """How abstract steps are executed (constructor arguments of every front end)."""

    action_scale: float = DEFAULT_ACTION_SCALE
    max_primitive_steps: int = 50
    beta_threshold: float = 0.5
    #: "sample" from the base model's head; "greedy": its most probable action (a mixture head:
    #: the most probable component's mean); "mean": a continuous head's mean action
    #: (a mixture's Σ_k π_k μ_k)
    primitive_sampling: str = "sample"
    include_step_count: bool = False
    max_abstract_steps: int = 100  # normalises the optional step-count feature
    controller_gain: float = 1.0  # ê = e + gain * U(z) e; 1 is the paper's controller
    #: torch CPU threads inside the engine's calls, restored after each; ``None`` leaves torch's
    #: setting alone. One by default: its calls are small (a batch-1 Linear(128, 512) took 13 µs
    #: with one thread and 7.8 ms with two on a busy 2-core machine), and more threads only add
    #: synchronisation (benchmarks/internal_control_speed.py measures both).
    torch_threads: int | None = 1

    def validate(self) -> None:
        if self.action_scale <= 0:
            raise ValueError(f"action_scale must be > 0, got {self.action_scale}.")
        if not (np.isfinite(self.controller_gain) and self.controller_gain > 0):
            raise ValueError(
                f"controller_gain must be a finite number > 0, got {self.controller_gain}."
            )
        if self.max_primitive_steps < 1:
            raise ValueError(f"max_primitive_steps must be >= 1, got {self.max_primitive_steps}.")
        if not 0.0 < self.beta_threshold <= 1.0:
            raise ValueError(f"beta_threshold must be in (0, 1], got {self.beta_threshold}.")
        if self.primitive_sampling not in PRIMITIVE_SAMPLING:
            raise ValueError(
                f"primitive_sampling must be one of {PRIMITIVE_SAMPLING}, got "
                f"{self.primitive_sampling!r}."
            )
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ValueError(
                f"torch_threads must be >= 1 or None (leave torch's setting), got "
                f"{self.torch_threads}."
            )


class _TorchThreads:
    """``with _TorchThreads(n):`` runs the block with ``n`` torch CPU threads (``None``:
    unchanged), then restores torch's setting. (A class, not a decorated generator: mutmut
    leaves decorated functions unmutated, and benchmarks/mutation_testing.py mutates this.)"""

    def __init__(self, n: int | None) -> None:
        self.n = n
        self.before: int | None = None  # the setting to restore; None: nothing was changed

    def __enter__(self) -> None:
        before = torch.get_num_threads()
        if self.n is not None and self.n != before:
            torch.set_num_threads(self.n)
            self.before = before

    def __exit__(self, *exc) -> None:
        if self.before is not None:
            torch.set_num_threads(self.before)
            self.before = None


@dataclass
class AbstractStepResult:
    """What one row's abstract step produced."""

    obs: np.ndarray
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any] = field(default_factory=dict)


class InternalControlCore:
    """Batched engine: N task envs, one frozen base model, one frozen metacontroller.

    Rows are independent episodes. Each row has its own task env and its own random generator for
    sampling primitive actions, so a row behaves identically whether it runs alone or in a batch.
    """

    def __init__(
        self,
        envs: Sequence[gym.Env],
        base_model: torch.nn.Module,
        metacontroller: torch.nn.Module,
        options: ControlOptions | None = None,
    ) -> None:
        self.options = options or ControlOptions()
        self.options.validate()
        self.envs = list(envs)
        self.base, self.meta = base_model, metacontroller
        # Oracle mode: ground-truth subgoal controllers act instead of a metacontroller; the
        # action is a subgoal index and an abstract step ends when the true subgoal changes.
        self.oracle = hasattr(metacontroller, "n_subgoals")
        # A metacontroller with categorical codes: the action picks one of its n_z codes.
        self.categorical = bool(getattr(metacontroller, "discrete_codes", False))
        check_shapes(metacontroller, base_model)  # the loaders also check the fingerprint
        self.layer = int(metacontroller.layer)
        self.n = len(self.envs)
        self.n_z = 1 if self.oracle else int(metacontroller.n_z)
        self.device = base_model.device
        obs_dim = self.envs[0].observation_space.shape
        if obs_dim is None or len(obs_dim) != 1 or obs_dim[0] != base_model.obs_dim:
            raise ValueError(
                f"The task env's observations have shape {obs_dim}, but the base model expects "
                f"({base_model.obs_dim},): it was trained on a different environment."
            )
        self.discrete = isinstance(self.envs[0].action_space, spaces.Discrete)
        if self.discrete and self.options.primitive_sampling == "mean":
            raise ValueError(
                "primitive_sampling='mean' averages a continuous action head; the task env's "
                "actions are discrete: use 'greedy' for the most probable action."
            )
        self.state = base_model.init_state(self.n)
        if self.oracle:  # no switching unit: h is unused, z holds the subgoal index
            self.h = torch.zeros(self.n, 1, device=self.device)
            self.z = torch.zeros(self.n, 1, device=self.device)
        else:
            self.h, self.z = metacontroller.initial_state(self.n, self.device)
        #: each row's true subgoal after its last primitive step (oracle switching)
        self.subgoal = np.full(self.n, -1, dtype=np.int64)
        self.e = torch.zeros(self.n, base_model.d_model, device=self.device)
        self.rngs = [np.random.default_rng(i) for i in range(self.n)]
        self.abstract_steps = np.zeros(self.n, dtype=np.int64)

    @property
    def index_actions(self) -> bool:
        """Whether an action is an index (the oracle's subgoal, a categorical code)."""
        return self.oracle or self.categorical

    @property
    def n_actions(self) -> int:
        """For index actions, how many there are (subgoals, or categorical codes); else 0."""
        if self.oracle:
            return int(self.meta.n_subgoals)
        return int(self.meta.n_z) if self.categorical else 0

    # --- observations ----------------------------------------------------------------------
    @property
    def obs_dim(self) -> int:
        return int(self.base.d_model) + int(self.options.include_step_count)

    def _observe(self, rows: Sequence[int]) -> np.ndarray:
        """The observations (len(rows), obs_dim) of ``rows``, read from the device at once."""
        r = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=self.device)
        e = self.e[r].float().cpu().numpy().astype(np.float32, copy=False)
        if self.options.include_step_count:
            frac = self.abstract_steps[np.asarray(rows)] / self.options.max_abstract_steps
            e = np.concatenate([e, frac.astype(np.float32)[:, None]], axis=1)
        return e

    def _update_history(self, e: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """h_t = GRU(e_t, h_{t-1}): the metacontroller's one-step update, through
        ``torch.gru_cell`` for its one-layer GRU (the same values, less per-call overhead)."""
        gru = getattr(self.meta, "history", None)
        if (
            isinstance(gru, torch.nn.GRU)
            and gru.num_layers == 1
            and gru.bias
            and not gru.bidirectional
            and not gru.proj_size
            and e.dtype == h.dtype == gru.weight_ih_l0.dtype
        ):
            return torch.gru_cell(
                e, h, gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0
            )
        return self.meta.update_history(e, h)

    def _lower(self, obs: np.ndarray, rows: torch.Tensor) -> torch.Tensor:
        """Embed the new observations ``obs`` (len(rows), obs_dim) of ``rows`` and run the
        frozen layers below ``l`` for those rows only; returns their ``e_l``."""
        x = torch.as_tensor(obs, dtype=self.base.dtype, device=self.device)
        return self.base.step_layers(self.base.embed(x), self.state, 0, self.layer, rows=rows)

    # --- episodes --------------------------------------------------------------------------
    def reset_rows(
        self,
        rows: Sequence[int],
        seeds: Sequence[int | None] | None = None,
        options: Sequence[dict | None] | None = None,
    ) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
        """Start new episodes in ``rows``; returns their observations and infos."""
        with _TorchThreads(self.options.torch_threads), torch.inference_mode():
            return self._reset_rows(rows, seeds, options)

    def _reset_rows(self, rows, seeds, options) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
        rows = list(rows)
        seeds = list(seeds) if seeds is not None else [None] * len(rows)
        options = list(options) if options is not None else [None] * len(rows)
        obs = np.zeros((len(rows), self.base.obs_dim), dtype=np.float32)
        infos = []
        for j, (i, seed, opt) in enumerate(zip(rows, seeds, options)):
            o, info = self.envs[i].reset(seed=seed, options=opt)
            obs[j] = o
            infos.append(info)
            if self.oracle:
                if "subgoal" not in info:
                    raise ValueError(
                        f"The oracle switches when the task env's info['subgoal'] changes, but "
                        f"{self.envs[i].spec.id if self.envs[i].spec else self.envs[i]} reports "
                        "no 'subgoal'; use GridPinpad-v0 or AntPinpad-v0."
                    )
                self.subgoal[i] = int(info["subgoal"])
            # The row's sampling generator follows the task env's own seeded generator, so
            # a seeded reset fixes the whole episode.
            self.rngs[i] = np.random.default_rng(self.envs[i].np_random.integers(2**63))
        mask = torch.zeros(self.n, dtype=torch.bool, device=self.device)
        mask[rows] = True
        self.base.reset_state(self.state, mask)
        self.h[mask] = 0.0
        self.z[mask] = 0.0
        self.abstract_steps[rows] = 0
        r = torch.as_tensor(rows, dtype=torch.long, device=self.device)
        self.e[r] = self._lower(obs, r)
        return list(self._observe(rows)), infos

    def check_action(self, action: Any) -> np.ndarray:
        """A (n_z,) float array from one row's action (oracle: a (1,) subgoal index), or a
        clear error."""
        if self.index_actions:
            what = "subgoal index" if self.oracle else "code index"
            a = np.asarray(action)
            if a.size != 1 or not np.issubdtype(a.dtype, np.number):
                raise ValueError(
                    f"InternalControl expects one {what} in 0..{self.n_actions - 1}, got "
                    f"{action!r}. Use env.action_space.sample() for an example."
                )
            v = float(a.reshape(-1)[0])
            if not (v.is_integer() and 0 <= v < self.n_actions):
                raise ValueError(
                    f"The {what} {action!r} is not an integer in 0..{self.n_actions - 1}."
                )
            return np.array([v])
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (self.n_z,):
            raise ValueError(
                f"InternalControl expects a controller code of shape ({self.n_z},), got "
                f"{a.shape}. Use env.action_space.sample() for an example."
            )
        if not np.all(np.isfinite(a)):
            raise ValueError(f"The controller code contains NaN or inf: {action!r}.")
        return a

    def _sample_primitive(self, head, rows: np.ndarray) -> dict[int, Any]:
        """One primitive action per row from the base model's action head, whose j-th row
        belongs to env ``rows[j]`` (each env samples with its own generator)."""
        out: dict[int, Any] = {}
        mode = self.options.primitive_sampling
        greedy = mode == "greedy"
        if self.discrete:
            chosen = self._categorical(head.action_logits, rows, greedy)
            out = {int(i): int(a) for i, a in zip(rows, chosen)}
        else:
            mean = head.action_mean.float().cpu().numpy()
            std = head.action_log_std.float().exp().cpu().numpy()
            if mode == "mean":  # the whole head's mean: no component to pick, no noise
                mean = head.expected_action().float().cpu().numpy()
            elif head.action_mix_logits is not None:  # a mixture head: each row's component first
                k = self._categorical(head.action_mix_logits, rows, greedy)
                mean, std = mean[np.arange(len(k)), k], std[np.arange(len(k)), k]
            for j, i in enumerate(rows):
                space = self.envs[i].action_space
                a = (
                    mean[j]
                    if mode != "sample"
                    else mean[j] + std[j] * self.rngs[i].standard_normal(len(mean[j]))
                )
                # documented: sampled torques are clipped to the task env's bounds
                out[int(i)] = np.clip(a, space.low, space.high).astype(space.dtype)
        return out

    def _categorical(self, logits: torch.Tensor, rows: np.ndarray, greedy: bool) -> np.ndarray:
        """One index per row from ``logits`` (rows, K): the argmax if ``greedy``, else drawn by
        inverse CDF with each row's own generator."""
        probs = torch.softmax(logits.float(), -1).cpu().numpy()
        if greedy:
            return probs.argmax(-1)
        u = np.array([self.rngs[i].random() for i in rows])[:, None]
        cdf = np.cumsum(probs, -1)
        return np.minimum((cdf < u * cdf[:, -1:]).sum(-1), probs.shape[-1] - 1)

    def step_rows(self, actions: dict[int, np.ndarray]) -> dict[int, AbstractStepResult]:
        """Run one abstract step in each given row (row -> action). Rows move in lockstep, one
        batched base-model call per primitive step for the rows still running; a row stops
        when its gate fires (β ≥ threshold), its episode ends or it reaches the step cap."""
        # inference mode here, not as _step_rows' decorator: mutmut skips decorated functions
        with _TorchThreads(self.options.torch_threads), torch.inference_mode():
            return self._step_rows(actions)

    def _step_rows(self, actions: dict[int, np.ndarray]) -> dict[int, AbstractStepResult]:
        opts = self.options
        rows = sorted(actions)
        z_new = self.z.clone()
        r_all = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=self.device)
        a = np.stack([actions[i] for i in rows])
        if self.categorical:  # the code's one-hot vector
            z_new[r_all] = 0.0
            z_new[r_all, torch.as_tensor(a[:, 0].astype(np.int64), device=self.device)] = 1.0
        else:  # the oracle's subgoal index, or z = action_scale * action
            scale = 1.0 if self.oracle else opts.action_scale
            z_new[r_all] = torch.as_tensor(scale * a, dtype=z_new.dtype, device=self.device)
        start_subgoal = self.subgoal.copy()
        self.z = z_new
        reward = dict.fromkeys(rows, 0.0)
        betas: dict[int, list[float]] = {i: [] for i in rows}
        prims: dict[int, list[Any]] = {i: [] for i in rows}
        visited: dict[int, list[int]] = {i: [] for i in rows}
        results: dict[int, AbstractStepResult] = {}
        last_info: dict[int, dict] = {}
        # Only the rows still inside their abstract step compute: the lockstep batch shrinks as
        # gates fire. The working set (e, h, z, U of those rows) stays gathered between
        # primitive steps and is written back to the batch state as rows leave it.
        idx = np.asarray(rows, dtype=np.int64)
        r = torch.as_tensor(idx, device=self.device)
        e, h, z = self.e[r], self.h[r], self.z[r]
        # z is held for the whole abstract step: decode it once
        u = self.meta.decode(z[:, 0] if self.oracle else z, self.options.controller_gain)
        while idx.size:
            e_hat = self.meta.apply_controller(e, u)
            top = self.base.step_layers(e_hat, self.state, self.layer, self.base.n_layers, rows=r)
            head = self.base.heads(top, predict_obs=False)
            primitive = self._sample_primitive(head, idx)
            obs = np.zeros((idx.size, self.base.obs_dim), dtype=np.float32)
            ended = np.zeros(idx.size, dtype=bool)
            for j, i in enumerate(idx):
                o, rew, term, trunc, info = self.envs[i].step(primitive[i])
                obs[j] = o
                reward[i] += float(rew)
                prims[i].append(primitive[i])
                if info.get("visited", -1) >= 0:
                    visited[i].append(int(info["visited"]))
                if "subgoal" in info:
                    self.subgoal[i] = int(info["subgoal"])
                last_info[i] = info
                if term or trunc:
                    ended[j] = True
                    results[i] = AbstractStepResult(None, 0.0, bool(term), bool(trunc))
            # h_t = GRU(e_t, h_{t-1}) for the step just taken, then e_{t+1} from the new obs.
            e_prev, e = e, self._lower(obs, r)
            if self.oracle:  # the true subgoal changed: the abstract action is done
                beta = (self.subgoal[idx] != start_subgoal[idx]).astype(np.float64)
            else:
                h = self._update_history(e_prev, h)
                beta = self.meta.switch(e, h, z).float().cpu().numpy()
            keep = ~ended
            for j in range(idx.size):  # β after every primitive step, the last one included
                betas[int(idx[j])].append(float(beta[j]))
            for j in np.flatnonzero(keep):
                i = int(idx[j])
                if beta[j] >= opts.beta_threshold or len(prims[i]) >= opts.max_primitive_steps:
                    results[i] = AbstractStepResult(None, 0.0, False, False)
                    keep[j] = False
            if not keep.all():
                self.e[r], self.h[r] = e, h
                k = torch.as_tensor(np.flatnonzero(keep), device=self.device)
                idx, r = idx[keep], r[k]
                e, h, z = e[k], h[k], z[k]
                u = tuple(x[k] for x in u) if isinstance(u, tuple) else u[k]
        self.abstract_steps[rows] += 1
        for i, obs_i in zip(rows, self._observe(rows)):
            res = results[i]
            res.obs = obs_i
            res.reward = reward[i]
            info = dict(last_info[i])
            info.update(
                primitive_steps=len(prims[i]),
                beta=betas[i],
                primitive_actions=prims[i],
                visited_colours=visited[i],
                success=bool(last_info[i].get("success", False)),
                is_success=bool(last_info[i].get("success", False)),
                abstract_steps=int(self.abstract_steps[i]),
            )
            res.info = info
        return results
