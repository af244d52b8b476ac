"""`internal-rl probe`: linear probes and ground-truth controllers on a tiny base model."""

from __future__ import annotations

import json

import pytest
import torch

from agents.data_sources import fresh_activation_batches
from agents.probe import (
    ProbeConfig,
    ScaledControllers,
    controlled_nll,
    evaluate_controllers,
    load_subgoal_controllers,
    probe,
    train_subgoal_controllers,
)
from internal_rl_gym.envs.grid_expert import collect_grid_demonstrations


def _fresh_batches(base, layer: int = 1, batch_size: int = 16):
    return fresh_activation_batches(base, layer, "pretraining", 4 * batch_size, batch_size, 1)


def test_ground_truth_controllers_lower_the_held_out_action_nll(tiny_checkpoints):
    from internal_rl_gym.hub import load_base_model

    base = load_base_model(tiny_checkpoints["base_model"])
    held = collect_grid_demonstrations(64, "pretraining", seed=3)
    before = controlled_nll(base, None, 0, held)
    ctrl, train_nll = train_subgoal_controllers(base, _fresh_batches(base), 1, 60, 1e-2, 0.0, 4, 0)
    after = controlled_nll(base, ctrl, 1, held)
    assert after < before - 0.05 and abs(after - train_nll) < 0.2
    # The base model stays frozen: training touched only the controllers.
    assert not any(p.requires_grad for p in base.parameters())
    assert all(p.grad is not None for p in ctrl.parameters())


def test_bf16_controllers_train_like_fp32(tiny_checkpoints):
    from internal_rl_gym.hub import load_base_model

    base = load_base_model(tiny_checkpoints["base_model"])
    held = collect_grid_demonstrations(64, "pretraining", seed=3)
    before = controlled_nll(base, None, 0, held)
    fp32, _ = train_subgoal_controllers(base, _fresh_batches(base), 1, 60, 1e-2, 0.0, 4, 0)
    bf16, _ = train_subgoal_controllers(
        base, _fresh_batches(base), 1, 60, 1e-2, 0.0, 4, 0, precision="bf16"
    )
    assert all(p.dtype == torch.float32 for p in bf16.parameters())
    after_fp32, after_bf16 = (controlled_nll(base, c, 1, held) for c in (fp32, bf16))
    assert after_bf16 < before - 0.05 and abs(after_bf16 - after_fp32) < 0.05


def test_controller_evaluation_is_reproducible(tiny_checkpoints):
    from internal_rl_gym.hub import load_base_model

    base = load_base_model(tiny_checkpoints["base_model"])
    ctrl, _ = train_subgoal_controllers(
        base, _fresh_batches(base, 1, 8), 1, 2, 1e-3, 0.0, 4, seed=0
    )
    runs = [evaluate_controllers(base, ctrl, 1, "0-1-4-5-0-1", 8, seed=5) for _ in range(2)]
    assert runs[0] == runs[1] and 0.0 <= runs[0] <= 1.0


def test_probe_writes_json_and_plot(tiny_checkpoints, tmp_path):
    cfg = ProbeConfig(
        base_model=tiny_checkpoints["base_model"],
        out=str(tmp_path / "probe"),
        layers=[0, 1],
        probe_episodes=40,
        controller_steps=3,
        batch_size=8,
        eval_episodes=4,
        diagnostic_tasks=["0-1", "0-1-2-3"],
    )
    report = probe(cfg)
    saved = json.loads((tmp_path / "probe" / "probe.json").read_text())
    assert saved["n_layers"] == 2 and len(saved["probe_accuracy_by_layer"]) == 3
    assert [c["layer"] for c in saved["controllers"]] == [0, 1]
    assert all(0.0 <= c["success"] <= 1.0 for c in report["controllers"])
    assert not any("success_mean" in c for c in report["controllers"])  # discrete: no mean
    assert all(0.0 <= c["success_pretraining_tasks"] <= 1.0 for c in report["controllers"])
    assert list(saved["controllers"][0]["success_by_task"]) == ["0-1", "0-1-2-3"]
    assert (tmp_path / "probe" / "probe.png").stat().st_size > 1000
    # a model card reads its numbers from the report's metrics block
    from internal_rl_gym.cards import metrics_from_results

    card = metrics_from_results(saved)
    key = "success rate, post-training task, ground-truth controllers at layer 1"
    assert card[key] == (saved["controllers"][1]["success"], None)
    assert card["subgoal probe accuracy, layer 2"][0] == saved["probe_accuracy_by_layer"][2]
    from safetensors.torch import load_file

    from internal_rl_gym.models import SubgoalControllers

    ctrl = SubgoalControllers(16, 4, cfg.rank)
    ctrl.load_state_dict(load_file(tmp_path / "probe" / "controllers_layer1.safetensors"))


