"""AntPinpad: the paper's ant-pinpad (Kobayashi et al. 2025, §A.2), and a shaped variant for experts.

The MuJoCo scene (Gymnasium's ``ant.xml`` plus floor tiles and a wall block, recoloured on reset
at no compile cost) is built in :mod:`~internal_rl_gym.envs.ant_arena`. The two env classes stay
in one module on purpose although it runs past 600 lines: the shaped variant is a thin subclass
that overrides this module's hooks, and much of the length is the envs' Gymnasium-style docs.
"""

from __future__ import annotations

# isort: off
import internal_rl_gym.envs._require_mujoco  # noqa: F401  (a clear error without MuJoCo)
# isort: on

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv
from gymnasium.utils import EzPickle

from internal_rl_gym.envs import grid_core
from internal_rl_gym.envs.ant_arena import (  # re-exported: they lived here before
    GYMNASIUM_ANT_XML,
    build_model_xml,
    cell_centre,
    check_gl_backend,
    paint_layout,
)
from internal_rl_gym.tasks import (
    ANT_N_COLOURS,
    ANT_POST_TASK,
    ANT_PRETRAINING_TASKS,
    COLOUR_RGB,
    Task,
    format_task,
    resolve_task,
    visit,
)

PROPRIO_DIM = 27  # qpos[2:] (13) + qvel (14)
#: Cardinal directions in the grid's action order (grid_core): up (+y), right (+x), down, left.
DIRECTIONS = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, -1.0], [-1.0, 0.0]])


def symlog(x: np.ndarray) -> np.ndarray:
    """``sign(x) * log(1 + |x|)``."""
    return np.sign(x) * np.log1p(np.abs(x))


