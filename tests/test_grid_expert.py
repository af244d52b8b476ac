"""The grid expert, the batched collector and the dataset file format."""

import gymnasium as gym
import numpy as np
import pytest

import internal_rl_gym  # noqa: F401
from internal_rl_gym.data import Demonstrations
from internal_rl_gym.envs.grid_expert import GridPinpadExpert, collect_grid_demonstrations
from internal_rl_gym.tasks import GRID_POST_TASK, GRID_PRETRAINING_TASKS


def run_expert(task, seed, epsilon=0.0):
    env = gym.make("GridPinpad-v0", task=task)
    expert = GridPinpadExpert(epsilon=epsilon, seed=seed)
    env.reset(seed=seed)
    steps = 0
    while True:
        _, _, term, trunc, info = env.step(expert.act(env))
        steps += 1
        if term or trunc:
            return info["success"], steps


@pytest.mark.parametrize("task", [*GRID_PRETRAINING_TASKS, GRID_POST_TASK])
def test_expert_solves_every_paper_task(task):
    results = [run_expert(task, seed) for seed in range(25)]
    assert all(ok for ok, _ in results)


def test_noisy_expert_never_steps_on_a_wrong_colour():
    for seed in range(40):
        ok, steps = run_expert("pretraining", seed, epsilon=0.3)
        assert ok or steps == 100  # only timeouts may fail


def test_expert_is_stochastic_among_shortest_paths():
    """Different expert seeds on one layout: different paths, all of the same (shortest) length."""
    env = gym.make("GridPinpad-v0", task="post")
    paths = set()
    lengths = set()
    for s in range(30):
        env.reset(seed=3)
        expert = GridPinpadExpert(seed=s)
        actions, done = [], False
        while not done:
            actions.append(expert.act(env))
            _, _, term, trunc, info = env.step(actions[-1])
            done = term or trunc
        assert info["success"]
        paths.add(tuple(actions))
        lengths.add(len(actions))
    assert len(paths) > 5 and len(lengths) == 1
    post_lengths = collect_grid_demonstrations(300, "post", seed=0).lengths
    assert 40 < post_lengths.mean() < 90


def test_collector_matches_the_env_step_for_step():
    data = collect_grid_demonstrations(40, "pretraining", seed=1, epsilon=0.2, batch_size=16)
    env = gym.make("GridPinpad-v0")
    for i in range(data.n_episodes):
        ep = data.episode(i)
        grid = ep["obs"][0].reshape(49, 13)
        layout = {
            "walls": grid[:, :4].argmax(0),
            "colours": grid[:, 4:12].argmax(0),
            "agent": int(grid[:, 12].argmax()),
        }
        obs, _ = env.reset(options={"layout": layout, "task": tuple(ep["task"])})
        assert np.array_equal(obs, ep["obs"][0])
        for t, a in enumerate(ep["actions"]):
            obs, r, term, trunc, info = env.step(int(a))
            assert np.array_equal(obs, ep["obs"][t + 1])
            assert info["target"] == (ep["targets"][t + 1] if t + 1 < len(ep["actions"]) else -1)
        assert term and info["success"] and r == 1.0


def test_collector_is_reproducible_and_labels_are_consistent():
    a = collect_grid_demonstrations(100, "pretraining", seed=5)
    b = collect_grid_demonstrations(100, "pretraining", seed=5)
    c = collect_grid_demonstrations(100, "pretraining", seed=6)
    assert np.array_equal(a.observations, b.observations) and np.array_equal(a.actions, b.actions)
    assert not np.array_equal(a.actions[:50], c.actions[:50])
    assert np.array_equal(a.subgoals, a.targets // 2)
    assert a.n_episodes == 100 and a.metadata["dropped"] == 0
    assert {tuple(t) for t in a.tasks} <= set(GRID_PRETRAINING_TASKS)


def test_dataset_roundtrip_and_batches(tmp_path):
    data = collect_grid_demonstrations(20, "post", seed=0)
    path = data.save(tmp_path / "demo.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["demo.npz"]  # no temp files left
    loaded = Demonstrations.load(path)
    assert np.array_equal(loaded.observations, data.observations)
    assert loaded.metadata["epsilon"] == 0.0 and loaded.obs_dim == 637
    batch = loaded.batch(np.array([0, 1, 2]))
    t = batch["mask"].shape[1]
    assert batch["obs"].shape == (3, t + 1, 637) and batch["actions"].shape == (3, t)
    assert batch["mask"].sum() == loaded.lengths[:3].sum()
    ep = loaded.episode(2)
    n = len(ep["actions"])
    assert np.array_equal(batch["obs"][2, : n + 1], ep["obs"])
    train, held = loaded.split(5)
    assert train.n_episodes == 15 and held.n_episodes == 5


def test_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="internal-rl collect"):
        Demonstrations.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable"):
        Demonstrations.load(bad)
    with pytest.raises(ValueError, match="n_episodes"):
        collect_grid_demonstrations(0)


def test_dataset_rejects_observations_of_another_width():
    data = collect_grid_demonstrations(3, "post", seed=0)
    fields = {k: v for k, v in vars(data).items() if k not in ("act_offsets", "obs_offsets")}
    assert data.packed and data.observations.shape[1] == 80  # ceil(637 / 8) bytes
    with pytest.raises(ValueError, match="obs_dim is 600"):
        Demonstrations(**{**fields, "obs_dim": 600})
    floats = data.decode_observations(np.arange(len(data.observations)))
    with pytest.raises(ValueError, match=r"obs_dim is 641.*\(\d+, 637\)"):
        Demonstrations(**{**fields, "observations": floats, "packed": False, "obs_dim": 641})
    Demonstrations(**{**fields, "observations": floats, "packed": False})  # the right width
