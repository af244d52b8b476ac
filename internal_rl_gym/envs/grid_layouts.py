"""Batched GridPinpad layouts: uniform sampling of solvable layouts for many envs at once, and the
checks behind it (free-cell components, task solvability), all numpy array operations with no
Python loop over envs. :class:`~internal_rl_gym.envs.grid_vector.GridPinpadVectorEnv` draws its
layouts here; the single env's rules are in :mod:`~internal_rl_gym.envs.grid_core`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from internal_rl_gym.envs import grid_core

__all__ = ["free_components", "sample_solvable_layouts", "solvable_layouts"]


def free_components(walls: np.ndarray, colours: np.ndarray, size: int) -> np.ndarray:
    """Connected components of the free cells (neither wall nor colour) of N layouts, (N, cells).

    Each free cell holds the smallest cell index of its component, every blocked cell ``cells``.
    Min-label propagation over shifted views of the padded grids (no Python loop over envs).
    """
    n, cells = len(walls), size * size
    big = cells
    free = np.ones((n, cells), dtype=bool)
    rows = np.arange(n)[:, None]
    free[rows, walls] = False
    free[rows, colours] = False
    free = free.reshape(n, size, size)
    dtype = np.int16 if cells < np.iinfo(np.int16).max else np.int32
    padded = np.full((n, size + 2, size + 2), big, dtype=dtype)
    label = padded[:, 1:-1, 1:-1]  # a view: updating it updates the padded grid
    label[...] = np.where(free, np.arange(cells, dtype=dtype).reshape(size, size), big)
    for _ in range(cells):
        smallest = np.minimum(
            np.minimum(padded[:, :-2, 1:-1], padded[:, 2:, 1:-1]),
            np.minimum(padded[:, 1:-1, :-2], padded[:, 1:-1, 2:]),
        )
        new = np.where(free, np.minimum(label, smallest), big)
        if np.array_equal(new, label):
            break
        label[...] = new
    return label.reshape(n, cells).astype(np.int64)


def solvable_layouts(
    walls: np.ndarray, colours: np.ndarray, agent: np.ndarray, targets: np.ndarray, size: int
) -> np.ndarray:
    """Batched twin of :func:`grid_core.is_solvable_single`, (N,) bool.

    ``walls`` (N, W), ``colours`` (N, O), ``agent`` (N,), ``targets`` (N, K) colour indices padded
    with -1. A segment from cell ``s`` to the target's cell ``t`` is possible iff ``t`` is next to
    ``s`` or one connected component of free cells (neither wall nor colour) touches both (is at
    or next to the cell). Grids up to 7x7 use 64-bit bitboards (one integer per layout and
    seed), larger ones component labels.
    """
    active = targets >= 0
    ends = np.take_along_axis(colours, np.where(active, targets, 0), axis=1)  # (n, K) cells
    starts = np.concatenate([agent[:, None], ends[:, :-1]], axis=1)
    rs, cs, rt, ct = starts // size, starts % size, ends // size, ends % size
    adjacent = np.abs(rs - rt) + np.abs(cs - ct) == 1
    if size * (size + 1) <= 64:
        shared = _shared_component_bitboard(walls, colours, agent, targets, ends, size)
    else:
        shared = _shared_component_labels(walls, colours, starts, ends, size)
    return (adjacent | shared | ~active).all(axis=1)


@lru_cache(maxsize=8)
def _cell_bits(size: int) -> np.ndarray:
    """The bit of each cell on a bitboard of rows of ``size + 1`` bits (the last one a guard that
    is never free, so that shifting by one never wraps a row)."""
    cell = np.arange(size * size)
    bits = np.left_shift(
        np.uint64(1), ((cell // size) * (size + 1) + cell % size).astype(np.uint64)
    )
    bits.setflags(write=False)
    return bits


def _shared_component_bitboard(
    walls: np.ndarray,
    colours: np.ndarray,
    agent: np.ndarray,
    targets: np.ndarray,
    ends: np.ndarray,
    size: int,
) -> np.ndarray:
    """(N, K): whether a free component touches both ends of each task segment (bitboards).

    From each colour and from the agent, flood-fill the free cells next to it (and the agent's
    own cell): the union of the components touching it. A segment's start shares a component with
    its end iff that union reaches a cell next to the end.
    """
    n, n_colours = colours.shape
    bits = _cell_bits(size)
    one, row = np.uint64(1), np.uint64(size + 1)

    def spread(x: np.ndarray) -> np.ndarray:  # the cells at or next to the cells of x
        return x | (x << one) | (x >> one) | (x << row) | (x >> row)

    blocked = np.zeros(n, dtype=np.uint64)
    for column in (*walls.T, *colours.T):  # cells are distinct: OR column by column (fast)
        blocked |= bits[column]
    free = (np.bitwise_or.reduce(bits) & ~blocked)[:, None]
    seeds = np.concatenate([bits[colours], bits[agent][:, None]], axis=1)  # (N, O + 1)
    reach = spread(seeds) & free
    for _ in range(min(10, size * size)):  # most fills finish within ~10 steps on a 7x7 grid
        reach = spread(reach) & free
    reach = reach.reshape(-1)
    free = np.repeat(free[:, 0], n_colours + 1)
    todo = np.flatnonzero((spread(reach) & free) != reach)  # then only the fills still growing
    while len(todo):
        grown = spread(reach[todo]) & free[todo]
        changed = grown != reach[todo]
        reach[todo] = grown
        todo = todo[changed]
    reach = reach.reshape(n, n_colours + 1)
    active = targets >= 0
    # The seed of each segment's start: the agent (index O) first, then the previous target.
    start_seed = np.concatenate(
        [np.full((n, 1), n_colours), np.where(active, targets, 0)[:, :-1]], axis=1
    )
    from_start = np.take_along_axis(reach, start_seed, axis=1)
    return (from_start & spread(bits[ends])) != 0


def _shared_component_labels(
    walls: np.ndarray, colours: np.ndarray, starts: np.ndarray, ends: np.ndarray, size: int
) -> np.ndarray:
    """(N, K): as :func:`_shared_component_bitboard`, from component labels (any grid size)."""
    n, cells = len(walls), size * size
    label = free_components(walls, colours, size)
    nbr = _neighbours(size)
    flat = np.concatenate([label, np.full((n, 1), cells)], axis=1).reshape(-1)
    base = (np.arange(n) * (cells + 1))[:, None, None]
    ts = flat[base + np.concatenate([nbr[starts], starts[..., None]], axis=2)]
    tt = flat[base + np.concatenate([nbr[ends], ends[..., None]], axis=2)]
    return ((ts[..., :, None] == tt[..., None, :]) & (ts[..., :, None] != cells)).any((2, 3))


@lru_cache(maxsize=16)
def _neighbours(size: int) -> np.ndarray:
    """``(cells, 4)``: the cell one move away in each direction, ``cells`` (a sentinel) off-grid."""
    table = grid_core.move_table(size).T.copy()  # (cells, 4); off-grid moves stay in place
    off = table == np.arange(size * size)[:, None]
    table[off] = size * size
    table.setflags(write=False)
    return table


def sample_solvable_layouts(
    rng: np.random.Generator, targets: np.ndarray, size: int, n_walls: int, n_colours: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One layout per row of ``targets`` (N, K; -1 padding), uniform among the solvable ones.

    Rejection sampling per env, as the single env's reset: each env keeps its task and redraws
    its whole layout until the task is solvable. Several candidates per env are checked in one
    batch, so that few rounds are needed. Returns walls (N, W), colours (N, O), agent (N,).
    """
    n = len(targets)
    cells = size * size
    walls = np.empty((n, n_walls), dtype=np.int64)
    colours = np.empty((n, n_colours), dtype=np.int64)
    agent = np.empty(n, dtype=np.int64)
    todo = np.arange(n)
    tries = 1  # candidates per env in this round
    checked = accepted = 0
    for _ in range(1000):
        m = len(todo)
        perm = np.argsort(rng.random((m * tries, cells)), axis=1)  # uniform permutations
        w, c, a = perm[:, :n_walls], perm[:, n_walls : n_walls + n_colours], perm[:, -1]
        ok = solvable_layouts(w, c, a, np.repeat(targets[todo], tries, axis=0), size)
        ok = ok.reshape(m, tries)
        found = ok.any(axis=1)
        first = np.argmax(ok, axis=1) + np.arange(m) * tries  # the first solvable candidate
        pick, done = first[found], todo[found]
        walls[done], colours[done], agent[done] = w[pick], c[pick], a[pick]
        todo = todo[~found]
        if len(todo) == 0:
            return walls, colours, agent
        # Enough candidates that the next round likely finishes (acceptance estimated so far).
        checked += m * tries
        accepted += int(found.sum())
        p = max(accepted / checked, 0.01)
        tries = int(min(max(np.ceil(np.log(1e-3) / np.log1p(-p)), 2), 64)) if p < 1 else 2
    raise RuntimeError(
        "Could not sample a solvable layout in 1000 tries: the grid is too crowded for this task; "
        "lower n_walls or raise size."
    )
