"""The gridworld-pinpad expert and a batched demonstration collector (paper §C.1.1).

The expert knows the task (privileged information no learner gets). It solves the shortest-path
problem by dynamic programming, treating walls and every non-target colour as obstacles, and acts
*stochastically*: uniformly among all shortest-path actions. With probability ``epsilon`` an action
is replaced by a random non-terminating one (it never steps on a wrong colour); the paper's default
is ``epsilon = 0``.

:func:`collect_grid_demonstrations` runs thousands of episodes as one batch of numpy arrays; its
dynamics are those of :class:`~internal_rl_gym.envs.grid_pinpad.GridPinpadEnv` (a test replays
collected episodes in the env and compares every observation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from internal_rl_gym.data import Demonstrations
from internal_rl_gym.envs import grid_core
from internal_rl_gym.envs.grid_pinpad import GridPinpadEnv
from internal_rl_gym.tasks import (
    GRID_N_COLOURS,
    GRID_N_WALLS,
    GRID_SIZE,
    format_task,
    grid_subgoal_of_colour,
)


class GridPinpadExpert:
    """Stochastic shortest-path expert for one :class:`GridPinpadEnv`.

    >>> import gymnasium as gym, internal_rl_gym
    >>> env = gym.make("GridPinpad-v0", task="pretraining")
    >>> expert = GridPinpadExpert(seed=0)
    >>> obs, info = env.reset(seed=0)
    >>> done = False
    >>> while not done:
    ...     obs, r, term, trunc, info = env.step(expert.act(env))
    ...     done = term or trunc
    >>> info["success"]
    True
    """

    def __init__(self, epsilon: float = 0.0, seed: int | None = None) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}.")
        self.epsilon = epsilon
        self.rng = np.random.default_rng(seed)
        self._cache_key: tuple | None = None

    def act(self, env) -> int:
        """The expert's action in the env's current state (reads the layout and task)."""
        e: GridPinpadEnv = env.unwrapped
        key = (id(e), e.task, tuple(e.walls), tuple(e.colours))
        if key != self._cache_key:
            targets = np.asarray(e.task, dtype=np.int64)[None]
            self._dist = grid_core.distance_maps(e.walls[None], e.colours[None], targets, e.size)[0]
            self._walls_mask = np.zeros((1, e.size * e.size), dtype=bool)
            self._walls_mask[0, e.walls] = True
            self._cache_key = key
        if e.progress >= len(e.task):
            raise RuntimeError("The task is already complete; reset the env.")
        agent = np.array([e.agent])
        values = grid_core.action_values(
            agent, self._dist[e.progress][None], self._walls_mask, e.size
        )
        return int(_choose(values, self.rng, self.epsilon, self._non_terminating(e))[0])

    @staticmethod
    def _non_terminating(e: GridPinpadEnv) -> np.ndarray:
        nxt = grid_core.move_table(e.size)[:, e.agent]
        colour = e._colour_at[nxt]
        moves = nxt != e.agent
        wrong = moves & (colour >= 0) & (colour != e.task[e.progress])
        return ~wrong[None]


def _choose(
    values: np.ndarray, rng: np.random.Generator, epsilon: float, non_terminating: np.ndarray
) -> np.ndarray:
    """Uniform among argmin actions; with prob. epsilon uniform among non-terminating ones.

    Noise can walk the agent into a dead end whose only exit is a wrong colour; then no action
    makes progress and the expert bumps (a non-terminating action) until the horizon.
    """
    lowest = values.min(axis=1, keepdims=True)
    best = np.where(lowest < grid_core.UNREACHABLE, values == lowest, non_terminating)
    keys = rng.random(values.shape)
    action = np.argmax(np.where(best, keys, -1.0), axis=1)
    if epsilon > 0:
        noisy = rng.random(values.shape[0]) < epsilon
        random_action = np.argmax(np.where(non_terminating, rng.random(values.shape), -1.0), axis=1)
        action = np.where(noisy, random_action, action)
    return action


def collect_grid_demonstrations(
    n_episodes: int,
    task: str | Sequence[int] = "pretraining",
    *,
    epsilon: float = 0.0,
    seed: int = 0,
    size: int = GRID_SIZE,
    n_colours: int = GRID_N_COLOURS,
    n_walls: int = GRID_N_WALLS,
    max_steps: int = 100,
    batch_size: int = 4096,
    progress: bool = False,
) -> Demonstrations:
    """Collect ``n_episodes`` successful expert episodes of GridPinpad, batched in numpy.

    Episodes that time out (possible only with ``epsilon > 0``) are dropped and replaced, so the
    dataset holds exactly ``n_episodes`` successes; ``metadata["dropped"]`` counts them.
    Observations are stored bit-packed. Same arguments and seed give the same dataset.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}.")
    env = GridPinpadEnv(task=task, size=size, n_colours=n_colours, n_walls=n_walls)
    sampler = env.task_sampler
    rng = np.random.default_rng(seed)
    parts: list[Demonstrations] = []
    collected, dropped = 0, 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_episodes, desc="collect", unit="ep")
    while collected < n_episodes:
        n = min(batch_size, n_episodes - collected)
        part, n_dropped = _collect_batch(
            rng,
            [sampler.sample(rng) for _ in range(n)],
            size,
            n_colours,
            n_walls,
            max_steps,
            epsilon,
        )
        parts.append(part)
        collected += part.n_episodes
        dropped += n_dropped
        if bar is not None:
            bar.update(part.n_episodes)
    if bar is not None:
        bar.close()
    data = Demonstrations.concatenate(parts)
    data.metadata = {
        "env_id": "GridPinpad-v0",
        "env_kwargs": {
            "size": size,
            "n_colours": n_colours,
            "n_walls": n_walls,
            "max_steps": max_steps,
        },
        "task": task if isinstance(task, str) else format_task(task),
        "expert": "grid-shortest-path",
        "n_actions": grid_core.N_ACTIONS,
        "epsilon": epsilon,
        "seed": seed,
        "dropped": dropped,
    }
    return data


