"""Array-level mechanics of gridworld-pinpad, shared by the env, its expert and the batched collector.

Cells are numbered ``row * size + col``. Actions: 0 = up (row - 1), 1 = right (col + 1),
2 = down (row + 1), 3 = left (col - 1). A layout is three integer arrays: ``walls`` (W,) and
``colours`` (O,) hold cell indices (colour ``i`` sits at ``colours[i]``), ``agent`` is one cell.
Every function here works on a batch of N layouts at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

ACTION_NAMES = ("up", "right", "down", "left")
N_ACTIONS = 4
UNREACHABLE = np.int16(10_000)
_DELTAS = ((-1, 0), (0, 1), (1, 0), (0, -1))


@lru_cache(maxsize=16)
def move_table(size: int) -> np.ndarray:
    """``table[a, cell]``: the cell reached by action ``a`` on an empty grid (borders are no-ops)."""
    table = np.empty((N_ACTIONS, size * size), dtype=np.int64)
    for a, (dr, dc) in enumerate(_DELTAS):
        for r in range(size):
            for c in range(size):
                rr, cc = r + dr, c + dc
                inside = 0 <= rr < size and 0 <= cc < size
                table[a, r * size + c] = rr * size + cc if inside else r * size + c
    table.setflags(write=False)
    return table


def n_channels(n_walls: int, n_colours: int) -> int:
    """Channels per cell: one per wall, one per colour, one for the agent."""
    return n_walls + n_colours + 1


def static_observations(
    walls: np.ndarray, colours: np.ndarray, size: int, dtype: type = np.float32
) -> np.ndarray:
    """The layout part of the observation, (N, size*size*C): wall ``k`` in channel ``k``, colour
    ``i`` in channel ``W + i``; the agent channel (last) is left empty."""
    n, n_walls = walls.shape
    n_colours = colours.shape[1]
    c = n_channels(n_walls, n_colours)
    obs = np.zeros((n, size * size * c), dtype=dtype)
    rows = np.arange(n)[:, None]
    obs[rows, walls * c + np.arange(n_walls)] = 1
    obs[rows, colours * c + n_walls + np.arange(n_colours)] = 1
    return obs


#: The 8 symmetries of the square grid (the dihedral group D4) as (quarter turns, mirror).
SYMMETRIES = tuple((turns, mirror) for mirror in (False, True) for turns in range(4))


def _transform_delta(dr: int, dc: int, turns: int, mirror: bool) -> tuple[int, int]:
    """A move (dr, dc) after mirroring columns, then ``turns`` counter-clockwise quarter turns
    (``np.rot90``: the cell (r, c) goes to (size - 1 - c, r))."""
    if mirror:
        dc = -dc
    for _ in range(turns):
        dr, dc = -dc, dr
    return dr, dc


def symmetry_action_permutation(turns: int, mirror: bool) -> np.ndarray:
    """``perm[a]``: the action that makes, in the transformed grid, the move ``a`` makes in the
    original (:func:`transform_grid_observations`)."""
    return np.array([_DELTAS.index(_transform_delta(*d, turns, mirror)) for d in _DELTAS])


def transform_grid_observations(obs, turns: int, mirror: bool, size: int):
    """Grid observations (..., size*size*C), numpy or torch, mirrored (columns reversed) and then
    turned ``turns`` quarter turns counter-clockwise: the same episode seen in another frame.
    Pinpad's rules and layout distribution are invariant under these 8 symmetries."""
    x = obs.reshape(*obs.shape[:-1], size, size, -1)
    if isinstance(x, np.ndarray):
        if mirror:
            x = x[..., :, ::-1, :]
        return np.ascontiguousarray(np.rot90(x, turns, axes=(-3, -2))).reshape(obs.shape)
    import torch

    if mirror:
        x = torch.flip(x, dims=(-2,))
    return torch.rot90(x, turns, dims=(-3, -2)).reshape(obs.shape)