@pytest.mark.parametrize("rank", [4, 0])
def test_subgoal_controllers_apply_the_labelled_controller(rank):
    from internal_rl_gym.models import SubgoalControllers

    torch.manual_seed(0)
    ctrl = SubgoalControllers(8, 4, rank)
    with torch.no_grad():
        for p in ctrl.parameters():
            p.normal_()
    e, g = torch.randn(3, 5, 8), torch.randint(0, 4, (3, 5))
    out = ctrl(e, g)
    for b in range(3):
        for t in range(5):
            k = int(g[b, t])
            u = ctrl.a[k] @ ctrl.b[k].T if rank else ctrl.u[k]
            torch.testing.assert_close(out[b, t], e[b, t] + u @ e[b, t])


@pytest.mark.parametrize("rank", [0, 4])
def test_saved_controllers_load_back_exactly(tiny_checkpoints, tmp_path, rank):
    from safetensors.torch import save_file

    from internal_rl_gym.hub import load_base_model
    from internal_rl_gym.models import BaseModel, SubgoalControllers

    base = load_base_model(tiny_checkpoints["base_model"])
    torch.manual_seed(0)
    ctrl = SubgoalControllers(base.d_model, 4, rank)
    for param in ctrl.parameters():
        param.data.normal_()
    save_file(ctrl.state_dict(), str(tmp_path / "c.safetensors"))
    loaded = load_subgoal_controllers(tmp_path / "c.safetensors", base)
    assert loaded.rank == rank
    e, g = torch.randn(5, base.d_model), torch.tensor([0, 1, 2, 3, 1])
    torch.testing.assert_close(loaded(e, g), ctrl(e, g), rtol=0, atol=0)
    other = BaseModel(obs_dim=base.obs_dim, n_actions=4, d_model=2 * base.d_model, n_layers=2)
    with pytest.raises(ValueError, match="do not fit this base model"):
        load_subgoal_controllers(tmp_path / "c.safetensors", other)
    with pytest.raises(FileNotFoundError, match="internal-rl probe"):
        load_subgoal_controllers(tmp_path / "missing.safetensors", base)


def test_scaled_controllers_scale_the_push():
    from internal_rl_gym.models import SubgoalControllers

    torch.manual_seed(0)
    ctrl = SubgoalControllers(8, 4, rank=2)
    with torch.no_grad():
        ctrl.a.normal_()
    e, g = torch.randn(5, 8), torch.tensor([0, 1, 2, 3, 1])
    push = ctrl(e, g) - e
    assert push.abs().max() > 0.1
    torch.testing.assert_close(ScaledControllers(ctrl, 1.0)(e, g), ctrl(e, g))
    torch.testing.assert_close(ScaledControllers(ctrl, 2.5)(e, g), e + 2.5 * push)


def test_fresh_batches_from_worker_processes_match_and_stop_with_the_generator(tiny_checkpoints):
    import multiprocessing
    import time

    from internal_rl_gym.hub import load_base_model

    base = load_base_model(tiny_checkpoints["base_model"])
    batches = fresh_activation_batches(base, 1, "pretraining", 64, 16, 1, workers=1)
    b = next(batches)
    assert b["e"].shape[0] == 16 and b["e"].shape[-1] == base.d_model
    assert b["subgoals"].shape == b["mask"].shape
    assert multiprocessing.active_children()
    batches.close()
    deadline = time.time() + 30
    while multiprocessing.active_children() and time.time() < deadline:
        time.sleep(0.1)
    assert not multiprocessing.active_children()


def test_plot_draws_controller_success_in_layer_order(tmp_path, monkeypatch):
    # `--layers 3 0 6` trains L/2 first; the curve must still run 0, 3, 6 left to right
    import matplotlib.axes

    from agents.probe import plot

    drawn: list[list[int]] = []
    original = matplotlib.axes.Axes.plot

    def spy(self, x, *args, **kwargs):
        drawn.append(list(x))
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    ctrl = [{"layer": l, "success": 0.1 * l, "success_greedy": 0.2} for l in (3, 0, 6)]
    report = {
        "probe_accuracy_by_layer": [0.3] * 7,
        "probe_majority_baseline": 0.25,
        "controllers": ctrl,
        "success_without_control": 0.0,
        "task": "post",
    }
    plot(report, tmp_path)
    assert drawn[1:] == [[0, 3, 6], [0, 3, 6]]
    assert (tmp_path / "probe.png").is_file()


