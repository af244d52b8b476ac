"""Where pretraining's memory went (Issue 30): the held-out split copied the dataset, and bf16
on a CPU grew oneDNN's per-shape kernel caches without bound (benchmarks/pretrain_memory.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from agents.common import ONEDNN_CACHE_CAPACITY, ONEDNN_CACHE_VARIABLES, bound_onednn_caches
from agents.pretrain import pretrain
from internal_rl_gym.data import Demonstrations
from tests.test_pretrain import tiny_config


def ant_like(n_episodes: int = 6, seed: int = 0) -> Demonstrations:
    """Continuous demonstrations of varying length (obs 49 floats, actions 8, as the ant's)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 12, size=n_episodes)
    steps = int(lengths.sum())
    return Demonstrations(
        observations=rng.normal(size=(steps + n_episodes, 49)).astype(np.float32),
        actions=rng.normal(size=(steps, 8)).astype(np.float32),
        targets=rng.integers(0, 4, size=steps),
        subgoals=rng.integers(0, 4, size=steps),
        lengths=lengths,
        tasks=rng.integers(0, 4, size=(n_episodes, 2)),
        obs_dim=49,
        packed=False,
        metadata={"env_id": "AntPinpadRoutes-v0"},
    )


def test_the_held_out_split_shares_the_loaded_arrays_instead_of_copying_them():
    data = ant_like()
    train, held = data.split(2)
    arrays = ("observations", "actions", "targets", "subgoals", "lengths", "tasks")
    for part in (train, held):
        for name in arrays:
            assert np.shares_memory(getattr(part, name), getattr(data, name)), name
    # no new memory: every part's array is a view that owns none
    assert all(getattr(p, name).base is not None for p in (train, held) for name in arrays)
    # the same episodes as a copy would hold
    for part, episodes in ((train, np.arange(4)), (held, np.arange(4, 6))):
        copy = data.select(episodes)
        assert part.n_episodes == copy.n_episodes and part.metadata == copy.metadata
        for name in arrays:
            np.testing.assert_array_equal(getattr(part, name), getattr(copy, name))
        for i in range(part.n_episodes):
            for k, v in part.episode(i).items():
                np.testing.assert_array_equal(v, copy.episode(i)[k])


def test_episode_range_is_a_view_of_any_contiguous_run_of_episodes():
    data = ant_like(8)
    part = data.episode_range(2, 5)
    np.testing.assert_array_equal(part.lengths, data.lengths[2:5])
    np.testing.assert_array_equal(part.episode(0)["obs"], data.episode(2)["obs"])
    assert np.shares_memory(part.observations, data.observations)


@pytest.fixture
def no_cache_settings(monkeypatch):
    """The oneDNN cache variables unset for the test and restored (or removed) after it."""
    for name in ONEDNN_CACHE_VARIABLES:
        monkeypatch.setenv(name, "x")  # records the original value, so teardown restores it
        monkeypatch.delenv(name)


def test_pretraining_bounds_onednn_kernel_caches_before_it_trains(tmp_path, no_cache_settings):
    path = ant_like(20).save(tmp_path / "ant.npz")
    run = tmp_path / "run"
    cfg = dict(data=str(path), preset="ant-cpu", holdout=2, batch_size=4, precision="bf16")
    pretrain(tiny_config(run, steps=2, **cfg))
    assert all(os.environ[v] == str(ONEDNN_CACHE_CAPACITY) for v in ONEDNN_CACHE_VARIABLES)


def test_a_cache_size_set_by_the_user_is_kept(monkeypatch, no_cache_settings):
    monkeypatch.setenv("LRU_CACHE_CAPACITY", "256")
    bound_onednn_caches()
    assert os.environ["LRU_CACHE_CAPACITY"] == "256"
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == str(ONEDNN_CACHE_CAPACITY)
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        bound_onednn_caches(0)  # LRU_CACHE_CAPACITY=0 segfaults PyTorch