def next_colours_entered(obs: np.ndarray, n_walls: int, n_colours: int) -> np.ndarray:
    """For observations ``o_1..o_{T+1}`` (T+1, size*size*C) of one episode, the colour the agent
    enters next from each step t = 1..T (T,): the colour of the first cell it steps onto from
    a different cell at step t or later (the pinpad visit rule), -1 if none. Read from the
    observations alone: no task or label."""
    c = n_channels(n_walls, n_colours)
    cells = obs.reshape(len(obs), -1, c)
    agent = cells[..., -1].argmax(1)  # (T+1,) the agent's cell
    colour = cells[np.arange(len(obs)), agent, n_walls : n_walls + n_colours]
    on_colour = np.where(colour.max(1) > 0, colour.argmax(1), -1)
    entered = np.where(agent[1:] != agent[:-1], on_colour[1:], -1)  # (T,) colour entered at t
    out = np.full(len(entered), -1, dtype=np.int64)
    nxt = -1
    for t in range(len(entered) - 1, -1, -1):
        if entered[t] >= 0:
            nxt = entered[t]
        out[t] = nxt
    return out


def distance_maps(
    walls: np.ndarray, colours: np.ndarray, targets: np.ndarray, size: int
) -> np.ndarray:
    """Shortest-path distances to each target colour, (N, K, size*size) int16.

    ``targets`` is (N, K) colour indices (-1 = padding). For target ``k`` the obstacles are the
    walls and every coloured cell except the target's own (stepping on another colour ends the
    episode). Obstacles and cells that cannot reach the target hold :data:`UNREACHABLE`.
    """
    n, k = targets.shape
    cells = size * size
    blocked = np.zeros((n, k, cells), dtype=bool)
    rows = np.arange(n)[:, None]
    blocked_once = np.zeros((n, cells), dtype=bool)
    blocked_once[rows, walls] = True
    blocked_once[rows, colours] = True
    blocked[:] = blocked_once[:, None, :]
    valid = targets >= 0
    target_cells = np.take_along_axis(colours, np.where(valid, targets, 0), axis=1)  # (N, K)
    ni, ki = np.nonzero(valid)
    blocked[ni, ki, target_cells[ni, ki]] = False

    dist = np.full((n, k, size, size), UNREACHABLE, dtype=np.int16)
    flat = dist.reshape(n, k, cells)
    flat[ni, ki, target_cells[ni, ki]] = 0
    blocked = blocked.reshape(n, k, size, size)
    big = np.int16(UNREACHABLE)
    for _ in range(cells):
        padded = np.pad(dist, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=big)
        neighbour = np.minimum(
            np.minimum(padded[..., :-2, 1:-1], padded[..., 2:, 1:-1]),
            np.minimum(padded[..., 1:-1, :-2], padded[..., 1:-1, 2:]),
        )
        new = np.minimum(dist, np.minimum(neighbour + 1, big))
        new[blocked] = big
        if np.array_equal(new, dist):
            break
        dist = new
    return dist.reshape(n, k, cells)


def distances_after_moves(dist: np.ndarray, size: int) -> np.ndarray:
    """Distance to each target after each move (up, right, down, left) from each cell,
    (K, 4, size*size) int64, given ``dist`` (K, size*size) from :func:`distance_maps`. A move
    off the grid holds :data:`UNREACHABLE`, as moves into obstacles already do."""
    move = move_table(size)  # (4, cells)
    after = dist[:, move].astype(np.int64)
    after[:, move == np.arange(size * size)[None]] = UNREACHABLE
    return after


def action_values(
    agent: np.ndarray, dist_to_target: np.ndarray, walls_mask: np.ndarray, size: int
) -> np.ndarray:
    """Distance to the target after each action, (N, 4); bumps into walls/borders are UNREACHABLE.

    ``dist_to_target`` is (N, size*size) for each env's current target; ``walls_mask`` (N, cells).
    """
    nxt = move_table(size)[:, agent].T  # (N, 4)
    rows = np.arange(agent.shape[0])[:, None]
    values = dist_to_target[rows, nxt].astype(np.int32)
    stays = (nxt == agent[:, None]) | walls_mask[rows, nxt]
    values[stays] = UNREACHABLE
    return values