def _collect_batch(
    rng: np.random.Generator,
    tasks: list[tuple[int, ...]],
    size: int,
    n_colours: int,
    n_walls: int,
    max_steps: int,
    epsilon: float,
) -> tuple[Demonstrations, int]:
    n = len(tasks)
    cells = size * size
    walls, colours, agent = grid_core.sample_layouts(rng, tasks, size, n_walls, n_colours)
    k_max = max(len(t) for t in tasks)
    targets = np.full((n, k_max), -1, dtype=np.int64)
    task_len = np.array([len(t) for t in tasks])
    for i, t in enumerate(tasks):
        targets[i, : len(t)] = t
    dist = grid_core.distance_maps(walls, colours, targets, size)  # (n, K, cells)
    rows = np.arange(n)
    walls_mask = np.zeros((n, cells), dtype=bool)
    walls_mask[rows[:, None], walls] = True
    colour_at = np.full((n, cells), -1, dtype=np.int64)
    colour_at[rows[:, None], colours] = np.arange(n_colours)
    move = grid_core.move_table(size)

    agent_hist = np.empty((n, max_steps + 1), dtype=np.int64)
    agent_hist[:, 0] = agent
    actions = np.zeros((n, max_steps), dtype=np.int64)
    target_hist = np.zeros((n, max_steps), dtype=np.int64)
    progress = np.zeros(n, dtype=np.int64)
    lengths = np.zeros(n, dtype=np.int64)
    success = np.zeros(n, dtype=bool)
    active = np.ones(n, dtype=bool)
    pos = agent.copy()
    for t in range(max_steps):
        idx = np.nonzero(active)[0]
        if len(idx) == 0:
            break
        p = pos[idx]
        cur_target = targets[idx, progress[idx]]
        values = grid_core.action_values(p, dist[idx, progress[idx]], walls_mask[idx], size)
        nxt = move[:, p].T
        nxt_colour = colour_at[idx[:, None], nxt]
        wrong = (nxt != p[:, None]) & (nxt_colour >= 0) & (nxt_colour != cur_target[:, None])
        a = _choose(values, rng, epsilon, ~wrong)
        new = nxt[np.arange(len(idx)), a]
        new = np.where(walls_mask[idx, new], p, new)
        moved = new != p
        colour = colour_at[idx, new]
        actions[idx, t] = a
        target_hist[idx, t] = cur_target
        pos[idx] = new
        agent_hist[idx, t + 1] = new
        hit = moved & (colour == cur_target)
        progress[idx] += hit
        done_ok = progress[idx] == task_len[idx]
        failed = moved & (colour >= 0) & ~hit  # cannot happen for the expert; kept as a guard
        finished = done_ok | failed | (t + 1 >= max_steps)
        success[idx] = done_ok
        lengths[idx[finished]] = t + 1
        active[idx[finished]] = False
    keep = np.nonzero(success)[0]

    static = grid_core.static_observations(walls[keep], colours[keep], size, dtype=np.uint8)
    c = grid_core.n_channels(n_walls, n_colours)
    obs_parts, act_parts, tgt_parts = [], [], []
    for j, i in enumerate(keep):
        t = lengths[i]
        o = np.repeat(static[j][None], t + 1, axis=0)
        o[np.arange(t + 1), agent_hist[i, : t + 1] * c + c - 1] = 1
        obs_parts.append(np.packbits(o, axis=1))
        act_parts.append(actions[i, :t])
        tgt_parts.append(target_hist[i, :t])
    tgt = np.concatenate(tgt_parts)
    data = Demonstrations(
        observations=np.concatenate(obs_parts),
        actions=np.concatenate(act_parts),
        targets=tgt,
        subgoals=np.vectorize(grid_subgoal_of_colour, otypes=[np.int64])(tgt),
        lengths=lengths[keep],
        tasks=targets[keep],
        obs_dim=cells * c,
        packed=True,
        metadata={},
    )
    return data, n - len(keep)


