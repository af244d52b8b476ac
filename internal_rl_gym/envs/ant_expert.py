"""An AntPinpad expert: a direction-conditioned trot gait driven by a grid planner (paper §C.1.1).

The paper's ant expert is a PPO agent trained on observations augmented with per-cell direction
hints and a velocity reward (:class:`~internal_rl_gym.envs.ant_pinpad.AntPinpadShapedEnv` offers
both). This module uses a different design that the issue allows ("a direction-conditioned
locomotion policy driven by a grid planner") because, on a 2-core CPU:

* it needs no training: the gait has 7 parameters, tuned in minutes by
  ``python -m agents.tune_ant_expert`` in two random searches: :func:`search_walking_gait` (the
  fastest fall-free straight walk; 1500 candidates, 2.5 min) gives a starting point and
  :func:`tune_gait` (60 perturbations x 24 episodes, 2.5 min) refines it for task success. The
  result ships as ``internal_rl_gym/checkpoints/ant-gait-expert/config.json`` (its ``README.md``
  has the exact command), which :class:`AntPinpadExpert` loads (:func:`load_ant_expert_params`;
  the defaults of :class:`GaitParams` and :class:`PlannerParams` equal it). A PPO expert that is
  precise enough for 2 m cells needs 5-10M environment steps (hours) and still missed small cells
  in our prototypes (findings: 7/50 at cell size 2);
* it meets the paper's expert success (0.8 on the pretraining tasks, 0.7 on 0-1-2-3) and its
  behaviour has the same structure the paper relies on: locomotion towards one colour at a time,
  with switches at each visit;
* its variety is controlled: the stochastic mode perturbs the heading, the gait's timing, the
  path among shortest ones and the aim point inside cells, the analogue of sampling from the PPO
  expert's Gaussian (``D``); the deterministic mode is the analogue of its mean (``D*``). Torque
  noise is available but off: it makes the ant stumble (findings: 0.2 drops success to 0.68).

**Planner.** On the grid graph (4-connected cells), walls and every colour other than the current
target are obstacles (stepping on them ends the episode). The next cell is a neighbour of the
ant's cell with the smallest shortest-path distance to the target (``grid_core.distance_maps``);
it is chosen when the ant enters a cell and kept until it leaves it. The ant steers towards an aim
point at the next cell's centre, plus a repulsion from the borders of its current cell that face
an obstacle or the grid's edge (so a turn right after a colour never clips the colour again).

**Gait.** A direction-conditioned trot (a central pattern generator tracked by a PD law); see
:mod:`~internal_rl_gym.envs.ant_gait`, which also holds the first stage of its tuning.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from internal_rl_gym.data import Demonstrations
from internal_rl_gym.envs import grid_core
from internal_rl_gym.envs.ant_gait import (  # re-exported: they lived here before
    WALK_SEARCH_RANGES,
    GaitParams,
    gait_action,
    search_walking_gait,
    walk_speed,
)
from internal_rl_gym.envs.ant_pinpad import DIRECTIONS, AntPinpadEnv
from internal_rl_gym.tasks import format_task


@dataclass(frozen=True)
class PlannerParams:
    """Steering near the borders of the current cell that face an obstacle or the grid's edge.

    Within ``repel_dist`` (a fraction of the cell) of such a border the direction gets a push
    away from it (``repel_gain`` at the border, 0 at ``repel_dist``); within ``recentre_dist`` the
    ant heads for its cell's centre before turning to the next cell (0 disables it; 0.1-0.2 made
    no measurable difference on 320 episodes).
    """

    repel_dist: float = 0.3
    repel_gain: float = 1.5
    recentre_dist: float = 0.0


#: The shipped expert parameters, written by ``python -m agents.tune_ant_expert`` (its
#: ``README.md`` holds the exact command). The dataclass defaults above equal its values (a test
#: checks it), so the expert behaves the same whether or not the file is installed.
ANT_EXPERT_CONFIG = (
    Path(__file__).resolve().parents[1] / "checkpoints" / "ant-gait-expert" / "config.json"
)


def load_ant_expert_params(
    path: str | os.PathLike | None = None,
) -> tuple[GaitParams, PlannerParams]:
    """The gait and planner parameters of a ``config.json`` written by ``agents.tune_ant_expert``.

    ``path=None`` reads the committed :data:`ANT_EXPERT_CONFIG` and falls back to the dataclass
    defaults if it is not there (e.g. a source tree without package data); an explicit ``path``
    must exist. Unknown keys raise, so a config from another version cannot be half-applied.
    """
    if path is None:
        if not ANT_EXPERT_CONFIG.is_file():
            return GaitParams(), PlannerParams()
        path = ANT_EXPERT_CONFIG
    with open(path) as f:
        cfg = json.load(f)
    return _params_from(GaitParams, cfg["gait"]), _params_from(PlannerParams, cfg["planner"])


def _params_from(cls: type, values: Mapping[str, Any]):
    names = {f.name for f in fields(cls)}
    if set(values) != names:
        raise ValueError(
            f"{cls.__name__} in the config has keys {sorted(values)}, expected {sorted(names)}."
        )
    return cls(**{k: float(v) for k, v in values.items()})


class AntPinpadExpert:
    """Gait + planner expert for :class:`AntPinpadEnv` (see the module docstring).

    ``stochastic=False`` (the "mean" expert) is deterministic given the env's state. With
    ``stochastic=True`` it adds, drawn from its own ``seed``:

    * ``heading_noise``: an Ornstein-Uhlenbeck offset of the steering angle (stationary std, rad);
    * ``timing_noise``: the gait frequency is scaled by ``1 + timing_noise * N(0, 1)`` per episode
      and the clock jitters by ``timing_noise * N(0, 1)`` rad per step;
    * ``aim_noise``: the aim point is moved uniformly within ``+- aim_noise * cell_size`` of the
      next cell's centre (drawn at each cell entry);
    * random tie-breaking among shortest paths;
    * ``torque_noise``: Gaussian noise on the torques (default 0: it hurts success a lot).

    >>> import gymnasium as gym, internal_rl_gym
    >>> env = gym.make("AntPinpad-v0", task="pretraining")
    >>> expert = AntPinpadExpert(seed=0)
    >>> obs, info = env.reset(seed=0)
    >>> expert.reset()
    >>> done = False
    >>> while not done:
    ...     obs, r, term, trunc, info = env.step(expert.act(env))
    ...     done = term or trunc
    """

    def __init__(
        self,
        seed: int | None = None,
        stochastic: bool = False,
        heading_noise: float = 0.25,
        timing_noise: float = 0.05,
        aim_noise: float = 0.15,
        torque_noise: float = 0.0,
        gait: GaitParams | None = None,
        planner: PlannerParams | None = None,
    ) -> None:
        for name, v in (
            ("heading_noise", heading_noise),
            ("timing_noise", timing_noise),
            ("aim_noise", aim_noise),
            ("torque_noise", torque_noise),
        ):
            if v < 0:
                raise ValueError(f"{name} must be >= 0, got {v}.")
        self.stochastic = stochastic
        self.heading_noise, self.timing_noise = heading_noise, timing_noise
        self.aim_noise, self.torque_noise = aim_noise, torque_noise
        if gait is None or planner is None:
            shipped_gait, shipped_planner = load_ant_expert_params()
            gait, planner = gait or shipped_gait, planner or shipped_planner
        self.gait, self.planner = gait, planner
        self.rng = np.random.default_rng(seed)
        self.reset()

    def params(self) -> dict[str, Any]:
        """Everything that defines the expert's behaviour (for dataset metadata)."""
        return {
            "expert": "ant-trot-gait+bfs-planner",
            "stochastic": self.stochastic,
            "heading_noise": self.heading_noise,
            "timing_noise": self.timing_noise,
            "aim_noise": self.aim_noise,
            "torque_noise": self.torque_noise,
            "gait": asdict(self.gait),
            "planner": asdict(self.planner),
        }

    def reset(self) -> None:
        """Start a new episode: restart the clock and draw the episode's timing jitter."""
        self.phase = 0.0
        self._freq_scale = 1.0
        self._heading_offset = 0.0
        self._plan_key: tuple | None = None
        self._last_steps = -1
        if self.stochastic:
            self.phase = float(self.rng.uniform(0.0, 2.0 * np.pi))
            self._freq_scale = float(np.clip(1.0 + self.timing_noise * self.rng.normal(), 0.5, 1.5))
            self._heading_offset = float(self.heading_noise * self.rng.normal())

    # --- acting ----------------------------------------------------------------------------
    def act(self, env) -> np.ndarray:
        """The expert's torques (8,) float32 in the env's current state (reads layout and task)."""
        e: AntPinpadEnv = env.unwrapped
        if e.progress >= len(e.task):
            raise RuntimeError("The task is already complete; reset the env.")
        if e.steps <= self._last_steps:
            self.reset()  # a new episode started without reset(): restart the clock
        self._last_steps = e.steps
        direction = self.direction(e)
        u = gait_action(e.data.qpos, e.data.qvel, self.phase, direction, self.gait)
        dphase = 2.0 * np.pi * self.gait.freq * self._freq_scale * e.dt
        if self.stochastic:
            dphase += self.timing_noise * self.rng.normal()
            if self.torque_noise > 0:
                u = np.clip(u + self.torque_noise * self.rng.normal(size=8), -1.0, 1.0)
        self.phase = (self.phase + dphase) % (2.0 * np.pi)
        return u.astype(np.float32)

    def direction(self, e: AntPinpadEnv) -> np.ndarray:
        """World-frame unit vector the ant should walk along now."""
        self._update_plan(e)
        xy = e.data.qpos[:2]
        cell = e.cell
        aim = self._aim
        repel = np.zeros(2)
        if cell >= 0:
            # Borders of the current cell that face an obstacle or the grid's edge: near one,
            # head for the cell's centre first (turning right at a border makes the gait
            # overshoot), and add a repulsion from it.
            offset = (xy - e._centres[cell]) / e.cell_size  # in [-0.5, 0.5]
            r = self.planner.repel_dist
            for k in self._danger_sides:
                gap = 0.5 - float(offset @ DIRECTIONS[k])  # distance to side k, in cells
                if gap < self.planner.recentre_dist:
                    aim = e._centres[cell]
                if gap < r:
                    repel -= self.planner.repel_gain * (r - gap) / r * DIRECTIONS[k]
        to_aim = aim - xy
        d = to_aim / max(np.linalg.norm(to_aim), 1e-6) + repel
        if self.stochastic and self.heading_noise > 0:
            # OU process with correlation time ~10 steps and stationary std heading_noise
            theta = 0.1
            self._heading_offset += (
                -theta * self._heading_offset
                + self.heading_noise * np.sqrt(2 * theta) * self.rng.normal()
            )
            c, s = np.cos(self._heading_offset), np.sin(self._heading_offset)
            d = np.array([c * d[0] - s * d[1], s * d[0] + c * d[1]])
        return d / max(np.linalg.norm(d), 1e-6)

    def _update_plan(self, e: AntPinpadEnv) -> None:
        layout_key = (id(e), e.task, tuple(e.walls), tuple(e.colours))
        if self._plan_key is None or self._plan_key[0] != layout_key:
            targets = np.asarray(e.task, dtype=np.int64)[None]
            self._dist = grid_core.distance_maps(e.walls[None], e.colours[None], targets, e.size)[0]
            self._plan_key = (layout_key, None, None)
        if self._plan_key[1:] == (e.cell, e.progress):
            return
        self._plan_key = (layout_key, e.cell, e.progress)
        target_cell = int(e.colours[e.task[e.progress]])
        move = grid_core.move_table(e.size)
        cell = e.cell
        # obstacles: outside the grid, the wall, other colours (the target is not one)
        blocked = e._is_wall | (e._colour_at >= 0)
        blocked[target_cell] = False
        self._danger_sides = [
            k for k in range(4) if move[k, cell] == cell or blocked[move[k, cell]]
        ]
        dist = self._dist[e.progress]
        options = [
            (int(dist[move[k, cell]]), k)
            for k in range(4)
            if move[k, cell] != cell and not blocked[move[k, cell]]
        ]
        options = [o for o in options if o[0] < grid_core.UNREACHABLE]
        if not options:  # cut off (only possible on unfiltered layouts): stand still-ish
            self._aim = e._centres[cell].copy()
            return
        best = min(o[0] for o in options)
        ties = [k for dd, k in options if dd == best]
        k = ties[int(self.rng.integers(len(ties)))] if self.stochastic else ties[0]
        self._aim = e._centres[move[k, cell]].copy()
        if self.stochastic and self.aim_noise > 0:
            self._aim += self.rng.uniform(-1.0, 1.0, 2) * self.aim_noise * e.cell_size


