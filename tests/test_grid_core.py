"""grid_core's array rules checked against hand-worked layouts: what the surviving mutants of
``benchmarks/mutation_testing.py`` showed no other test pinned down (docs/mutation_testing.md)."""

from __future__ import annotations

import numpy as np
import pytest

from internal_rl_gym.envs import grid_core
from internal_rl_gym.envs.grid_core import (
    UNREACHABLE,
    distance_maps,
    n_channels,
    next_colours_entered,
    sample_layout_single,
    sample_layouts,
    static_observations,
)


def episode_obs(walls, colours, agent_cells, size: int) -> np.ndarray:
    """Observations o_1..o_{T+1} of an agent walking ``agent_cells`` on one layout."""
    walls, colours = np.array([walls]), np.array([colours])
    c = n_channels(walls.shape[1], colours.shape[1])
    static = static_observations(walls, colours, size)[0]
    obs = np.repeat(static[None], len(agent_cells), axis=0)
    obs[np.arange(len(agent_cells)), np.array(agent_cells) * c + c - 1] = 1
    return obs


def test_static_observations_are_one_hot_per_wall_and_colour():
    """Mutants: a wall's or a colour's channel set to 2 instead of 1."""
    obs = static_observations(np.array([[0, 4]]), np.array([[1, 2, 8]]), size=3)
    c = n_channels(2, 3)
    assert set(np.unique(obs)) == {0.0, 1.0} and obs.sum() == 5
    cells = obs.reshape(9, c)
    assert cells[0, 0] == cells[4, 1] == 1  # wall k in channel k
    assert cells[1, 2] == cells[2, 3] == cells[8, 4] == 1  # colour i in channel W + i


def test_next_colour_entered_follows_the_pinpad_visit_rule():
    """3x3 grid, walls at 6 and 7, colour 0 at cell 1, colour 1 at cell 5. The agent walks
    0 -> 1 (enters colour 0), bumps the border on 1 (stays: enters nothing), 1 -> 2, 2 -> 5
    (enters colour 1), 5 -> 4 and 4 -> 3 (nothing after). Mutants: the stay counted as entering
    (the comparison against the first position only, or +1 for "none"), "none" as None, the
    trailing "none" as +1/-2/None, the backward loop starting one step early or running one
    past the start, the colour channels' slice ending elsewhere."""
    obs = episode_obs([6, 7], [1, 5], [0, 1, 1, 2, 5, 4, 3], size=3)
    assert next_colours_entered(obs, n_walls=2, n_colours=2).tolist() == [0, 1, 1, 1, -1, -1]
    # starting on a colour is no visit; leaving it and coming back is one
    obs = episode_obs([6, 7], [1, 5], [1, 1, 0, 1, 0], size=3)
    assert next_colours_entered(obs, n_walls=2, n_colours=2).tolist() == [0, 0, 0, -1]
    # the last step enters a colour
    obs = episode_obs([6, 7], [1, 5], [0, 1], size=3)
    assert next_colours_entered(obs, n_walls=2, n_colours=2).tolist() == [0]


def test_distances_on_an_open_grid_are_manhattan_and_zero_on_the_target():
    """Mutants: one step counted as 2; the target's own distance 1."""
    colours = np.array([[0, 8]])  # target colour 0 in the top-left corner; colour 1 blocks 8
    dist = distance_maps(np.array([[4]]), colours, np.array([[0, -1]]), size=3)
    rows, cols = np.divmod(np.arange(9), 3)
    expected = (rows + cols).astype(np.int64)
    expected[[4, 8]] = UNREACHABLE  # the wall and the other colour
    assert dist[0, 0].tolist() == expected.tolist()
    assert (dist[0, 1] == UNREACHABLE).all()  # padding: no target


def test_a_grid_that_just_fits_is_accepted_and_one_cell_less_is_refused():
    """9 cells: 2 walls + 6 colours + the agent fit, 7 colours do not. Mutants: the bound off
    by one either way, the count wrong, the message lost; the agent drawn from the second-last
    cell of the permutation (a colour's)."""
    rng = np.random.default_rng(0)
    walls, colours, agent = sample_layouts(rng, [(0,)] * 8, size=3, n_walls=2, n_colours=6)
    for w, c, a in zip(walls, colours, agent):  # every cell used once
        assert sorted([*w, *c, a]) == list(range(9))
    with pytest.raises(ValueError, match=r"3x3 grid has 9 cells, too few for 2 walls, 7 colours"):
        sample_layouts(rng, [(0,)], size=3, n_walls=2, n_colours=7)


def test_the_single_sampler_never_puts_the_agent_on_a_wall_or_colour():
    """With every cell but one taken, the agent must get the free one. Mutant: the agent drawn
    from the second-last cell of the permutation (a colour here)."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        walls, colours, agent = sample_layout_single(rng, (0,), size=3, n_walls=2, n_colours=6)
        assert sorted([*walls, *colours, agent]) == list(range(9))


def test_no_solvable_layout_says_the_grid_is_too_crowded(monkeypatch):
    """Mutants: the RuntimeError's message changed or dropped (both samplers)."""
    monkeypatch.setattr(grid_core, "is_solvable_single", lambda *a: False)
    monkeypatch.setattr(grid_core, "is_solvable", lambda w, *a: np.zeros(len(w), dtype=bool))
    rng = np.random.default_rng(0)
    message = r"^Could not sample a solvable layout in 1000 tries: the grid is too crowded for"
    with pytest.raises(RuntimeError, match=message):
        sample_layout_single(rng, (0, 1), size=7, n_walls=4, n_colours=8)
    with pytest.raises(RuntimeError, match=message):
        sample_layouts(rng, [(0, 1)], size=7, n_walls=4, n_colours=8)


@pytest.mark.parametrize("as_torch", [False, True])
@pytest.mark.parametrize("batch", [(), (2, 3)])
def test_each_symmetry_moves_a_cell_where_its_geometry_says(as_torch, batch):
    """Mirroring takes column c to size-1-c; a quarter turn counter-clockwise takes (r, c) to
    (size-1-c, r); channels stay. Checked one marked cell at a time, for one observation and a
    (2, 3) batch, numpy and torch. Mutants: the batch dimensions or the grid axes taken from
    the wrong end (``shape[:-2]``, ``dims=(+2,)``, ``(-3, +2)``)."""
    import torch

    size, c = 7, n_channels(4, 8)
    for turns in range(4):
        for mirror in (False, True):
            for r, col, ch in [(0, 1, c - 1), (6, 3, 0), (2, 5, 7)]:
                obs = np.zeros((*batch, size * size * c), np.float32)
                where = (*[b - 1 for b in batch], (r * size + col) * c + ch)  # the last row
                obs[where] = 1
                rr, cc = r, (size - 1 - col if mirror else col)
                for _ in range(turns):
                    rr, cc = size - 1 - cc, rr
                x = torch.as_tensor(obs) if as_torch else obs
                out = np.asarray(grid_core.transform_grid_observations(x, turns, mirror, size))
                assert out.shape == obs.shape and out.sum() == 1
                assert out[(*where[:-1], (rr * size + cc) * c + ch)] == 1