def grid_layouts_from_obs(
    first_obs: np.ndarray, size: int = GRID_SIZE, n_walls: int = GRID_N_WALLS
):
    """Recover (walls, colours) cell arrays from first observations (N, size*size*C)."""
    n = first_obs.shape[0]
    c = first_obs.shape[1] // (size * size)
    grid = first_obs.reshape(n, size * size, c)
    walls = np.argmax(grid[:, :, :n_walls], axis=1)  # (N, W): cell of wall k
    colours = np.argmax(grid[:, :, n_walls : c - 1], axis=1)  # (N, O)
    return walls, colours


def optimal_action_mask(
    batch: dict[str, np.ndarray], size: int = GRID_SIZE, n_walls: int = GRID_N_WALLS
) -> np.ndarray:
    """(B, T, 4) bool: the expert's shortest-path actions at every step of a padded batch."""
    obs, targets = batch["obs"], batch["targets"]
    b, t = targets.shape
    c = obs.shape[-1] // (size * size)
    walls, colours = grid_layouts_from_obs(obs[:, 0], size, n_walls)
    dist = grid_core.distance_maps(walls, colours, np.maximum(targets, 0), size)  # (B, T, cells)
    agent = np.argmax(obs[:, :t].reshape(b, t, size * size, c)[..., c - 1], axis=-1)  # (B, T)
    walls_mask = np.zeros((b, size * size), dtype=bool)
    walls_mask[np.arange(b)[:, None], walls] = True
    flat_agent = agent.reshape(-1)
    flat_dist = dist.reshape(b * t, -1)
    flat_walls = np.repeat(walls_mask, t, axis=0)
    values = grid_core.action_values(flat_agent, flat_dist, flat_walls, size).reshape(b, t, 4)
    return values == values.min(axis=-1, keepdims=True)
