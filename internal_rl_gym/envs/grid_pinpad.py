"""GridPinpad: the paper's gridworld-pinpad (Kobayashi et al. 2025, §A.1)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import EzPickle

from internal_rl_gym.envs import grid_core
from internal_rl_gym.tasks import (
    COLOUR_RGB,
    GRID_N_COLOURS,
    GRID_N_WALLS,
    GRID_POST_TASK,
    GRID_PRETRAINING_TASKS,
    GRID_SIZE,
    Task,
    format_task,
    grid_subgoal_of_colour,
    resolve_task,
    visit,
)


class GridPinpadEnv(gym.Env, EzPickle):
    """Visit coloured cells in a given order on a small grid with walls.

    ## Description
    The discrete environment of "Emergent temporal abstractions in autoregressive models enable
    hierarchical reinforcement learning" (Kobayashi et al., arXiv 2512.20605, §A.1), inspired by
    Director's Pin Pad. A ``size x size`` grid holds ``n_colours`` uniquely coloured cells and
    ``n_walls`` wall cells. The agent must step on the coloured cells of its *task* in order. A
    coloured cell counts as visited when the agent moves onto it from a different cell; visiting a
    colour that is not the next one of the task ends the episode (distractors must be avoided).

    The task is never part of the observation: an agent must infer it (from reward, or, for the
    paper's base model, from the history of an expert's behaviour).

    ## Action Space
    ``Discrete(4)``: 0 = up, 1 = right, 2 = down, 3 = left. Moving into a wall or off the grid leaves
    the agent where it is (a no-op, which never re-visits the cell it stands on).

    ## Observation Space
    ``Box(0, 1, (size*size*C,), float32)`` with ``C = n_walls + n_colours + 1`` channels per cell
    (637 for the paper's 7x7 grid). ``obs.reshape(size, size, C)[row, col]`` is a multi-hot over:

    | channel | meaning |
    |---|---|
    | ``0 .. n_walls-1`` | wall ``k`` is in this cell (each wall has its own channel) |
    | ``n_walls .. n_walls+n_colours-1`` | colour ``i`` is in this cell |
    | ``C-1`` | the agent is in this cell |

    It contains neither the task nor which cells were visited.

    ## Rewards
    1.0 on the step that completes the task, 0.0 otherwise (sparse, terminal).

    ## Starting State
    Wall cells, coloured cells and the agent's cell are sampled uniformly without overlap at every
    reset, rejecting layouts on which the task cannot be solved (a target walled off, or reachable
    only across another colour). ``reset(options={"layout": {"walls": [...], "colours": [...],
    "agent": cell}})`` fixes a layout and ``options={"task": ...}`` the task of one episode.

    ## Episode End
    * Termination, success: every colour of the task was visited in order (reward 1).
    * Termination, failure: the agent visits a coloured cell that is not the next one.
    * Truncation: ``max_steps`` (paper: T = 100) steps elapsed. The env truncates by itself, so the
      horizon is a constructor argument; no ``TimeLimit`` wrapper is added.

    ``info`` always holds ``success`` and ``is_success`` (bool; the key SB3 logs), ``target`` (the
    next colour, -1 once done), ``subgoal`` (the abstract subgoal pursued: the colour pair
    ``target // 2``; for evaluation and probes only), ``progress`` (colours visited so far) and
    ``task`` and ``visited`` (the colour entered on this step, -1 if none).

    ## Arguments
    * ``task``: a colour sequence (``(0, 1, 2, 3)`` or ``"0-1-2-3"``), ``"pretraining"`` (one of the
      paper's 16 pretraining tasks, sampled at each reset) or ``"post"`` (the held-out
      post-training task ``0-1-2-3-4-5-6-7-0-1-2-3``, the default).
    * ``size`` (7), ``n_colours`` (8), ``n_walls`` (4), ``max_steps`` (100): the paper's values.
    * ``render_mode``: ``"rgb_array"`` (uint8 image) or ``"ansi"`` (text).
    * ``terminate_on_wrong_colour`` (True, the paper's rule): with False a wrong colour is only
      reported in ``info["visited"]`` and the episode goes on (free play, for analysing models).

    ## Version History
    * v0: initial release.
    """

    metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 4}

    def __init__(
        self,
        task: str | Sequence[int] = "post",
        size: int = GRID_SIZE,
        n_colours: int = GRID_N_COLOURS,
        n_walls: int = GRID_N_WALLS,
        max_steps: int = 100,
        render_mode: str | None = None,
        terminate_on_wrong_colour: bool = True,
    ) -> None:
        EzPickle.__init__(
            self, task, size, n_colours, n_walls, max_steps, render_mode, terminate_on_wrong_colour
        )
        if size < 2:
            raise ValueError(f"size must be at least 2, got {size}.")
        if not 1 <= n_colours <= len(COLOUR_RGB):
            raise ValueError(f"n_colours must be in 1..{len(COLOUR_RGB)}, got {n_colours}.")
        if n_walls < 0:
            raise ValueError(f"n_walls must be >= 0, got {n_walls}.")
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}.")
        if n_walls + n_colours + 1 > size * size:
            raise ValueError(
                f"A {size}x{size} grid cannot hold {n_walls} walls, {n_colours} colours and the "
                "agent; lower n_walls/n_colours or raise size."
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode={render_mode!r} is not supported; use one of "
                f"{self.metadata['render_modes']} or None."
            )
        self.size, self.n_colours, self.n_walls, self.max_steps = (
            size,
            n_colours,
            n_walls,
            max_steps,
        )
        self.render_mode = render_mode
        self.terminate_on_wrong_colour = terminate_on_wrong_colour
        self.task_sampler = self._resolve(task)
        self.n_channels = grid_core.n_channels(n_walls, n_colours)
        self.observation_space = spaces.Box(
            0.0, 1.0, (size * size * self.n_channels,), dtype=np.float32
        )
        self.action_space = spaces.Discrete(grid_core.N_ACTIONS)
        self._move = grid_core.move_table(size)
        self.task: Task = self.task_sampler.tasks[0]
        self._layout_ready = False

    def _resolve(self, task: str | Sequence[int]):
        pretraining = GRID_PRETRAINING_TASKS if self.n_colours == GRID_N_COLOURS else ()
        post = GRID_POST_TASK if self.n_colours == GRID_N_COLOURS else ()
        if isinstance(task, str) and task.strip().lower() in ("pretraining", "post") and not post:
            raise ValueError(
                f"The named task sets are defined for {GRID_N_COLOURS} colours; with "
                f"n_colours={self.n_colours} pass an explicit colour sequence."
            )
        return resolve_task(task, n_colours=self.n_colours, pretraining=pretraining, post=post)

    # --- gymnasium API ---------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        sampler = self._resolve(options["task"]) if "task" in options else self.task_sampler
        self.task = sampler.sample(self.np_random)
        self._task_name = format_task(self.task)  # in every step's info: format it once
        if "layout" in options:
            walls, colours, agent = self._check_layout(options["layout"])
        else:
            walls, colours, agent = grid_core.sample_layout_single(
                self.np_random, self.task, self.size, self.n_walls, self.n_colours
            )
        self.walls, self.colours, self.agent = walls, colours, agent
        cells = self.size * self.size
        self._is_wall = np.zeros(cells, dtype=bool)
        self._is_wall[walls] = True
        self._colour_at = np.full(cells, -1, dtype=np.int64)
        self._colour_at[colours] = np.arange(self.n_colours)
        self._static_obs = np.zeros(self.observation_space.shape, dtype=np.float32)
        self._static_obs[walls * self.n_channels + np.arange(self.n_walls)] = 1.0
        self._static_obs[colours * self.n_channels + self.n_walls + np.arange(self.n_colours)] = 1.0
        self.progress, self.steps, self.success, self._done = 0, 0, False, False
        self._visited = -1
        self._layout_ready = True
        return self._observation(), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self._layout_ready:
            raise RuntimeError("Call reset() before step().")
        if self._done:
            raise RuntimeError("The episode has ended; call reset() before step().")
        a = self._check_action(action)
        nxt = int(self._move[a, self.agent])
        if self._is_wall[nxt]:
            nxt = self.agent
        moved = nxt != self.agent
        self.agent = nxt
        self.steps += 1
        reward, terminated = 0.0, False
        colour = int(self._colour_at[nxt])
        self._visited = colour if moved and colour >= 0 else -1
        if self._visited >= 0:
            self.progress, outcome = visit(self.task, self.progress, colour)
            if outcome == "success":
                self.success, terminated, reward = True, True, 1.0
            elif outcome == "wrong":
                terminated = self.terminate_on_wrong_colour
        truncated = not terminated and self.steps >= self.max_steps
        self._done = terminated or truncated
        return self._observation(), reward, terminated, truncated, self._info()

    def render(self) -> np.ndarray | str | None:
        if self.render_mode is None:
            gym.logger.warn(
                "render() called without a render_mode; pass render_mode='rgb_array' or 'ansi' "
                "to gym.make."
            )
            return None
        if not self._layout_ready:
            raise RuntimeError("Call reset() before render().")
        if self.render_mode == "ansi":
            return self._render_ansi()
        return self._render_rgb()

    # --- helpers ---------------------------------------------------------------------------
    def _check_action(self, action: Any) -> int:
        if type(action) in (int, np.int64) and 0 <= action < grid_core.N_ACTIONS:  # fast path
            return int(action)
        arr = np.asarray(action)
        if arr.size != 1 or not np.issubdtype(arr.dtype, np.integer):
            if arr.size == 1 and np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr):
                raise ValueError(
                    f"GridPinpad got a non-finite action {action!r}; expected one integer in "
                    "0..3 (0 up, 1 right, 2 down, 3 left). Check the policy for NaN outputs."
                )
            if arr.size == 1 and np.issubdtype(arr.dtype, np.floating) and float(arr) == int(arr):
                arr = arr.astype(np.int64)
            else:
                raise ValueError(
                    f"GridPinpad expects one integer action in 0..3 (0 up, 1 right, 2 down, "
                    f"3 left), got {action!r}."
                )
        a = int(arr.reshape(()))
        if not 0 <= a < grid_core.N_ACTIONS:
            raise ValueError(f"Action {a} is out of range: use 0 up, 1 right, 2 down, 3 left.")
        return a

    def _check_layout(self, layout: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, int]:
        try:
            walls = np.asarray(layout["walls"], dtype=np.int64).reshape(-1)
            colours = np.asarray(layout["colours"], dtype=np.int64).reshape(-1)
            agent = int(layout["agent"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(
                "options['layout'] must be a dict with 'walls' (cell indices), 'colours' (cell of "
                f"each colour, in colour order) and 'agent' (a cell index): {err}"
            ) from None
        cells = np.concatenate([walls, colours, [agent]])
        if len(walls) != self.n_walls or len(colours) != self.n_colours:
            raise ValueError(
                f"Layout has {len(walls)} walls and {len(colours)} colours; this env expects "
                f"{self.n_walls} and {self.n_colours}."
            )
        if cells.min() < 0 or cells.max() >= self.size * self.size:
            raise ValueError(f"Layout cells must be in 0..{self.size * self.size - 1}.")
        if len(np.unique(cells)) != len(cells):
            raise ValueError("Layout cells overlap: walls, colours and agent need distinct cells.")
        return walls, colours, agent

    def _observation(self) -> np.ndarray:
        obs = self._static_obs.copy()
        obs[self.agent * self.n_channels + self.n_channels - 1] = 1.0
        return obs

    def _info(self) -> dict[str, Any]:
        target = self.task[self.progress] if self.progress < len(self.task) else -1
        return {
            "success": self.success,
            "is_success": self.success,
            "target": target,
            "subgoal": grid_subgoal_of_colour(target) if target >= 0 else -1,
            "progress": self.progress,
            "task": self._task_name,
            "visited": self._visited,
        }

    def _render_ansi(self) -> str:
        grid = [["." for _ in range(self.size)] for _ in range(self.size)]
        for w in self.walls:
            grid[w // self.size][w % self.size] = "#"
        for i, c in enumerate(self.colours):
            grid[c // self.size][c % self.size] = str(i)
        r, c = divmod(self.agent, self.size)
        grid[r][c] = "A" if grid[r][c] == "." else "@"
        header = f"task {format_task(self.task)}  progress {self.progress}  step {self.steps}"
        return header + "\n" + "\n".join(" ".join(row) for row in grid) + "\n"

    def _render_rgb(self, tile: int = 24) -> np.ndarray:
        s = self.size
        img = np.full((s * tile, s * tile, 3), 245, dtype=np.uint8)
        img[::tile, :, :] = 200
        img[:, ::tile, :] = 200

        def fill(cell: int, rgb: tuple[int, int, int], pad: int = 1) -> None:
            r, c = divmod(int(cell), s)
            img[r * tile + pad : (r + 1) * tile - pad, c * tile + pad : (c + 1) * tile - pad] = rgb

        for w in self.walls:
            fill(w, (60, 60, 60))
        for i, c in enumerate(self.colours):
            fill(c, COLOUR_RGB[i])
        r, c = divmod(self.agent, s)
        yy, xx = np.mgrid[0:tile, 0:tile]
        disc = (yy - tile / 2 + 0.5) ** 2 + (xx - tile / 2 + 0.5) ** 2 <= (tile * 0.3) ** 2
        patch = img[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile]
        patch[disc] = (20, 20, 20)
        return img