class AntPinpadEnv(MujocoEnv, EzPickle):
    """Walk the MuJoCo ant over coloured floor cells in a given order.

    ## Description
    The continuous-control environment of "Emergent temporal abstractions in autoregressive models
    enable hierarchical reinforcement learning" (Kobayashi et al., arXiv 2512.20605, §A.2): the
    counterpart of :class:`~internal_rl_gym.envs.grid_pinpad.GridPinpadEnv` with Gymnasium's ant.
    The floor is a ``size x size`` grid of square cells (``cell_size`` metres each, grid centred on
    the origin, row 0 at the top = largest y). ``n_colours`` cells are coloured and ``n_walls``
    cells are walls. The ant must step on the coloured cells of its *task* in order. A coloured
    cell counts as visited when the ant's centre (the torso) enters it from a different cell;
    visiting a colour that is not the next one of the task ends the episode. The task is never
    part of the observation.

    The env subclasses Gymnasium's ``MujocoEnv`` instead of wrapping ``Ant-v5`` (the
    Gymnasium-Robotics AntMaze composition): the ant's own reward, contact forces and
    observation are not used, so owning one ``MjModel`` and calling ``mj_step`` directly avoids
    their cost (and the ``mj_rnePostConstraint`` call ``Ant-v5`` needs for contact forces), while
    ``MujocoEnv`` still provides seeding, ``set_state``, ``dt`` and the renderer. The model is
    compiled once in the constructor; layouts are applied by recolouring floor tiles and moving the
    wall block, never by recompiling. Walls are visual only: the wall rule below ends the
    episode as soon as the ant's centre enters a wall cell (its legs may overlap it before).

    ## Action Space
    ``Box(-1, 1, (8,), float32)``: torques of the 8 hinge joints, in Gymnasium ``Ant-v5``'s
    actuator order (hip_4, ankle_4, hip_1, ankle_1, hip_2, ankle_2, hip_3, ankle_3; gear 150).
    Finite torques outside [-1, 1] are clipped to it (MuJoCo's ``ctrlrange``, as in ``Ant-v5``);
    NaN or inf raises ``ValueError``.

    ## Observation Space
    ``Box(-inf, inf, (41,), float32)``, the concatenation of

    | slice | size | content |
    |---|---|---|
    | ``0:27`` | 27 | ``symlog`` of the proprioception ``qpos[2:]`` (torso z, orientation quaternion, 8 joint angles) and ``qvel`` (14); no contact forces |
    | ``27:29`` | 2 | torso ``(x, y)`` divided by ``L/2``: [-1, 1] on the grid |
    | ``29:39`` | 10 | ``(cell centre - torso xy) / L`` for colours 0..3 (colour order), then the wall: 5 2-D vectors in [-1, 1] |
    | ``39:41`` | 2 | the torso's coordinate inside its current cell, [-1, 1] on each axis (0 = centre) |
    | ``41:49`` | 8 | only with ``route_hints=True``: for colours 0..3, ``(centre of the next cell on a shortest grid path to the colour - torso xy) / cell_size`` |
    | next 4 | 4 | only with ``colour_underfoot=True``: one-hot of the colour of the cell the torso is in (all 0 off the colours) |

    ``L = size * cell_size`` is the grid's side. The relative vectors are in the world frame by
    default (``relative_frame="world"``): the observation is then a fixed function of the ant's
    position and the layout, and the heading is available from the quaternion.
    ``relative_frame="heading"`` rotates them (only them) into the torso's yaw frame.
    ``env.unwrapped.obs_slices`` names the slices. The observation contains neither the task nor
    which cells were visited.

    **Route hints** (``route_hints=True``; registered as ``AntPinpadRoutes-v0`` with
    ``relative_frame="heading"``) are not in the paper. For *every* colour they point to the next
    cell of a shortest 4-connected path to it that avoids the wall and the other colours (ties:
    up, right, down, left; the colour's own cell when the ant stands on it or no path exists), in
    the frame of the relative vectors. They say how to reach each colour, never which one the task
    wants, so the subgoal must still be inferred from the history. They exist for CPU-scale base
    models: a network given the target colour learns to walk the route from them in the heading
    frame (0.66-0.87 of pretraining tasks in closed loop) but not from the paper's observation
    (0.00-0.30; ``research/scripts/ant_bc_diagnostics.py``); the paper's base model learns the
    route from about 200M expert steps instead.

    **The colour underfoot** (``colour_underfoot=True``; registered with the route hints as
    ``AntPinpadRoutes-v1``) is not in the paper either. It is the ant's counterpart of the grid
    encoders' "the agent stands on colour c" feature: what the pretraining tasks' rule needs a
    model to remember (the next colour is the last one visited +2 or -1). A base model on
    ``AntPinpadRoutes-v0`` with a mixture action head walks to colours but in no task's order:
    the last colour visited is not linearly decodable from its residual stream at any layer
    (session 25 of ``research/results/README.md``). It is a function of the current position only;
    which colours were visited is still never in the observation.

    ## Rewards
    1.0 on the step that completes the task, 0.0 otherwise (sparse, terminal).

    ## Starting State
    Colours, walls and the start cell are sampled uniformly without overlap at every reset,
    rejecting layouts on which the task is unsolvable on the grid graph (a target unreachable
    through 4-connected cells avoiding the wall and the other colours). About 11-13% of raw layouts
    are unsolvable; ``filter_unsolvable=False`` keeps them (the paper does not say which it does;
    its expert's 0.8/0.7 success fits an unfiltered sampler). The torso starts at z = 0.75 (+-0.1)
    at a uniform point of the start cell at least ``start_margin * cell_size`` from its border,
    with a uniform random yaw; joint angles are uniform in 0 +- 0.1 rad (the model's reference
    pose, as ``Ant-v5``; the ankle limits push them into range) and all velocities uniform in
    +- 0.1 (the paper's reset).

    Reset options: ``{"task": ...}`` fixes the task of one episode; ``{"layout": {"walls": [cell],
    "colours": [c0, c1, c2, c3], "agent": cell}}`` fixes the layout (cells as in GridPinpad:
    ``row * size + col``); ``"xy"`` (world coordinates, inside the start cell) and ``"yaw"``
    (radians) fix the torso's start.

    ## Episode End
    * Termination, success: every colour of the task was visited in order (reward 1).
    * Termination, failure: the ant's centre enters a wall cell; the torso height leaves
      ``healthy_z_range`` = [0.2, 1.0] (or the state becomes non-finite); a colour that is not the
      next one is visited; the ant's centre leaves the grid (``|x|`` or ``|y| > L/2``). Leaving the
      grid is not in the paper; it is a failure here because outside the grid no cell (and no
      observation of the local coordinate) is defined.
    * Truncation: ``max_steps`` (paper: T = 500) steps elapsed. The env truncates by itself, so
      no ``TimeLimit`` wrapper is added.

    Failure rules are checked before colour visits. ``info`` always holds ``success`` and
    ``is_success`` (bool; the key SB3 logs), ``target`` (the next colour, -1 once done),
    ``subgoal`` (for the ant the abstract subgoal is the target colour itself; for evaluation and
    probes only), ``progress`` (colours visited so far), ``task``, ``x_position``, ``y_position``,
    ``cell`` (the cell of the ant's centre, -1 outside the grid), ``visited`` (the colour entered
    on this step, -1 if none) and ``termination`` (``""``, ``"success"``, ``"wall"``,
    ``"unhealthy"``, ``"wrong_colour"`` or ``"left_grid"``).

    ## Arguments
    * ``task``: a colour sequence (``(0, 1, 2, 3)`` or ``"0-1-2-3"``), ``"pretraining"`` (one of the
      paper's 16 pretraining tasks of Table A2, sampled at each reset) or ``"post"`` (the held-out
      post-training task ``0-1-2-3``, the default).
    * ``size`` (4), ``n_colours`` (4), ``n_walls`` (1), ``max_steps`` (500): the paper's values.
    * ``cell_size`` (2.0 m): not given in the paper (D4RL's AntMaze uses 4). With 2 m cells the
      gait + planner expert (:mod:`~internal_rl_gym.envs.ant_expert`, ~1.7 m/s) needs about 195
      steps for a 3-colour task and 265 for 0-1-2-3 (mean over successes), well inside
      T = 500 (``benchmarks/results/ant_expert_eval.json``). Larger cells make every segment
      longer; findings.md measured a third of the episodes running out of time at 4 m.
    * ``frame_skip`` (5; dt = 0.05 s as ``Ant-v5``), ``healthy_z_range`` ((0.2, 1.0)),
      ``start_margin`` (0.2), ``relative_frame`` (``"world"``), ``filter_unsolvable`` (True),
      ``route_hints`` and ``colour_underfoot`` (False: see Observation Space),
      ``xml_file`` (an ant model with Gymnasium's joint layout; default Gymnasium's ``ant.xml``).
    * ``render_mode`` (``"rgb_array"``, ``"depth_array"`` or ``"human"``), ``width``, ``height``:
      the default camera looks straight down on the whole grid. Headless rendering needs
      ``MUJOCO_GL=egl`` (or ``osmesa``).
    * ``terminate_on_wrong_colour`` (True, the paper's rule): with False a wrong colour is only
      reported in ``info["visited"]`` and the episode goes on (free play, for analysing models).

    ## Version History
    * v0: initial release; ``terminate_on_wrong_colour``, ``info["visited"]``,
      ``route_hints`` and ``colour_underfoot`` added later (defaults unchanged).
      ``AntPinpadRoutes-v1`` = ``AntPinpadRoutes-v0`` + ``colour_underfoot``.
    """

    metadata = {"render_modes": ["human", "rgb_array", "depth_array"], "render_fps": 20}

    def __init__(
        self,
        task: str | Sequence[int] = "post",
        size: int = 4,
        n_colours: int = ANT_N_COLOURS,
        n_walls: int = 1,
        cell_size: float = 2.0,
        max_steps: int = 500,
        frame_skip: int = 5,
        healthy_z_range: tuple[float, float] = (0.2, 1.0),
        start_margin: float = 0.2,
        relative_frame: str = "world",
        filter_unsolvable: bool = True,
        xml_file: str | None = None,
        render_mode: str | None = None,
        width: int = 480,
        height: int = 480,
        terminate_on_wrong_colour: bool = True,
        route_hints: bool = False,
        colour_underfoot: bool = False,
    ) -> None:
        EzPickle.__init__(
            self,
            task,
            size,
            n_colours,
            n_walls,
            cell_size,
            max_steps,
            frame_skip,
            healthy_z_range,
            start_margin,
            relative_frame,
            filter_unsolvable,
            xml_file,
            render_mode,
            width,
            height,
            terminate_on_wrong_colour,
            route_hints,
            colour_underfoot,
        )
        if size < 2:
            raise ValueError(f"size must be at least 2, got {size}.")
        if not 1 <= n_colours <= len(COLOUR_RGB):
            raise ValueError(f"n_colours must be in 1..{len(COLOUR_RGB)}, got {n_colours}.")
        if not 0 <= n_walls <= 1:
            # One wall block is built into the model; more would need more geoms.
            raise ValueError(f"n_walls must be 0 or 1, got {n_walls}.")
        if n_walls + n_colours + 1 > size * size:
            raise ValueError(
                f"A {size}x{size} grid cannot hold {n_walls} walls, {n_colours} colours and the "
                "ant; lower n_walls/n_colours or raise size."
            )
        if not cell_size > 0:
            raise ValueError(f"cell_size must be positive, got {cell_size}.")
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}.")
        if not 0.0 <= start_margin < 0.5:
            raise ValueError(f"start_margin must be in [0, 0.5), got {start_margin}.")
        if relative_frame not in ("world", "heading"):
            raise ValueError(
                f"relative_frame must be 'world' or 'heading', got {relative_frame!r}."
            )
        lo, hi = healthy_z_range
        if not lo < hi:
            raise ValueError(
                f"healthy_z_range must be (low, high) with low < high, got {healthy_z_range}."
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode={render_mode!r} is not supported; use one of "
                f"{self.metadata['render_modes']} or None."
            )
        self.size, self.n_colours, self.n_walls = size, n_colours, n_walls
        self.cell_size, self.max_steps = float(cell_size), max_steps
        self.half_extent = 0.5 * size * self.cell_size
        self.healthy_z_range = (float(lo), float(hi))
        self.start_margin, self.relative_frame = start_margin, relative_frame
        self.filter_unsolvable = filter_unsolvable
        self.terminate_on_wrong_colour = terminate_on_wrong_colour
        self.route_hints = bool(route_hints)
        self.colour_underfoot = bool(colour_underfoot)
        self._visited = -1
        self.task_sampler = self._resolve(task)
        self.task: Task = self.task_sampler.tasks[0]
        self._xml_file = xml_file or GYMNASIUM_ANT_XML
        n_route, n_under = 2 * n_colours * self.route_hints, n_colours * self.colour_underfoot
        obs_dim = PROPRIO_DIM + 2 + 2 * (n_colours + n_walls) + 2 + n_route + n_under
        observation_space = spaces.Box(-np.inf, np.inf, (obs_dim,), dtype=np.float32)
        # MujocoEnv checks render_fps against the model's dt, known only once it is compiled.
        self.metadata = {"render_modes": list(self.metadata["render_modes"])}
        MujocoEnv.__init__(
            self,
            self._xml_file,
            frame_skip,
            observation_space,
            render_mode=render_mode,
            width=width,
            height=height,
            default_camera_config={
                "distance": 2.1 * size * self.cell_size,
                "elevation": -90.0,
                "azimuth": 90.0,
                "lookat": np.array([0.0, 0.0, 0.0]),
            },
        )
        self.observation_space = observation_space
        self.metadata["render_fps"] = int(round(1.0 / self.dt))
        n_obj = 2 * (n_colours + n_walls)
        self.obs_slices = {
            "proprio": slice(0, PROPRIO_DIM),
            "xy": slice(PROPRIO_DIM, PROPRIO_DIM + 2),
            "relative": slice(PROPRIO_DIM + 2, PROPRIO_DIM + 2 + n_obj),
            "local": slice(PROPRIO_DIM + 2 + n_obj, PROPRIO_DIM + 4 + n_obj),
        }
        end = PROPRIO_DIM + 4 + n_obj
        if self.route_hints:
            self.obs_slices["route_hints"] = slice(end, end + n_route)
        if self.colour_underfoot:
            self.obs_slices["colour_underfoot"] = slice(end + n_route, obs_dim)
        self._tile_ids = np.array(
            [
                mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, f"pinpad_tile_{c}")
                for c in range(size * size)
            ]
        )
        self._wall_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, "pinpad_wall")
        self._centres = np.array([cell_centre(c, size, self.cell_size) for c in range(size * size)])
        self._layout_ready = False

    # --- model -----------------------------------------------------------------------------
    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        xml = build_model_xml(self.fullpath, self.size, self.cell_size)
        model = mujoco.MjModel.from_xml_string(xml)
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        return model, mujoco.MjData(model)

    def _resolve(self, task: str | Sequence[int]):
        named = self.n_colours == ANT_N_COLOURS
        if isinstance(task, str) and task.strip().lower() in ("pretraining", "post") and not named:
            raise ValueError(
                f"The named task sets are defined for {ANT_N_COLOURS} colours; with "
                f"n_colours={self.n_colours} pass an explicit colour sequence."
            )
        return resolve_task(
            task,
            n_colours=self.n_colours,
            pretraining=ANT_PRETRAINING_TASKS if named else (),
            post=ANT_POST_TASK if named else (),
        )

    # --- gymnasium API ---------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        gym.Env.reset(self, seed=seed)
        options = options or {}
        sampler = self._resolve(options["task"]) if "task" in options else self.task_sampler
        self.task = sampler.sample(self.np_random)
        if "layout" in options:
            walls, colours, agent = self._check_layout(options["layout"])
        elif self.filter_unsolvable:
            walls, colours, agent = grid_core.sample_layout_single(
                self.np_random, self.task, self.size, self.n_walls, self.n_colours
            )
        else:
            perm = self.np_random.permutation(self.size * self.size)
            nw, nc = self.n_walls, self.n_colours
            walls, colours, agent = perm[:nw], perm[nw : nw + nc], int(perm[-1])
        self._apply_layout(walls, colours, agent)

        mujoco.mj_resetData(self.model, self.data)
        rng = self.np_random
        qpos = self.init_qpos + rng.uniform(-0.1, 0.1, self.model.nq)
        qvel = self.init_qvel + rng.uniform(-0.1, 0.1, self.model.nv)
        if "xy" in options:
            xy = np.asarray(options["xy"], dtype=np.float64).reshape(2)
            if self._cell_of(xy[0], xy[1]) != agent:
                raise ValueError(f"options['xy']={tuple(xy)} is not inside the start cell {agent}.")
        else:
            span = (0.5 - self.start_margin) * self.cell_size
            xy = self._centres[agent] + rng.uniform(-span, span, 2)
        yaw = float(options["yaw"]) if "yaw" in options else float(rng.uniform(-np.pi, np.pi))
        qpos[:2] = xy
        qpos[3:7] = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
        self.set_state(qpos, qvel)

        self.cell = agent
        self.progress, self.steps, self.success = 0, 0, False
        self.termination = ""
        self._visited = -1
        self._done = False
        self._layout_ready = True
        self._on_reset()
        obs = self._get_obs()
        if self.render_mode == "human":
            self.render()
        return obs, self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self._layout_ready:
            raise RuntimeError("Call reset() before step().")
        if self._done:
            raise RuntimeError("The episode has ended; call reset() before step().")
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (8,):
            a = a.reshape(-1)
            if a.shape != (8,):
                raise ValueError(
                    f"AntPinpad expects 8 joint torques in [-1, 1], got shape {np.shape(action)}."
                )
        if not np.all(np.isfinite(a)):
            raise ValueError(
                f"AntPinpad got non-finite torques {np.asarray(action)!r}; expected 8 finite "
                "values in [-1, 1]. Check the policy for NaN/inf outputs."
            )
        prev_cell, prev_progress = self.cell, self.progress
        xy_before = self.data.qpos[:2].copy()
        self.data.ctrl[:] = a  # MuJoCo clamps to ctrlrange [-1, 1] (documented above)
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        self.steps += 1
        x, y, z = self.data.qpos[0], self.data.qpos[1], self.data.qpos[2]
        cell = self._cell_of(x, y)
        self.cell = cell
        reward, terminated = 0.0, False
        lo, hi = self.healthy_z_range
        self._visited = -1
        if cell < 0:
            self.termination, terminated = "left_grid", True
        elif self._is_wall[cell]:
            self.termination, terminated = "wall", True
        elif not (lo <= z <= hi) or not np.isfinite(self.data.qvel).all():
            self.termination, terminated = "unhealthy", True
        elif cell != prev_cell and self._colour_at[cell] >= 0:
            self._visited = int(self._colour_at[cell])
            self.progress, outcome = visit(self.task, self.progress, self._visited)
            if outcome == "success":
                self.success, terminated, reward = True, True, 1.0
                self.termination = "success"
            elif outcome == "wrong" and self.terminate_on_wrong_colour:
                self.termination, terminated = "wrong_colour", True
        truncated = not terminated and self.steps >= self.max_steps
        self._done = terminated or truncated
        reward += self._extra_reward(xy_before, prev_cell, prev_progress)
        obs = self._get_obs()
        if self.render_mode == "human":
            self.render()
        return obs, float(reward), bool(terminated), bool(truncated), self._info()

    def render(self):
        if self.render_mode is None:
            gym.logger.warn(
                "render() called without a render_mode; pass render_mode='rgb_array' to gym.make."
            )
            return None
        if not self._layout_ready:
            raise RuntimeError("Call reset() before render().")
        check_gl_backend()
        try:
            return super().render()
        except mujoco.FatalError as err:
            raise RuntimeError(
                f"MuJoCo could not open an OpenGL context to render ({err}). On a machine "
                "without a display set MUJOCO_GL=egl (or MUJOCO_GL=osmesa) before importing "
                "mujoco, e.g. `MUJOCO_GL=egl python ...`."
            ) from err

    # --- hooks for the shaped variant ------------------------------------------------------
    def _on_reset(self) -> None:
        pass

    def _extra_reward(self, xy_before: np.ndarray, prev_cell: int, prev_progress: int) -> float:
        return 0.0

    # --- helpers ---------------------------------------------------------------------------
    def _cell_of(self, x: float, y: float) -> int:
        """Cell index of a world point, -1 outside the grid."""
        h, c = self.half_extent, self.cell_size
        if not (-h <= x <= h and -h <= y <= h):
            return -1
        col = min(int((x + h) // c), self.size - 1)
        row = min(int((h - y) // c), self.size - 1)
        return row * self.size + col

    def _check_layout(self, layout: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, int]:
        try:
            walls = np.asarray(layout.get("walls", []), dtype=np.int64).reshape(-1)
            colours = np.asarray(layout["colours"], dtype=np.int64).reshape(-1)
            agent = int(layout["agent"])
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ValueError(
                "options['layout'] must be a dict with 'walls' (cell indices), 'colours' (cell of "
                f"each colour, in colour order) and 'agent' (a cell index): {err}"
            ) from None
        if len(walls) != self.n_walls or len(colours) != self.n_colours:
            raise ValueError(
                f"Layout has {len(walls)} walls and {len(colours)} colours; this env expects "
                f"{self.n_walls} and {self.n_colours}."
            )
        cells = np.concatenate([walls, colours, [agent]])
        if cells.min() < 0 or cells.max() >= self.size * self.size:
            raise ValueError(f"Layout cells must be in 0..{self.size * self.size - 1}.")
        if len(np.unique(cells)) != len(cells):
            raise ValueError("Layout cells overlap: walls, colours and agent need distinct cells.")
        return walls, colours, agent

    def _apply_layout(self, walls: np.ndarray, colours: np.ndarray, agent: int) -> None:
        self.walls = np.asarray(walls, dtype=np.int64)
        self.colours = np.asarray(colours, dtype=np.int64)
        self.start_cell = int(agent)
        n_cells = self.size * self.size
        self._is_wall = np.zeros(n_cells, dtype=bool)
        self._is_wall[self.walls] = True
        self._colour_at = np.full(n_cells, -1, dtype=np.int64)
        self._colour_at[self.colours] = np.arange(self.n_colours)
        paint_layout(
            self.model,
            self._tile_ids,
            self._wall_id,
            self._centres,
            self.walls,
            self._colour_at,
            self.size,
        )
        targets = np.concatenate([self.colours, self.walls])
        self._object_centres = self._centres[targets]  # (n_colours + n_walls, 2)
        if self.route_hints:
            self._route_next = self._next_cells_towards(np.arange(self.n_colours))

    def _next_cells_towards(self, colours: np.ndarray) -> np.ndarray:
        """(len(colours), cells): the next cell of a shortest path from each cell to each colour
        (ties: up, right, down, left); the cell itself on the colour or where no path exists."""
        dist = grid_core.distance_maps(
            self.walls[None], self.colours[None], colours[None], self.size
        )[0]
        after = grid_core.distances_after_moves(dist, self.size)  # (K, 4, cells)
        k = after.argmin(axis=1)  # the first of the shortest moves
        ok = (after.min(axis=1) < dist) & (dist > 0)
        cells = np.arange(self.size * self.size)
        return np.where(ok, grid_core.move_table(self.size)[k, cells[None]], cells[None])

    def _get_obs(self) -> np.ndarray:
        qpos, qvel = self.data.qpos, self.data.qvel
        x, y = qpos[0], qpos[1]
        proprio = symlog(np.concatenate((qpos[2:], qvel)))
        rel = (self._object_centres - (x, y)) / (2.0 * self.half_extent)
        if self.relative_frame == "heading":
            yaw = self.yaw()
            c, s = np.cos(yaw), np.sin(yaw)
            rel = rel @ np.array([[c, -s], [s, c]])  # row vectors rotated by -yaw
        h, cs = self.half_extent, self.cell_size
        if self.cell >= 0:
            cx, cy = self._centres[self.cell]
            local = ((x - cx) / (0.5 * cs), (y - cy) / (0.5 * cs))
        else:  # the terminal observation after leaving the grid
            local = (((x + h) % cs) / cs * 2.0 - 1.0, 1.0 - ((h - y) % cs) / cs * 2.0)
        parts = [proprio, (x / h, y / h), rel.reshape(-1), local]
        if self.route_hints:
            route = np.zeros((self.n_colours, 2))
            if self.cell >= 0:
                route = (self._centres[self._route_next[:, self.cell]] - (x, y)) / cs
                if self.relative_frame == "heading":
                    route = route @ np.array([[c, -s], [s, c]])
            parts.append(route.reshape(-1))
        if self.colour_underfoot:
            parts.append(self.colours == self.cell)  # one-hot; all False off the colours
        return np.concatenate(parts).astype(np.float32)

    def yaw(self) -> float:
        """The torso's heading (rotation about z, radians; 0 = facing +x)."""
        w, qx, qy, qz = self.data.qpos[3:7]
        return float(np.arctan2(2.0 * (w * qz + qx * qy), 1.0 - 2.0 * (qy * qy + qz * qz)))

    def _info(self) -> dict[str, Any]:
        target = self.task[self.progress] if self.progress < len(self.task) else -1
        return {
            "success": self.success,
            "is_success": self.success,
            "target": target,
            "subgoal": target,
            "progress": self.progress,
            "task": format_task(self.task),
            "x_position": float(self.data.qpos[0]),
            "y_position": float(self.data.qpos[1]),
            "cell": self.cell,
            "visited": self._visited,
            "termination": self.termination,
        }


class AntPinpadShapedEnv(AntPinpadEnv):
    """AntPinpad with the paper's expert-training aids: direction hints and a velocity reward.

    ## Description
    The same dynamics, layouts, tasks and episode ends as :class:`AntPinpadEnv` (see there), with
    the two privileged signals the paper gives its PPO expert (§C.1.1). They depend on the task, so
    this id is for training experts only; demonstrations must be recorded with the sparse
    observation (the first ``n_base_obs`` = 41 dimensions).

    ## Observation Space
    ``Box(-inf, inf, (41 + 4 * size**2,), float32)``: the sparse observation followed by a 4-D
    one-hot per cell (cells in ``row * size + col`` order) of the cardinal direction (up = +y,
    right = +x, down, left) of the next move along a grid-level shortest path to the current
    target, avoiding the wall and the other colours. Ties break in the order up, right, down, left;
    a cell with no path (the wall, cells cut off) gets zeros.

    ## Rewards
    ``velocity_weight * dot(v, d)`` every step, where ``v`` is the torso's planar velocity over the
    step and ``d`` the unit direction of the cell the ant was in, plus ``success_reward`` (1.0) on
    task completion.

    ## Arguments
    Those of :class:`AntPinpadEnv`, plus ``velocity_weight`` (1.0) and ``success_reward`` (1.0).

    ## Version History
    * v0: initial release.
    """

    def __init__(
        self,
        task: str | Sequence[int] = "post",
        velocity_weight: float = 1.0,
        success_reward: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(task=task, **kwargs)
        EzPickle.__init__(
            self,
            task=task,
            velocity_weight=velocity_weight,
            success_reward=success_reward,
            **kwargs,
        )
        self.velocity_weight, self.success_reward = float(velocity_weight), float(success_reward)
        base_dim = self.observation_space.shape[0]
        self.n_base_obs = base_dim
        n_cells = self.size * self.size
        self.observation_space = spaces.Box(
            -np.inf, np.inf, (base_dim + 4 * n_cells,), dtype=np.float32
        )

    def _on_reset(self) -> None:
        targets = np.asarray(self.task, dtype=np.int64)[None]
        dist = grid_core.distance_maps(self.walls[None], self.colours[None], targets, self.size)[0]
        after = grid_core.distances_after_moves(dist, self.size)  # (K, 4, cells)
        # hints[k, cell] = direction index towards target k (-1 if none); unlike the route
        # hints, the target's own cell also points along a shortest move
        ok = (after.min(axis=1) < grid_core.UNREACHABLE) & ~self._is_wall[None]
        self._hint_dirs = np.where(ok, after.argmin(axis=1), -1).astype(np.int64)
        self._hint_cache: dict[int, np.ndarray] = {}

    def hint_directions(self) -> np.ndarray:
        """Direction index per cell towards the current target (-1: none), (size*size,)."""
        if self.progress >= len(self.task):
            return np.full(self.size * self.size, -1, dtype=np.int64)
        return self._hint_dirs[self.progress]

    def _hints(self) -> np.ndarray:
        key = self.progress
        if key not in self._hint_cache:
            dirs = self.hint_directions()
            onehot = np.zeros((len(dirs), 4), dtype=np.float32)
            ok = dirs >= 0
            onehot[np.nonzero(ok)[0], dirs[ok]] = 1.0
            self._hint_cache[key] = onehot.reshape(-1)
        return self._hint_cache[key]

    def _get_obs(self) -> np.ndarray:
        return np.concatenate((super()._get_obs(), self._hints()))

    def _extra_reward(self, xy_before: np.ndarray, prev_cell: int, prev_progress: int) -> float:
        shaped = 0.0
        if prev_cell >= 0:  # the direction the observation showed before this step
            d = self._hint_dirs[prev_progress, prev_cell]
            if d >= 0:
                v = (self.data.qpos[:2] - xy_before) / self.dt
                shaped = self.velocity_weight * float(v @ DIRECTIONS[d])
        if self.success:
            shaped += self.success_reward - 1.0  # the base class already added 1.0
        return shaped
