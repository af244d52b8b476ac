"""`internal-rl discover` end to end on a tiny base model: outputs, data sources, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from agents.discover import DiscoverConfig, discover, kl_weight, match_switches, switch_onsets
from internal_rl_gym.data import Demonstrations
from internal_rl_gym.envs.grid_expert import collect_grid_demonstrations
from internal_rl_gym.hub import load_metacontroller
from tests.conftest import as_if_saved_on_a_gpu


def _config(tiny_checkpoints, out, **kw) -> DiscoverConfig:
    defaults = dict(
        base_model=tiny_checkpoints["base_model"],
        out=str(out),
        alpha=[0.1, 0.3],
        steps=4,
        batch_size=8,
        episodes=32,
        holdout=16,
        eval_every=2,
        n_z=4,
        rank=4,
    )
    return DiscoverConfig(**{**defaults, **kw})


def test_alpha_sweep_writes_models_reports_and_plots(tiny_checkpoints, tmp_path):
    summary = discover(_config(tiny_checkpoints, tmp_path / "d"))
    saved = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert [r["alpha"] for r in saved["runs"]] == [0.1, 0.3]
    assert saved["best_alpha"] in (0.1, 0.3) and saved["layer"] == 1
    for alpha in ("0.1", "0.3"):
        meta = load_metacontroller(tmp_path / "d" / f"alpha_{alpha}" / "model")
        assert meta.layer == 1
        report = json.loads((tmp_path / "d" / f"alpha_{alpha}" / "report.json").read_text())
        run = next(r for r in saved["runs"] if str(r["alpha"]) == alpha)
        assert report["switch_f1"] == run["switch_f1"] and "warning" in report
    for png in ("rate_distortion.png", "beta_trace.png"):
        assert (tmp_path / "d" / png).exists(), png
    # free play of 128 episodes of up to 100 steps, abstract steps capped at 50: every episode
    # has at least one segment that ended before the episode did
    assert summary["abstract_action_check"]["segments"] >= 128


def test_trains_from_a_dataset_file(tiny_checkpoints, tmp_path):
    collect_grid_demonstrations(40, "pretraining", seed=1).save(tmp_path / "clean.npz")
    cfg = _config(tiny_checkpoints, tmp_path / "d", data=str(tmp_path / "clean.npz"), alpha=[0.1])
    summary = discover(cfg)
    assert summary["runs"][0]["true_subgoals_per_episode"] == pytest.approx(3.0)
    assert Demonstrations.load(tmp_path / "clean.npz").n_episodes == 40


def test_resume_continues_from_the_last_checkpoint(tiny_checkpoints, tmp_path, capsys):
    discover(_config(tiny_checkpoints, tmp_path / "d", alpha=[0.1]))
    discover(_config(tiny_checkpoints, tmp_path / "d", alpha=[0.1], steps=6))
    assert "resumed at step 4" in capsys.readouterr().out


def test_keep_checkpoints_saves_each_evaluations_metacontroller(tiny_checkpoints, tmp_path):
    discover(_config(tiny_checkpoints, tmp_path / "d", alpha=[0.1], keep_checkpoints=True))
    run = tmp_path / "d" / "alpha_0.1"
    assert sorted(p.name for p in run.glob("model_step*")) == ["model_step2", "model_step4"]
    first, last = (load_metacontroller(run / f"model_step{n}") for n in (2, 4))
    latest = load_metacontroller(run / "model")
    for b, c in zip(last.parameters(), latest.parameters()):
        assert torch.equal(b, c)  # model/ is the last evaluation's
    assert any(not torch.equal(a, b) for a, b in zip(first.parameters(), last.parameters()))
    discover(_config(tiny_checkpoints, tmp_path / "e", alpha=[0.1]))
    assert not list((tmp_path / "e" / "alpha_0.1").glob("model_step*"))


def test_a_switch_cost_closes_the_gate(tiny_checkpoints, tmp_path):
    def beta_mean(cost: float) -> float:
        cfg = _config(tiny_checkpoints, tmp_path / f"c{cost}", alpha=[0.1], steps=20,
                      eval_every=20, kl_warmup=0, switch_cost=cost)  # fmt: skip
        return discover(cfg)["runs"][0]["beta_mean"]

    free, costed = beta_mean(0.0), beta_mean(50.0)
    assert costed < 0.5 * free, (free, costed)


def test_a_negative_switch_cost_is_refused(tiny_checkpoints, tmp_path):
    with pytest.raises(ValueError, match="--switch-cost"):
        discover(_config(tiny_checkpoints, tmp_path / "d", switch_cost=-1.0))


def test_a_state_saved_on_a_gpu_resumes_on_the_cpu(tiny_checkpoints, tmp_path, capsys):
    discover(_config(tiny_checkpoints, tmp_path / "d", alpha=[0.1]))
    as_if_saved_on_a_gpu(tmp_path / "d" / "alpha_0.1" / "train_state.pt")
    discover(_config(tiny_checkpoints, tmp_path / "d", alpha=[0.1], steps=6))
    assert "resumed at step 4" in capsys.readouterr().out


def test_gumbel_gate_and_init_from_a_metacontroller(tiny_checkpoints, tmp_path):
    discover(_config(tiny_checkpoints, tmp_path / "a", alpha=[0.1]))
    first = tmp_path / "a" / "alpha_0.1" / "model"
    summary = discover(
        _config(
            tiny_checkpoints,
            tmp_path / "b",
            alpha=[0.1],
            steps=0,
            init_from=str(first),
            gumbel_temperature=0.5,
        )
    )
    # zero steps: the first run's weights, with this run's gate temperature τ
    meta = load_metacontroller(tmp_path / "b" / "alpha_0.1" / "model")
    init = load_metacontroller(first)
    assert meta.gate_temperature == 0.5 and init.gate_temperature == 1.0
    for name, value in init.state_dict().items():
        assert torch.equal(meta.state_dict()[name], value), name
    assert 0.0 <= summary["runs"][0]["switch_f1"] <= 1.0
    with pytest.raises(ValueError, match="--layer/--rank/--n-z/--embedder/--code/--controller"):
        discover(
            _config(tiny_checkpoints, tmp_path / "c", alpha=[0.1], init_from=str(first), rank=2)
        )


def test_kl_weight_ramps_to_alpha_then_stays():
    assert kl_weight(0.2, 0, 100) == pytest.approx(0.002)
    assert kl_weight(0.2, 49, 100) == pytest.approx(0.1)
    assert kl_weight(0.2, 99, 100) == kl_weight(0.2, 5000, 100) == pytest.approx(0.2)
    assert kl_weight(0.2, 0, 0) == 0.2  # no warm-up: α from the first step


def test_switch_onsets_count_a_slowly_closing_gate_once():
    beta = np.array([1.0, 0.9, 0.3, 0.2, 0.8, 0.7, 0.6, 0.1, 0.05, 0.9, 0.2])
    true = [4, 9]
    every_open_step = [t for t in range(1, len(beta)) if beta[t] > 0.5]
    assert every_open_step == [1, 4, 5, 6, 9]
    assert switch_onsets(beta) == [4, 9]
    assert match_switches(switch_onsets(beta), true, tolerance=1) == (2, 2, 2)
    assert match_switches(every_open_step, true, tolerance=1) == (2, 5, 2)


def test_expert_action_targets(tiny_checkpoints, tmp_path):
    summary = discover(
        _config(tiny_checkpoints, tmp_path / "d", alpha=[0.1], action_targets="expert")
    )
    assert 0.0 <= summary["runs"][0]["switch_f1"] <= 1.0
    with pytest.raises(ValueError, match="sampled .paper. or expert"):
        discover(_config(tiny_checkpoints, tmp_path / "e", action_targets="soft"))
    collect_grid_demonstrations(40, "pretraining", seed=1).save(tmp_path / "clean.npz")
    with pytest.raises(ValueError, match="needs online grid data"):
        discover(
            _config(
                tiny_checkpoints,
                tmp_path / "f",
                alpha=[0.1],
                data=str(tmp_path / "clean.npz"),
                action_targets="expert",
            )
        )


def test_expert_probs_are_the_experts_action_distribution(tiny_checkpoints):
    from agents.data_sources import fresh_activation_batches
    from internal_rl_gym.hub import load_base_model

    base = load_base_model(tiny_checkpoints["base_model"])
    b = next(fresh_activation_batches(base, 1, "pretraining", 16, 8, 0, expert_probs=True))
    probs, mask = b["expert_probs"], b["mask"]
    torch.testing.assert_close(probs[mask].sum(-1), torch.ones(int(mask.sum())))
    # every demonstrated action is one the expert could have drawn
    taken = probs.gather(-1, b["actions"][..., None])[..., 0]
    assert bool((taken[mask] > 0).all())


def test_previous_subgoals():
    from agents.discover import previous_subgoals

    assert previous_subgoals(np.array([2, 2, 0, 0, 0, 3])).tolist() == [-1, -1, 2, 2, 2, 0]


def test_code_informativeness_separates_named_from_unnamed_codes():
    from agents.discover import code_informativeness

    rng = np.random.default_rng(0)
    subgoals = rng.integers(0, 4, 2000)
    episodes = np.arange(2000) // 20
    named = np.eye(4)[subgoals] + 0.05 * rng.standard_normal((2000, 4))
    r = code_informativeness(named, subgoals, episodes)
    assert r["z_subgoal_probe"] > 0.95 and r["z_active_dims"] == 4
    unnamed = np.zeros((2000, 4))
    unnamed[:, 0] = rng.standard_normal(2000)  # one active dimension, unrelated to the subgoal
    r = code_informativeness(unnamed, subgoals, episodes)
    assert r["z_active_dims"] == 1
    assert r["z_subgoal_probe"] < r["z_subgoal_chance"] + 0.05
    # a one-dimensional code that picks one of two continuations of the previous subgoal:
    # useless absolutely, informative in context
    previous = rng.integers(-1, 4, 2000)
    option = rng.integers(0, 2, 2000)
    subgoals = (previous + 1 + option) % 4
    relative = (2.0 * option - 1.0)[:, None] + 0.1 * rng.standard_normal((2000, 1))
    r = code_informativeness(relative, subgoals, episodes, previous)
    assert r["z_subgoal_probe_in_context"] > 0.95
    assert r["context_subgoal_probe"] < 0.7


def test_collapse_warning_names_each_failure_in_plain_words():
    from agents.discover import collapse_warning

    healthy = {
        "switches_per_episode": 3.1,
        "beta_mean": 0.1,
        "beta_binary_fraction": 0.95,
        "z_subgoal_probe_in_context": 0.9,
        "context_subgoal_probe": 0.43,
        "z_active_dims": 4,
    }
    assert collapse_warning(healthy) is None
    assert "NEVER" in collapse_warning({**healthy, "switches_per_episode": 1.0})
    assert "ALWAYS" in collapse_warning({**healthy, "beta_mean": 0.9})
    assert "not binary" in collapse_warning({**healthy, "beta_binary_fraction": 0.3})
    unnamed = {**healthy, "z_subgoal_probe_in_context": 0.44}
    sampled = collapse_warning(unnamed, "sampled")
    assert "do not name subgoals" in sampled and "--action-targets expert" in sampled
    expert = collapse_warning(unnamed, "expert")
    assert "do not name subgoals" in expert and "--action-targets" not in expert
    assert "code_search.py" in expert


def test_bf16_autocast_is_reproducible_and_close_to_fp32(tiny_checkpoints, tmp_path):
    runs = {}
    for name, precision in (("a", "bf16"), ("b", "bf16"), ("f", "fp32")):
        summary = discover(
            _config(tiny_checkpoints, tmp_path / name, alpha=[0.1], precision=precision)
        )
        runs[name] = summary["runs"][0]
    assert runs["a"] == runs["b"]
    assert runs["a"]["nll"] == pytest.approx(runs["f"]["nll"], rel=0.05)
    with pytest.raises(ValueError, match="precision must be one of"):
        discover(_config(tiny_checkpoints, tmp_path / "x", precision="fp16"))


def test_trains_on_the_ants_continuous_actions(tiny_ant, tmp_path):
    cfg = DiscoverConfig(
        base_model=tiny_ant["base_model"],
        data=tiny_ant["data"],
        out=str(tmp_path / "d"),
        steps=4,
        eval_every=4,
        batch_size=4,
        holdout=2,
        kl_warmup=0,
        threads=1,
    )
    summary = discover(cfg)
    (r,) = summary["runs"]
    assert np.isfinite(r["nll"]) and np.isfinite(r["kl"])
    assert "abstract_action_check" not in summary  # a GridPinpad-only check
    assert (tmp_path / "d" / "alpha_0.1" / "model" / "model.safetensors").is_file()


def test_the_controlled_layer_defaults_to_the_base_models_control_layer(tmp_path):
    """Mutant: discover falls back to L/2 (layer 1 of this 2-layer model) whatever the base
    model records."""
    from tests.conftest import build_tiny_grid_models, with_control_layer

    base = with_control_layer(build_tiny_grid_models()[0], 2)
    base.save_pretrained(tmp_path / "base")
    ckpt = {"base_model": str(tmp_path / "base")}
    discover(_config(ckpt, tmp_path / "d", alpha=[0.1], steps=1, eval_every=1))
    assert load_metacontroller(tmp_path / "d" / "alpha_0.1" / "model").layer == 2
    with pytest.raises(ValueError, match="--layer 5 does not exist"):
        discover(_config(ckpt, tmp_path / "e", alpha=[0.1], steps=1, layer=5))


def test_resume_restores_the_saved_weights_and_optimiser(tiny_checkpoints, tmp_path):
    """Mutants: the model's or the optimiser's load_state_dict dropped on resume."""
    import torch

    discover(_config(tiny_checkpoints, tmp_path / "d", alpha=[0.1]))
    run = tmp_path / "d" / "alpha_0.1"
    trained = {k: v.clone() for k, v in load_metacontroller(run / "model").state_dict().items()}
    # resumed at its end: nothing to train, the saved model must come back unchanged
    discover(_config(tiny_checkpoints, tmp_path / "d", alpha=[0.1]))
    again = load_metacontroller(run / "model").state_dict()
    for name, value in trained.items():
        assert torch.equal(again[name], value), name
    fresh = discover(_config(tiny_checkpoints, tmp_path / "fresh", alpha=[0.1], steps=0))
    assert fresh is not None
    init = load_metacontroller(tmp_path / "fresh" / "alpha_0.1" / "model").state_dict()
    assert any(not torch.equal(init[k], v) for k, v in trained.items())
    # two more steps: Adam's step count continues from the saved optimiser state
    discover(_config(tiny_checkpoints, tmp_path / "d", alpha=[0.1], steps=6))
    state = torch.load(run / "train_state.pt", weights_only=False)
    assert state["step"] == 6
    assert all(int(s["step"]) == 6 for s in state["optimizer"]["state"].values())


def test_a_diverged_run_stops_before_it_updates_and_keeps_its_checkpoint(
    tiny_checkpoints, tmp_path, monkeypatch
):
    import dataclasses

    from internal_rl_gym.models import Metacontroller

    discover(_config(tiny_checkpoints, tmp_path / "d", alpha=[0.1]))
    run = tmp_path / "d" / "alpha_0.1"
    good = {k: v.clone() for k, v in load_metacontroller(run / "model").state_dict().items()}
    finite_elbo = Metacontroller.elbo

    def nan_elbo(self, *args, **kwargs):
        out = finite_elbo(self, *args, **kwargs)
        return dataclasses.replace(out, loss=out.loss * float("nan"))

    monkeypatch.setattr(Metacontroller, "elbo", nan_elbo)
    with pytest.raises(FloatingPointError, match="at step 5: training diverged"):
        discover(_config(tiny_checkpoints, tmp_path / "d", alpha=[0.1], steps=8))
    assert torch.load(run / "train_state.pt", weights_only=False)["step"] == 4
    kept = load_metacontroller(run / "model").state_dict()
    assert all(torch.equal(good[k], kept[k]) for k in good)


def test_symmetry_batches_hold_the_same_episodes_in_another_frame(tiny_checkpoints):
    """e_sym is the residual stream of the transformed observations; actions and the expert's
    distribution move with the frame (mutant: an unpermuted action or distribution fails)."""
    from agents.data_sources import fresh_activation_batches
    from internal_rl_gym.hub import load_base_model

    base = load_base_model(tiny_checkpoints["base_model"])
    b = next(fresh_activation_batches(base, 1, "pretraining", 16, 8, 0, expert_probs=True,
                                      symmetry_seed=3))  # fmt: skip
    m = b["mask"]
    assert not torch.allclose(b["e_sym"][m], b["e"][m])
    moved = (b["actions_sym"] != b["actions"])[m].float().mean()
    assert moved > 0.2  # non-identity symmetries move most actions
    # the expert's probability of each demonstrated action is kept in the new frame
    p = b["expert_probs"].gather(-1, b["actions"][..., None])[..., 0]
    p_sym = b["expert_probs_sym"].gather(-1, b["actions_sym"][..., None])[..., 0]
    torch.testing.assert_close(p_sym[m], p[m])
    assert (p[m] > 0).all()


def test_symmetry_decode_trains_and_needs_online_data(tiny_checkpoints, tmp_path):
    summary = discover(_config(tiny_checkpoints, tmp_path / "d", alpha=[0.1], symmetry_decode=True))
    assert summary["runs"][0]["nll"] > 0
    collect_grid_demonstrations(20, "pretraining", seed=1).save(tmp_path / "clean.npz")
    cfg = _config(tiny_checkpoints, tmp_path / "f", alpha=[0.1], symmetry_decode=True,
                  data=str(tmp_path / "clean.npz"))  # fmt: skip
    with pytest.raises(ValueError, match="symmetry-decode needs online"):
        discover(cfg)


def test_discovery_bounds_onednn_kernel_caches_before_it_trains(
    tiny_checkpoints, tmp_path, monkeypatch
):
    """As pretrain: bf16 on a CPU grows oneDNN's per-shape kernel caches without a bound."""
    import os

    from agents.common import ONEDNN_CACHE_CAPACITY, ONEDNN_CACHE_VARIABLES

    for name in ONEDNN_CACHE_VARIABLES:
        monkeypatch.setenv(name, "x")  # records the original value, so teardown restores it
        monkeypatch.delenv(name)
    discover(_config(tiny_checkpoints, tmp_path / "run", alpha=[0.1], precision="bf16"))
    assert all(os.environ[v] == str(ONEDNN_CACHE_CAPACITY) for v in ONEDNN_CACHE_VARIABLES)


def test_a_checkpoint_scores_the_same_whatever_the_global_rng(tiny_checkpoints):
    """The held-out ELBO samples its codes from a fixed seed, so a saved metacontroller scores
    the same NLL in `discover` and in a benchmark run later. Mutant: the global RNG."""
    from agents.discover import cache_activations, evaluate_metacontroller
    from internal_rl_gym.internal_control import load_frozen_models

    base, meta = load_frozen_models(
        tiny_checkpoints["base_model"], tiny_checkpoints["metacontroller"]
    )
    held = cache_activations(base, collect_grid_demonstrations(8, "pretraining", seed=3), 1)
    reports = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        reports.append(evaluate_metacontroller(meta, base, held, alpha=0.1))
    assert reports[0]["nll"] == reports[1]["nll"] and reports[0]["kl"] == reports[1]["kl"]