def _ant_probe_config(tiny_ant, tmp_path, **overrides) -> ProbeConfig:
    """A probe of the tiny ant at layer 1, small enough for a test."""
    base = dict(
        base_model=tiny_ant["base_model"],
        data=tiny_ant["data"],
        out=str(tmp_path / "probe"),
        layers=[1],
        batch_size=4,
        probe_episodes=10,
        threads=1,
    )
    return ProbeConfig(**{**base, **overrides})


def test_probe_on_the_ant_reads_a_dataset_and_handles_torques(tiny_ant, tmp_path):
    """Continuous actions: Gaussian controller loss, Gaussian rollouts, ant free play."""
    from agents.probe import ANT_DIAGNOSTIC_TASKS

    cfg = _ant_probe_config(tiny_ant, tmp_path, controller_steps=40, lr=1e-2, eval_episodes=2)
    report = probe(cfg)
    assert report["env_id"] == "AntPinpad-v0" and report["task"] == "post"
    assert set(report["bc_free_play"]) >= {"task_consistent", "mean_colours_visited"}
    (c,) = report["controllers"]
    assert set(c["success_by_task"]) == set(ANT_DIAGNOSTIC_TASKS)
    assert 0.0 <= c["success_mean"] <= 1.0  # a continuous head also acts with its mean action
    # the controllers fit the expert's torques better than the base model alone, held out
    assert c["heldout_nll"] < report["heldout_nll_without_control"]
    # the held-out NLL is the same computed in chunks of one episode
    from agents.probe import controlled_nll, load_subgoal_controllers
    from internal_rl_gym.data import Demonstrations
    from internal_rl_gym.hub import load_base_model

    base = load_base_model(tiny_ant["base_model"])
    data = Demonstrations.load(tiny_ant["data"])
    ctrl = load_subgoal_controllers(tmp_path / "probe" / "controllers_layer1.safetensors", base)
    whole, one_by_one = (controlled_nll(base, ctrl, 1, data, chunk=k) for k in (256, 1))
    assert abs(whole - one_by_one) < 1e-4 * abs(whole)
    assert (tmp_path / "probe" / "controllers_layer1.safetensors").is_file()


def test_probe_acts_with_the_mean_action_where_asked(tiny_ant, tmp_path, monkeypatch):
    """``act="mean"`` reaches free play, the base model alone and the controllers' secondary
    evaluations; the main task is still reported sampled, greedy and with the mean action."""
    import agents.probe as probe_module
    from agents.diagnostics import env_free_play
    from internal_rl_gym.hub import load_base_model
    from internal_rl_gym.tasks import ANT_PRETRAINING_TASKS

    calls: list[tuple[str, str, bool]] = []  # (task, act, controlled)

    def recording(base, ctrl, layer, task, n_episodes, seed, act="sample", env_id=""):
        calls.append((task, act, ctrl is not None))
        return evaluate_controllers(base, ctrl, layer, task, n_episodes, seed, act, env_id)

    monkeypatch.setattr(probe_module, "evaluate_controllers", recording)
    cfg = _ant_probe_config(
        tiny_ant,
        tmp_path,
        controller_steps=5,
        eval_episodes=3,
        diagnostic_tasks=["0-1"],
        act="mean",
    )
    report = probe(cfg)
    assert report["act"] == "mean"
    assert sorted(calls) == sorted(
        [
            ("post", "mean", False),
            ("post", "sample", True),
            ("post", "greedy", True),
            ("post", "mean", True),
            ("pretraining", "mean", True),
            ("0-1", "mean", True),
        ]
    )
    base = load_base_model(tiny_ant["base_model"])
    mean_play, sampled_play = (
        env_free_play(base, report["env_id"], ANT_PRETRAINING_TASKS, n_episodes=3, seed=0, act=a)
        for a in ("mean", "sample")
    )
    assert report["bc_free_play"] == mean_play != sampled_play
    # a card names the numbers read with the mean action as such
    assert (
        report["metrics"]["pretraining task completed, base model alone (free play, mean action)"]
        == mean_play["task_consistent"]
    )
    assert (
        "success rate, pretraining tasks, ground-truth controllers at layer 1, mean action"
        in report["metrics"]
    )


def test_probe_refuses_the_mean_action_for_a_discrete_head(tiny_checkpoints, tmp_path):
    cfg = ProbeConfig(base_model=tiny_checkpoints["base_model"], out=str(tmp_path), act="mean")
    with pytest.raises(ValueError, match="discrete: use --act sample or --act greedy"):
        probe(cfg)
    assert not (tmp_path / "probe.json").exists()  # refused before any work