# --- evaluation and collection --------------------------------------------------------------


def _make_env(task, env_kwargs: dict[str, Any] | None) -> AntPinpadEnv:
    return AntPinpadEnv(task=task, **(env_kwargs or {}))


def run_episode(
    env: AntPinpadEnv, expert: AntPinpadExpert, seed: int | None = None, record: bool = False
) -> dict[str, Any]:
    """One episode; returns success, length, termination and (if ``record``) the arrays."""
    obs, info = env.reset(seed=seed)
    expert.reset()
    observations, actions, targets = [obs], [], []
    done = False
    while not done:
        a = expert.act(env)
        if record:
            targets.append(info["target"])
            actions.append(a)
        obs, _, term, trunc, info = env.step(a)
        if record:
            observations.append(obs)
        done = term or trunc
    out = {
        "success": bool(info["success"]),
        "length": env.steps,
        "termination": info["termination"] or "truncated",
        "task": env.task,
    }
    if record:
        out.update(
            obs=np.asarray(observations, dtype=np.float32),
            actions=np.asarray(actions, dtype=np.float32),
            targets=np.asarray(targets, dtype=np.int64),
        )
    return out


def evaluate_ant_expert(
    task: str | Sequence[int] = "pretraining",
    n_episodes: int = 50,
    seed: int = 0,
    *,
    stochastic: bool = False,
    env_kwargs: dict[str, Any] | None = None,
    **expert_kwargs: Any,
) -> dict[str, Any]:
    """Success rate (and episode statistics) of :class:`AntPinpadExpert` on AntPinpad.

    Episode ``i`` uses reset seed ``seed + i``; the expert's own noise is seeded with ``seed``.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}.")
    env = _make_env(task, env_kwargs)
    expert = AntPinpadExpert(seed=seed, stochastic=stochastic, **expert_kwargs)
    results = [run_episode(env, expert, seed=seed + i) for i in range(n_episodes)]
    env.close()
    success = np.array([r["success"] for r in results])
    lengths = np.array([r["length"] for r in results])
    ends: dict[str, int] = {}
    for r in results:
        ends[r["termination"]] = ends.get(r["termination"], 0) + 1
    rate = float(success.mean())
    return {
        "task": task if isinstance(task, str) else format_task(task),
        "n_episodes": n_episodes,
        "success_rate": rate,
        "stderr": float(np.sqrt(rate * (1 - rate) / n_episodes)),
        "mean_length_success": float(lengths[success].mean()) if success.any() else None,
        "max_length_success": int(lengths[success].max()) if success.any() else None,
        "terminations": dict(sorted(ends.items())),
        "stochastic": stochastic,
        "seed": seed,
        "env_kwargs": dict(env_kwargs or {}),
    }


def collect_ant_demonstrations(
    n_episodes: int,
    task: str | Sequence[int] = "pretraining",
    seed: int = 0,
    stochastic: bool = True,
    *,
    env_id: str = "AntPinpad-v0",
    env_kwargs: dict[str, Any] | None = None,
    max_attempts: int | None = None,
    progress: bool = False,
    **expert_kwargs: Any,
) -> Demonstrations:
    """Collect ``n_episodes`` successful AntPinpad expert episodes (failures are dropped).

    Observations are the sparse env's (float32, never the task); actions are torques (T, 8)
    float32; ``targets``/``subgoals`` are the colour the expert was heading for at each step (for
    the ant the abstract subgoal is the colour). ``stochastic=True`` gives the varied data ``D``
    for base-model pretraining, ``False`` the mean-expert data ``D*``. Stops with a
    ``RuntimeError`` after ``max_attempts`` episodes (default ``4 * n_episodes + 20``).
    ``metadata`` records the env id and kwargs, the expert's parameters and the number dropped.
    ``env_id`` names a registered AntPinpad variant (e.g. ``"AntPinpadRoutes-v0"``): its
    registered kwargs, updated by ``env_kwargs``, build the env.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}.")
    max_attempts = max_attempts or 4 * n_episodes + 20
    spec = gym.spec(env_id)
    if spec.entry_point not in (AntPinpadEnv, "internal_rl_gym.envs.ant_pinpad:AntPinpadEnv"):
        raise ValueError(
            f"{env_id!r} is not an AntPinpad env (its entry point is {spec.entry_point!r}); the "
            "ant expert records AntPinpad-v0, AntPinpadRoutes-v0 or ids registered the same way."
        )
    env_kwargs = {**spec.kwargs, **(env_kwargs or {})}
    env = _make_env(task, env_kwargs)
    expert = AntPinpadExpert(seed=seed, stochastic=stochastic, **expert_kwargs)
    rng = np.random.default_rng(seed)
    episodes: list[dict[str, Any]] = []
    attempts = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_episodes, desc="collect ant", unit="ep")
    t0 = time.perf_counter()
    steps = 0
    while len(episodes) < n_episodes:
        if attempts >= max_attempts:
            raise RuntimeError(
                f"Only {len(episodes)} of {n_episodes} episodes succeeded in {attempts} attempts."
            )
        attempts += 1
        ep = run_episode(env, expert, seed=int(rng.integers(2**63 - 1)), record=True)
        steps += ep["length"]
        if ep["success"]:
            episodes.append(ep)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    env.close()
    width = max(len(ep["task"]) for ep in episodes)
    tasks = np.full((n_episodes, width), -1, dtype=np.int64)
    for i, ep in enumerate(episodes):
        tasks[i, : len(ep["task"])] = ep["task"]
    targets = np.concatenate([ep["targets"] for ep in episodes])
    obs = np.concatenate([ep["obs"] for ep in episodes])
    kwargs = dict(env_kwargs or {})
    return Demonstrations(
        observations=obs,
        actions=np.concatenate([ep["actions"] for ep in episodes]),
        targets=targets,
        subgoals=targets.copy(),
        lengths=np.array([ep["length"] for ep in episodes], dtype=np.int64),
        tasks=tasks,
        obs_dim=obs.shape[1],
        packed=False,
        metadata={
            "env_id": env_id,
            "env_kwargs": kwargs,
            "task": task if isinstance(task, str) else format_task(task),
            "expert_params": expert.params(),
            "action_dim": 8,
            "seed": seed,
            "dropped": attempts - n_episodes,
            "attempts": attempts,
            "env_steps": steps,
            "seconds": round(time.perf_counter() - t0, 2),
        },
    )