def sample_layouts(
    rng: np.random.Generator,
    tasks: Sequence[Sequence[int]],
    size: int,
    n_walls: int,
    n_colours: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample one layout per task (walls, colours, agent start; no overlaps), uniformly among
    layouts on which the task is solvable (rejection sampling).

    Returns ``walls`` (N, W), ``colours`` (N, O) and ``agent`` (N,).
    """
    n = len(tasks)
    cells = size * size
    if n_walls + n_colours + 1 > cells:
        raise ValueError(
            f"A {size}x{size} grid has {cells} cells, too few for {n_walls} walls, "
            f"{n_colours} colours and the agent."
        )
    k_max = max(len(t) for t in tasks)
    targets = np.full((n, k_max), -1, dtype=np.int64)
    for i, t in enumerate(tasks):
        targets[i, : len(t)] = t
    walls = np.empty((n, n_walls), dtype=np.int64)
    colours = np.empty((n, n_colours), dtype=np.int64)
    agent = np.empty(n, dtype=np.int64)
    todo = np.arange(n)
    for _ in range(1000):
        perm = np.argsort(rng.random((len(todo), cells)), axis=1)
        w, c, a = perm[:, :n_walls], perm[:, n_walls : n_walls + n_colours], perm[:, -1]
        ok = is_solvable(w, c, a, targets[todo], size)
        walls[todo[ok]], colours[todo[ok]], agent[todo[ok]] = w[ok], c[ok], a[ok]
        todo = todo[~ok]
        if len(todo) == 0:
            return walls, colours, agent
    raise RuntimeError(
        "Could not sample a solvable layout in 1000 tries: the grid is too crowded for this task."
    )


def is_solvable(
    walls: np.ndarray, colours: np.ndarray, agent: np.ndarray, targets: np.ndarray, size: int
) -> np.ndarray:
    """Whether each layout lets the agent visit its targets in order, (N,) bool."""
    n, k = targets.shape
    dist = distance_maps(walls, colours, targets, size)
    walls_mask = np.zeros((n, size * size), dtype=bool)
    walls_mask[np.arange(n)[:, None], walls] = True
    ok = np.ones(n, dtype=bool)
    start = agent.copy()
    for j in range(k):
        active = targets[:, j] >= 0
        best = action_values(start, dist[:, j], walls_mask, size).min(axis=1)
        ok &= ~active | (best < UNREACHABLE)
        target_cell = colours[np.arange(n), np.maximum(targets[:, j], 0)]
        start = np.where(active, target_cell, start)
    return ok


# --- single-layout fast path (one env's reset must not cost a batched BFS) -----------------------
@lru_cache(maxsize=16)
def neighbour_lists(size: int) -> tuple[tuple[int, ...], ...]:
    """For every cell, the distinct cells one move away (borders excluded)."""
    table = move_table(size)
    return tuple(
        tuple(sorted({int(table[a, cell]) for a in range(N_ACTIONS)} - {cell}))
        for cell in range(size * size)
    )


def is_solvable_single(
    walls: Sequence[int], colours: Sequence[int], agent: int, task: Sequence[int], size: int
) -> bool:
    """Scalar twin of :func:`is_solvable` using connected components of the free cells.

    A segment from cell ``s`` to the target cell ``t`` is possible iff ``t`` is next to ``s`` or
    some free component touches both (free = neither wall nor colour).
    """
    nbrs = neighbour_lists(size)
    blocked = set(walls) | set(colours)
    comp: dict[int, int] = {}
    for start in range(size * size):
        if start in blocked or start in comp:
            continue
        comp[start] = start
        stack = [start]
        while stack:
            cell = stack.pop()
            for n in nbrs[cell]:
                if n not in blocked and n not in comp:
                    comp[n] = start
                    stack.append(n)

    def touching(cell: int) -> set[int]:
        found = {comp[n] for n in nbrs[cell] if n in comp}
        if cell in comp:
            found.add(comp[cell])
        return found

    s = int(agent)
    for colour in task:
        t = int(colours[colour])
        if t not in nbrs[s] and not (touching(s) & touching(t)):
            return False
        s = t
    return True


def sample_layout_single(
    rng: np.random.Generator, task: Sequence[int], size: int, n_walls: int, n_colours: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """One solvable layout (rejection sampling), as :func:`sample_layouts` but fast for N=1."""
    cells = size * size
    for _ in range(1000):
        perm = rng.permutation(cells)
        walls, colours, agent = perm[:n_walls], perm[n_walls : n_walls + n_colours], int(perm[-1])
        if is_solvable_single(walls.tolist(), colours.tolist(), agent, task, size):
            return walls, colours, agent
    raise RuntimeError(
        "Could not sample a solvable layout in 1000 tries: the grid is too crowded for this task."
    )
