"""A natively vectorised GridPinpad: N envs stepped together with numpy array operations.

``gym.make_vec("GridPinpad-v0", num_envs=N)`` builds it (the id's ``vector_entry_point``); pass
``vectorization_mode="sync"`` for a :class:`~gymnasium.vector.SyncVectorEnv` of N single envs.
Its layouts come from the batched sampler in :mod:`~internal_rl_gym.envs.grid_layouts`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

import numpy as np
from gymnasium import logger
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from internal_rl_gym.envs import grid_core
from internal_rl_gym.envs.grid_layouts import (  # re-exported: they lived here before
    free_components,
    sample_solvable_layouts,
    solvable_layouts,
)
from internal_rl_gym.envs.grid_pinpad import GridPinpadEnv
from internal_rl_gym.tasks import GRID_N_COLOURS, GRID_N_WALLS, GRID_SIZE, TaskSampler, format_task

__all__ = ["GridPinpadVectorEnv", "free_components", "sample_solvable_layouts", "solvable_layouts"]

_WALL = -2  # cell codes: -2 wall, -1 empty, i >= 0 colour i
_EMPTY = -1
_POOL_CHUNK = 1024  # layouts sampled per batch for autoresets (amortises numpy call overhead)


class GridPinpadVectorEnv(VectorEnv):
    """``num_envs`` GridPinpad envs in one set of numpy arrays (all envs step in one array op).

    ## Description
    The same environment as :class:`~internal_rl_gym.envs.grid_pinpad.GridPinpadEnv` (the
    gridworld-pinpad of Kobayashi et al., arXiv 2512.20605, §A.1), batched: one ``step`` moves all
    ``num_envs`` agents with a handful of array operations instead of a Python loop over N envs.
    Dynamics, spaces, rewards, episode ends and ``info`` keys are those of the single env (a test
    replays every vector step in single envs built from the vector env's layouts). Build it with
    ``gym.make_vec("GridPinpad-v0", num_envs=N)`` (the default ``vectorization_mode`` for this id)
    or ``vectorization_mode="vector_entry_point"``; env keyword arguments go to ``make_vec`` as
    for ``gym.make``.

    The current state is readable as arrays: ``walls`` (N, n_walls), ``colours`` (N, n_colours),
    ``agent``, ``progress``, ``steps`` (N,) and ``tasks`` (N tuples).

    ## Action Space
    ``MultiDiscrete([4] * num_envs)``: one action per env, 0 = up, 1 = right, 2 = down, 3 = left
    (``single_action_space`` is ``Discrete(4)``). Actions must be integers (integer-valued floats
    are accepted) of shape ``(num_envs,)``; anything else raises a ``ValueError`` that says what
    was wrong.

    ## Observation Space
    ``Box(0, 1, (num_envs, size*size*C), float32)``, row ``i`` being env ``i``'s observation of the
    single env (``C = n_walls + n_colours + 1`` channels per cell: walls, colours, agent).

    ## Rewards
    1.0 on the step that completes an env's task, 0.0 otherwise; ``float64`` array of shape (N,).

    ## Starting State
    Each env's task is drawn from its task set and its layout uniformly among layouts on which the
    task is solvable, as in the single env. Layouts are drawn in batches from the vector env's
    own generator (``reset(seed=s)`` reseeds it), so a seed fixes all N envs' episodes, but env
    ``i`` does not get the layouts of a single env seeded ``s + i``. ``reset(options=...)`` takes
    the single env's options: ``{"task": ...}`` for the envs reset by that call and
    ``{"layout": {"walls": ..., "colours": ..., "agent": ...}}`` with either one layout for all
    envs or arrays with a leading axis of one layout per env reset. ``{"reset_mask": mask}`` (a
    bool array of shape (N,)) resets only the envs where ``mask`` is True.

    ## Episode End
    Per env, as in the single env: termination on success (reward 1) or on a wrong colour (unless
    ``terminate_on_wrong_colour=False``), truncation after ``max_steps`` steps. Finished envs are
    reset automatically according to ``autoreset_mode`` (``metadata["autoreset_mode"]``):

    * ``NEXT_STEP`` (default, as ``SyncVectorEnv``): the step after an env's episode ended ignores
      its action and returns the first observation of a new episode, reward 0, not terminated,
      not truncated, and the reset ``info``.
    * ``SAME_STEP``: the step that ends an episode returns the new episode's first observation;
      the last one is in ``info["final_obs"]`` and its info in ``info["final_info"]``.
    * ``DISABLED``: stepping an env whose episode ended raises; reset it with
      ``reset(options={"reset_mask": mask})``.

    ``info`` holds the single env's keys (``success``, ``is_success``, ``target``, ``subgoal``,
    ``progress``, ``task``, ``visited``) as arrays of shape (N,), each with a ``_key`` mask of
    the envs it is set for, the format of ``SyncVectorEnv``.

    ## Arguments
    * ``num_envs``: the number of envs N.
    * ``task``, ``size``, ``n_colours``, ``n_walls``, ``max_steps``, ``render_mode``,
      ``terminate_on_wrong_colour``: as for the single env; all N envs share them.
    * ``autoreset_mode``: an :class:`~gymnasium.vector.AutoresetMode` or its value
      (``"NextStep"``, ``"SameStep"``, ``"Disabled"``).

    ``render()`` returns a tuple of N frames (``"rgb_array"``) or strings (``"ansi"``).

    ## Version History
    * v0: initial release.
    """

    metadata: dict[str, Any] = {
        "render_modes": ["rgb_array", "ansi"],
        "render_fps": 4,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        num_envs: int = 1,
        task: str | Sequence[int] = "post",
        size: int = GRID_SIZE,
        n_colours: int = GRID_N_COLOURS,
        n_walls: int = GRID_N_WALLS,
        max_steps: int = 100,
        render_mode: str | None = None,
        terminate_on_wrong_colour: bool = True,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)):
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}.")
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}.")
        try:
            mode = AutoresetMode(autoreset_mode)
        except ValueError:
            raise ValueError(
                f"autoreset_mode={autoreset_mode!r} is unknown; use one of "
                f"{[m.value for m in AutoresetMode]} or gymnasium.vector.AutoresetMode."
            ) from None
        # The single env validates the arguments, resolves tasks and layouts and renders frames.
        self._single = GridPinpadEnv(
            task, size, n_colours, n_walls, max_steps, render_mode, terminate_on_wrong_colour
        )
        self.num_envs = int(num_envs)
        self.size, self.n_colours, self.n_walls = size, n_colours, n_walls
        self.max_steps = max_steps
        self.render_mode = render_mode
        self.terminate_on_wrong_colour = bool(terminate_on_wrong_colour)
        self.autoreset_mode = mode
        self.metadata = {**type(self).metadata, "autoreset_mode": mode}
        self.task_sampler: TaskSampler = self._single.task_sampler
        self.single_observation_space = self._single.observation_space
        self.single_action_space = self._single.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

        n, cells = self.num_envs, size * size
        self.n_channels = grid_core.n_channels(n_walls, n_colours)
        self._cells = cells
        self._rows = np.arange(n)
        self._cell_offset = self._rows * cells
        self._obs_offset = self._rows * (cells * self.n_channels) + self.n_channels - 1
        self._move = np.ascontiguousarray(grid_core.move_table(size)).reshape(-1)  # a*cells+cell
        self.walls = np.zeros((n, n_walls), dtype=np.int64)
        self.colours = np.zeros((n, n_colours), dtype=np.int64)
        self.agent = np.zeros(n, dtype=np.int64)
        self.progress = np.zeros(n, dtype=np.int64)
        self.steps = np.zeros(n, dtype=np.int64)
        self._table = _TaskTable.of(self.task_sampler)  # the default task set as arrays
        self._task_tuples = np.empty(n, dtype=object)
        self._task_tuples[:] = [self.task_sampler.tasks[0]] * n
        self._task_len = np.ones(n, dtype=np.int64)
        self._targets = np.full((n, 1), -1, dtype=np.int64)  # (N, K+1), -1 after the last colour
        self._task_names = np.full(n, "", dtype=object)
        self._code = np.full((n, cells), _EMPTY, dtype=np.int64)  # per cell: wall/empty/colour
        self._obs = np.zeros((n, cells * self.n_channels), dtype=np.float32)
        self._success = np.zeros(n, dtype=bool)
        self._visited = np.full(n, -1, dtype=np.int64)
        self._ended = np.zeros(n, dtype=bool)  # episode ended, not yet reset
        self._pool: dict[str, np.ndarray] | None = None
        self._pool_next = 0
        self._started = False

    # --- gymnasium API ---------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset all envs (or those of ``options["reset_mask"]``); see the class docstring."""
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ValueError(
                f"GridPinpadVectorEnv.reset takes one integer seed for all envs (they share one "
                f"generator), got {seed!r}. Pass seed=<int>; for per-env seeds use "
                "gym.make_vec(..., vectorization_mode='sync')."
            )
        super().reset(seed=seed)
        if seed is not None:
            self._pool = None  # layouts drawn under the previous seed must not leak into this one
        options = dict(options or {})
        unknown = set(options) - {"task", "layout", "reset_mask"}
        if unknown:
            raise ValueError(
                f"Unknown reset option(s) {sorted(unknown)}; GridPinpadVectorEnv accepts 'task', "
                "'layout' and 'reset_mask'."
            )
        if "reset_mask" in options:
            idx = np.flatnonzero(self._check_mask(options["reset_mask"]))
            if not self._started and len(idx) < self.num_envs:
                raise RuntimeError(
                    "Call reset() without reset_mask first: every env needs an episode before a "
                    "partial reset."
                )
        else:
            idx = self._rows
        self._reset_envs(idx, options.get("task"), options.get("layout"))
        self._started = True
        info = self._info(idx if len(idx) < self.num_envs else None)
        return self._obs.copy(), info

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every env with its action (``actions`` of shape (N,), ints in 0..3)."""
        if not self._started:
            raise RuntimeError("Call reset() before step().")
        a = self._check_actions(actions)
        ended = self._ended
        if self.autoreset_mode is AutoresetMode.DISABLED and ended.any():
            raise RuntimeError(
                f"Env(s) {np.flatnonzero(ended).tolist()} ended their episode and "
                "autoreset_mode is DISABLED: reset them with "
                "reset(options={'reset_mask': mask}) before stepping."
            )
        autoreset = (
            np.flatnonzero(ended) if self.autoreset_mode is AutoresetMode.NEXT_STEP else None
        )

        # --- one step of every env (envs about to be reset are overwritten below) ---
        old = self.agent
        nxt = self._move[a * self._cells + old]
        code = self._code.reshape(-1)[self._cell_offset + nxt]
        bumped = code == _WALL
        nxt = np.where(bumped, old, nxt)
        moved = nxt != old
        visited = np.where(moved & (code >= 0), code, -1)
        target = self._targets.reshape(-1)[self._rows * self._targets.shape[1] + self.progress]
        entered = visited >= 0
        hit = entered & (visited == target)
        self.progress = self.progress + hit
        success = self.progress == self._task_len
        terminated = success.copy()
        if self.terminate_on_wrong_colour:
            terminated |= entered & ~hit
        self.steps = self.steps + 1
        truncated = ~terminated & (self.steps >= self.max_steps)
        rewards = success.astype(np.float64)
        obs_flat = self._obs.reshape(-1)
        obs_flat[self._obs_offset + old * self.n_channels] = 0.0
        obs_flat[self._obs_offset + nxt * self.n_channels] = 1.0
        self.agent = nxt
        self._success = success
        self._visited = visited

        infos: dict[str, Any] = {}
        done = terminated | truncated
        if autoreset is not None and len(autoreset):
            self._reset_envs(autoreset, None, None)
            rewards[autoreset] = 0.0
            terminated[autoreset] = False
            truncated[autoreset] = False
            done[autoreset] = False
        elif self.autoreset_mode is AutoresetMode.SAME_STEP and done.any():
            finished = np.flatnonzero(done)
            final_obs = np.full(self.num_envs, None, dtype=object)
            for i in finished:
                final_obs[i] = self._obs[i].copy()
            mask = done.copy()
            infos["final_obs"], infos["_final_obs"] = final_obs, mask
            infos["final_info"], infos["_final_info"] = self._info(finished), mask.copy()
            self._reset_envs(finished, None, None)
        if self.autoreset_mode is AutoresetMode.SAME_STEP:
            done[:] = False  # the finished envs were reset above
        self._ended = done
        infos.update(self._info())
        return self._obs.copy(), rewards, terminated, truncated, infos

    def render(self) -> tuple[np.ndarray, ...] | tuple[str, ...] | None:
        """The N envs' frames (``"rgb_array"``) or texts (``"ansi"``), like ``SyncVectorEnv``."""
        if self.render_mode is None:
            logger.warn(
                "render() called without a render_mode; pass render_mode='rgb_array' or 'ansi' "
                "to gym.make_vec."
            )
            return None
        if not self._started:
            raise RuntimeError("Call reset() before render().")
        draw = (
            GridPinpadEnv._render_ansi if self.render_mode == "ansi" else GridPinpadEnv._render_rgb
        )
        return tuple(draw(self._view(i)) for i in range(self.num_envs))

    # --- helpers ---------------------------------------------------------------------------
    def _view(self, i: int) -> SimpleNamespace:
        """Env ``i``'s state with the attribute names of the single env (for its renderers)."""
        return SimpleNamespace(
            size=self.size,
            walls=self.walls[i],
            colours=self.colours[i],
            agent=int(self.agent[i]),
            task=self.tasks[i],
            progress=int(self.progress[i]),
            steps=int(self.steps[i]),
        )

    def _check_actions(self, actions: Any) -> np.ndarray:
        n = self.num_envs
        if (
            type(actions) is np.ndarray
            and actions.dtype.kind in "iu"
            and actions.shape == (n,)
            and actions.min() >= 0
            and actions.max() < grid_core.N_ACTIONS
        ):
            return actions.astype(np.int64, copy=False)  # fast path
        hint = f"one integer in 0..3 (0 up, 1 right, 2 down, 3 left) per env, shape ({n},)"
        try:
            arr = np.asarray(actions)
        except (TypeError, ValueError) as err:
            raise ValueError(f"GridPinpad vector env expects actions as {hint}: {err}") from None
        if arr.shape == (n, 1):
            arr = arr[:, 0]
        if arr.shape != (n,):
            raise ValueError(
                f"GridPinpad vector env got actions of shape {arr.shape}; expected {hint}. "
                f"For num_envs={n}, pass e.g. envs.action_space.sample()."
            )
        if arr.dtype.kind == "f":
            bad = np.flatnonzero(~np.isfinite(arr))
            if len(bad):
                raise ValueError(
                    f"GridPinpad vector env got non-finite actions for env(s) {bad.tolist()}: "
                    f"{arr[bad].tolist()}; expected {hint}. Check the policy for NaN outputs."
                )
            frac = np.flatnonzero(arr != np.round(arr))
            if len(frac):
                raise ValueError(
                    f"GridPinpad vector env got non-integer actions for env(s) {frac.tolist()}: "
                    f"{arr[frac].tolist()}; expected {hint}."
                )
            arr = arr.astype(np.int64)
        elif arr.dtype.kind not in "iu":
            raise ValueError(
                f"GridPinpad vector env got actions of dtype {arr.dtype}; expected {hint}."
            )
        bad = np.flatnonzero((arr < 0) | (arr >= grid_core.N_ACTIONS))
        if len(bad):
            raise ValueError(
                f"GridPinpad vector env got out-of-range actions for env(s) {bad.tolist()}: "
                f"{arr[bad].tolist()}; use 0 up, 1 right, 2 down, 3 left."
            )
        return arr.astype(np.int64, copy=False)

    def _check_mask(self, mask: Any) -> np.ndarray:
        if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
            raise ValueError(
                "options['reset_mask'] must be a numpy bool array of shape "
                f"({self.num_envs},), got {type(mask).__name__} "
                f"{getattr(mask, 'dtype', '')}; e.g. np.array([True, False, ...])."
            )
        if mask.shape != (self.num_envs,):
            raise ValueError(
                f"options['reset_mask'] must have shape ({self.num_envs},), got {mask.shape}."
            )
        if not mask.any():
            raise ValueError("options['reset_mask'] resets no env: set at least one True.")
        return mask

    def _reset_envs(self, idx: np.ndarray, task: Any, layout: Any) -> None:
        """New episodes for envs ``idx``: tasks, layouts, counters and observations."""
        m = len(idx)
        rng = self.np_random
        table = self._table if task is None else _TaskTable.of(self._single._resolve(task))
        if layout is not None:
            walls, colours, agent = self._check_layouts(layout, m)
            choice = table.draw(rng, m)
        elif task is not None:
            choice = table.draw(rng, m)
            walls, colours, agent = sample_solvable_layouts(
                rng, table.targets[choice], self.size, self.n_walls, self.n_colours
            )
        else:
            choice, walls, colours, agent = self._draw_from_pool(m)

        k = table.targets.shape[1] + 1  # room for the -1 after the last colour
        if k > self._targets.shape[1]:  # a longer task than any so far: widen the padding
            wider = np.full((self.num_envs, k), -1, dtype=np.int64)
            wider[:, : self._targets.shape[1]] = self._targets
            self._targets = wider
        self._targets[idx] = -1
        self._targets[idx, : k - 1] = table.targets[choice]
        self._task_len[idx] = table.lengths[choice]
        self._task_tuples[idx] = table.tuples[choice]
        self._task_names[idx] = table.names[choice]

        self.walls[idx], self.colours[idx], self.agent[idx] = walls, colours, agent
        code = np.full((m, self._cells), _EMPTY, dtype=np.int64)
        rows = np.arange(m)[:, None]
        code[rows, walls] = _WALL
        code[rows, colours] = np.arange(self.n_colours)
        self._code[idx] = code
        obs = grid_core.static_observations(walls, colours, self.size)
        obs[np.arange(m), agent * self.n_channels + self.n_channels - 1] = 1.0
        self._obs[idx] = obs
        self.progress[idx] = 0
        self.steps[idx] = 0
        self._success[idx] = False
        self._visited[idx] = -1
        self._ended[idx] = False

    @property
    def tasks(self) -> list[tuple[int, ...]]:
        """The task (colour sequence) of each env's current episode."""
        return list(self._task_tuples)

    def _draw_from_pool(self, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``m`` (task index, layout) pairs of the default task set, sampled in batches."""
        pool = self._pool
        if pool is None or len(pool["choice"]) - self._pool_next < m:
            rng = self.np_random
            b = max(m, _POOL_CHUNK, 4 * self.num_envs)
            choice = self._table.draw(rng, b)
            walls, colours, agent = sample_solvable_layouts(
                rng, self._table.targets[choice], self.size, self.n_walls, self.n_colours
            )
            if pool is not None:  # keep the unused rest, in order
                rest = slice(self._pool_next, None)
                choice = np.concatenate([pool["choice"][rest], choice])
                walls = np.concatenate([pool["walls"][rest], walls])
                colours = np.concatenate([pool["colours"][rest], colours])
                agent = np.concatenate([pool["agent"][rest], agent])
            pool = self._pool = {
                "choice": choice,
                "walls": walls,
                "colours": colours,
                "agent": agent,
            }
            self._pool_next = 0
        s = slice(self._pool_next, self._pool_next + m)
        self._pool_next += m
        return pool["choice"][s], pool["walls"][s], pool["colours"][s], pool["agent"][s]

    def _check_layouts(self, layout: Any, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not isinstance(layout, dict):
            raise ValueError(
                "options['layout'] must be a dict with 'walls', 'colours' and 'agent' (one layout "
                "for all envs reset, or arrays with one row per env reset)."
            )
        try:
            walls = np.asarray(layout["walls"], dtype=np.int64)
            colours = np.asarray(layout["colours"], dtype=np.int64)
            agent = np.asarray(layout["agent"], dtype=np.int64)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(
                "options['layout'] must be a dict with 'walls' (cell indices), 'colours' (cell of "
                f"each colour, in colour order) and 'agent' (a cell index): {err}"
            ) from None
        if agent.ndim == 0:  # one layout for every env reset
            walls, colours, agent = (
                np.broadcast_to(walls, (m, *walls.shape)),
                np.broadcast_to(colours, (m, *colours.shape)),
                np.broadcast_to(agent, (m,)),
            )
        if walls.ndim != 2 or colours.ndim != 2 or agent.shape != (m,) or len(walls) != m:
            raise ValueError(
                f"options['layout'] must hold one layout (walls ({self.n_walls},), colours "
                f"({self.n_colours},), agent a cell) or one per env reset: walls ({m}, "
                f"{self.n_walls}), colours ({m}, {self.n_colours}), agent ({m},); got shapes "
                f"{walls.shape}, {colours.shape}, {agent.shape}."
            )
        for i in range(m):
            self._single._check_layout(
                {"walls": walls[i], "colours": colours[i], "agent": int(agent[i])}
            )
        return walls.copy(), colours.copy(), agent.copy()

    def _info(self, idx: np.ndarray | None = None) -> dict[str, Any]:
        """The single env's info keys as arrays (``idx``: only those envs are marked set)."""
        target = self._targets.reshape(-1)[self._rows * self._targets.shape[1] + self.progress]
        values = {
            "success": self._success.copy(),
            "is_success": self._success.copy(),
            "target": target,
            "subgoal": np.where(target >= 0, target // 2, -1),
            "progress": self.progress.copy(),
            "task": self._task_names.copy(),
            "visited": self._visited.copy(),
        }
        info: dict[str, Any] = {}
        if idx is None:
            every = np.ones(self.num_envs, dtype=bool)
            for key, value in values.items():
                info[key], info[f"_{key}"] = value, every.copy()
            return info
        mask = np.zeros(self.num_envs, dtype=bool)
        mask[idx] = True
        for key, value in values.items():  # entries of other envs are unset, as SyncVectorEnv's
            unset = np.full(self.num_envs, None, dtype=object) if key == "task" else 0
            info[key], info[f"_{key}"] = (
                np.where(mask, value, unset).astype(value.dtype),
                mask.copy(),
            )
        return info


@dataclass(frozen=True)
class _TaskTable:
    """A task set as arrays: ``targets`` (T, K) padded with -1, ``lengths``, ``tuples``, ``names``
    (T,), so that the tasks of many envs are drawn and set with array indexing."""

    targets: np.ndarray
    lengths: np.ndarray
    tuples: np.ndarray
    names: np.ndarray

    @staticmethod
    @lru_cache(maxsize=64)
    def of(sampler: TaskSampler) -> _TaskTable:
        tasks = sampler.tasks
        targets = np.full((len(tasks), max(len(t) for t in tasks)), -1, dtype=np.int64)
        for i, t in enumerate(tasks):
            targets[i, : len(t)] = t
        tuples = np.empty(len(tasks), dtype=object)
        tuples[:] = list(tasks)
        names = np.array([format_task(t) for t in tasks], dtype=object)
        return _TaskTable(targets, np.array([len(t) for t in tasks]), tuples, names)

    def draw(self, rng: np.random.Generator, m: int) -> np.ndarray:
        """Indices of ``m`` tasks drawn uniformly (no random numbers used for a single task)."""
        if len(self.lengths) == 1:
            return np.zeros(m, dtype=np.int64)
        return rng.integers(len(self.lengths), size=m)