# --- tuning, stage 2 (stage 1 is in ant_gait) -----------------------------------------------


def tune_gait(
    n_candidates: int = 200,
    seed: int = 0,
    n_episodes: int = 12,
    task: str | Sequence[int] = "pretraining",
    base: GaitParams | None = None,
    spread: float = 0.15,
    env_kwargs: dict[str, Any] | None = None,
    planner: PlannerParams | None = None,
    decimals: int | None = 3,
    history: list[dict[str, Any]] | None = None,
    verbose: bool = False,
) -> tuple[GaitParams, float]:
    """Stage 2 of the expert's tuning: random search around ``base`` for the best task success.

    Each candidate scales every parameter of ``base`` (default: the shipped gait) by
    ``1 + spread * U(-1, 1)`` (the phase lag is shifted by ``spread * pi * U(-1, 1)``), rounded to
    ``decimals``; it is scored by the deterministic expert's success on ``n_episodes`` episodes
    (reset seeds ``seed..seed + n_episodes - 1``, the same for every candidate) with ``planner``
    (default: the shipped one). ``base`` is scored first and kept unless a candidate is strictly
    better. ``history`` receives one ``{"gait", "success_rate"}`` record per scored gait. Returns
    the best parameters and their success rate (an optimistic estimate: re-evaluate on fresh
    seeds).
    """
    shipped_gait, shipped_planner = load_ant_expert_params()
    base = base or shipped_gait
    planner = planner or shipped_planner
    rng = np.random.default_rng(seed)

    def score(gait: GaitParams) -> float:
        rate = evaluate_ant_expert(
            task, n_episodes, seed, env_kwargs=env_kwargs, gait=gait, planner=planner
        )["success_rate"]
        if history is not None:
            history.append({"gait": asdict(gait), "success_rate": rate})
        return rate

    best = (base, score(base))
    for i in range(n_candidates):
        v = base.as_array()
        v = v * (1.0 + spread * rng.uniform(-1.0, 1.0, len(v)))
        v[4] = base.phase_lag + spread * np.pi * rng.uniform(-1.0, 1.0)
        if decimals is not None:
            v = np.round(v, decimals)
        cand = GaitParams(*(float(x) for x in v))
        rate = score(cand)
        if rate > best[1]:
            best = (cand, rate)
            if verbose:
                print(f"candidate {i}: {rate:.3f} {cand}", flush=True)
    return best


__all__ = [
    "ANT_EXPERT_CONFIG",
    "WALK_SEARCH_RANGES",
    "AntPinpadExpert",
    "GaitParams",
    "PlannerParams",
    "collect_ant_demonstrations",
    "evaluate_ant_expert",
    "gait_action",
    "load_ant_expert_params",
    "run_episode",
    "search_walking_gait",
    "tune_gait",
    "walk_speed",
]
