"""`internal-rl compare`: the four methods on one held-out task, its summary and its resume."""

from __future__ import annotations

import json

import numpy as np

from agents.compare import CompareConfig, compare, run_dir


def _config(tiny_checkpoints, tiny_oracle, tmp_path, **kw) -> CompareConfig:
    defaults = dict(
        tasks=["0-1"],
        episodes=8,
        seeds=[0, 1],
        base_model=tiny_checkpoints["base_model"],
        metacontroller=tiny_checkpoints["metacontroller"],
        controllers=tiny_oracle["metacontroller"],
        n_envs=4,
        batch_episodes=4,
        window=4,
        final=4,
        runs=str(tmp_path / "runs"),
        out=str(tmp_path / "cmp"),
    )
    return CompareConfig(**{**defaults, **kw})


def test_compare_runs_every_method_and_summarises_the_runs_own_curves(
    tiny_checkpoints, tiny_oracle, tmp_path
):
    cfg = _config(tiny_checkpoints, tiny_oracle, tmp_path)
    report = compare(cfg)
    saved = json.loads((tmp_path / "cmp.json").read_text())
    assert (tmp_path / "cmp.png").stat().st_size > 0
    summary = saved["tasks"]["0-1"]["summary"]
    assert set(summary) == {"ppo", "eq10", "raw", "oracle"}
    for method, s in summary.items():
        curves = []
        for seed in (0, 1):
            own = json.loads((run_dir(cfg, method, "0-1", seed) / "curve.json").read_text())
            assert len(own["successes"]) >= 8
            recorded = saved["tasks"]["0-1"]["successes"][method][str(seed)]
            # judged on the same budget: a batched run's episodes past it are left out
            assert [int(c) for c in recorded] == own["successes"][:8]
            curves.append(own["successes"][:8])
        finals = [np.mean(c[-4:]) for c in curves]
        assert s["final_success_median"] == float(np.median(finals))
        assert (
            s["curve_median"]
            == np.median([[np.mean(c[:4]), np.mean(c[4:8])] for c in curves], 0).tolist()
        )
    assert report["tasks"]["0-1"]["summary"] == summary


def test_a_stopped_comparison_resumes_without_redoing_finished_runs(
    tiny_checkpoints, tiny_oracle, tmp_path
):
    cfg = _config(tiny_checkpoints, tiny_oracle, tmp_path, methods=["raw", "oracle"], seeds=[0])
    compare(cfg)
    finished = run_dir(cfg, "oracle", "0-1", 0) / "curve.json"
    stamp = finished.stat().st_mtime_ns
    compare(cfg)
    assert finished.stat().st_mtime_ns == stamp


def test_two_metacontrollers_both_named_model_get_their_own_runs():
    """Discovered metacontrollers all live in .../model: a run folder named after the last part
    only would let one comparison reuse another's runs."""
    a = CompareConfig(metacontroller="runs/a/alpha_0.1/model")
    b = CompareConfig(metacontroller="runs/b/alpha_0.1/model")
    assert run_dir(a, "ppo", "0-1", 0) != run_dir(b, "ppo", "0-1", 0)
    assert run_dir(a, "raw", "0-1", 0) == run_dir(b, "raw", "0-1", 0)  # raw ignores it


def test_new_weights_under_the_same_name_get_their_own_runs(tiny_checkpoints, tmp_path):
    """An embedded default that changed (or a folder trained again) must not reuse runs made
    with the old weights."""
    import shutil

    import torch

    from internal_rl_gym.hub import load_metacontroller

    folder = tmp_path / "meta"
    shutil.copytree(tiny_checkpoints["metacontroller"], folder)
    cfg = CompareConfig(base_model=tiny_checkpoints["base_model"], metacontroller=str(folder))
    before = run_dir(cfg, "ppo", "0-1", 0)
    meta = load_metacontroller(folder)
    with torch.no_grad():
        next(meta.parameters()).add_(1.0)
    meta.save_pretrained(folder)
    assert run_dir(cfg, "ppo", "0-1", 0) != before
    assert run_dir(cfg, "raw", "0-1", 0) == run_dir(cfg, "raw", "0-1", 0)
