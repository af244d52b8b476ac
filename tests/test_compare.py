"""`internal-rl compare`: the four methods on one held-out task, its summary and its resume."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from agents import compare as compare_module
from agents.compare import (
    ANT_EXPERT_POST_SUCCESS,
    METHODS,
    CompareConfig,
    compare,
    resolved,
    run_dir,
)


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


def test_finished_only_reports_the_finished_runs_and_trains_nothing(
    tiny_checkpoints, tiny_oracle, tmp_path, capsys
):
    """A comparison in progress can be read: finished runs are summarised (with their seeds),
    the others are listed and not started. Mutants: training the missing run; summarising an
    empty method; dropping the list."""
    cfg = _config(tiny_checkpoints, tiny_oracle, tmp_path, methods=["raw", "oracle"], seeds=[0])
    compare(cfg)
    report = compare(
        replace(cfg, seeds=[0, 1], methods=["raw", "oracle", "ppo"], finished_only=True)
    )
    task = report["tasks"]["0-1"]
    assert set(task["summary"]) == {"raw", "oracle"}
    assert task["summary"]["raw"]["seeds"] == [0]
    assert task["unfinished"] == ["ppo seed 0", "raw seed 1", "oracle seed 1", "ppo seed 1"]
    assert not run_dir(cfg, "raw", "0-1", 1).exists()
    assert not run_dir(cfg, "ppo", "0-1", 0).exists()
    assert "ppo    seed 0: not finished" in capsys.readouterr().out


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


# --- the ant (Fig. 8's ant panel) ------------------------------------------------------------
def _ant_config(tiny_ant, tmp_path, **kw) -> CompareConfig:
    defaults = dict(
        env="ant",
        episodes=4,
        seeds=[0],
        base_model=tiny_ant["base_model"],
        metacontroller=tiny_ant["metacontroller"],
        n_envs=4,
        ppo_n_envs=4,
        batch_episodes=4,
        window=4,
        final=4,
        threads=1,
        runs=str(tmp_path / "runs"),
        out=str(tmp_path / "ant"),
    )
    return CompareConfig(**{**defaults, **kw})


def test_ant_compare_trains_every_method_it_has_on_the_post_task(tiny_ant, tmp_path, capsys):
    """ppo and eq10 on InternalControl-Ant-v3, stepping AntPinpad-v0 (the env this base model
    reads), raw on AntPinpad-v0 too, the post-training task; no oracle (the shipped controllers
    steer only the shipped base model), and it says so. Mutants: the grid's InternalControl id
    for the ant; the shipped controllers kept for another base model."""
    cfg = _ant_config(tiny_ant, tmp_path)
    report = compare(cfg)
    assert "oracle left out" in capsys.readouterr().out
    saved = json.loads((tmp_path / "ant.json").read_text())
    assert saved["config"]["env"] == "ant" and saved["config"]["tasks"] == ["post"]
    assert saved["config"]["expert_success"] == ANT_EXPERT_POST_SUCCESS
    summary = saved["tasks"]["post"]["summary"]
    assert set(summary) == {"ppo", "eq10", "raw"} == set(report["tasks"]["post"]["summary"])
    resolved_cfg = CompareConfig(**saved["config"])
    raw = json.loads((run_dir(resolved_cfg, "raw", "post", 0) / "curve.json").read_text())
    assert raw["env_id"] == "AntPinpad-v0"
    for method in ("ppo", "eq10"):
        own = json.loads((run_dir(resolved_cfg, method, "post", 0) / "curve.json").read_text())
        assert own["config"]["env_id"] == "InternalControl-Ant-v3"
        assert own["config"]["task_env"] == "AntPinpad-v0"
        assert own["config"]["task"] == "post"
    for s in summary.values():
        n = s["normalised"]
        assert n["by"] == ANT_EXPERT_POST_SUCCESS
        np.testing.assert_allclose(n["curve_median"], np.divide(s["curve_median"], n["by"]))
    assert (tmp_path / "ant.png").stat().st_size > 0


def test_ant_curves_are_divided_by_the_experts_post_task_success(tiny_ant, tmp_path, monkeypatch):
    """Fig. 8 plots the ant's success over the expert's: in the JSON (``normalised``) and on
    the plot's y axis, which says so. ``--expert-success`` overrides it; the grid has none.
    Mutants: the plot drawing raw success for the ant; the normaliser multiplied."""
    import matplotlib.figure

    runs = {"ppo": "11110000", "eq10": "10101010", "raw": "00000001"}
    monkeypatch.setattr(
        compare_module,
        "run_one",
        lambda cfg, m, task, seed, **kw: {"successes": [int(c) for c in runs[m]], "seconds": 1.0},
    )
    drawn: list[tuple[str, dict[str, list[float]]]] = []
    original = matplotlib.figure.Figure.savefig

    def spy(fig, *args, **kwargs):
        ax = fig.axes[0]
        drawn.append((ax.get_ylabel(), {ln.get_label(): list(ln.get_ydata()) for ln in ax.lines}))
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    for by, out in ((0.0, "default"), (0.5, "half")):
        cfg = _ant_config(
            tiny_ant, tmp_path, episodes=8, expert_success=by, out=str(tmp_path / out)
        )
        report = compare(cfg)
        want_by = by or ANT_EXPERT_POST_SUCCESS
        summary = report["tasks"]["post"]["summary"]
        assert summary["ppo"]["curve_median"] == [1.0, 0.0]  # raw success is kept as it was
        assert summary["ppo"]["normalised"]["curve_median"] == [1 / want_by, 0.0]
        assert summary["eq10"]["normalised"]["final_success_median"] == 0.5 / want_by
        ylabel, lines = drawn[-1]
        assert "expert" in ylabel and f"{want_by:g}" in ylabel
        assert lines[METHODS["ppo"]] == pytest.approx([1 / want_by, 0.0])
        assert lines[METHODS["raw"]] == pytest.approx([0.0, 0.25 / want_by])
    grid = compare(
        CompareConfig(
            tasks=["0-1"],
            methods=["raw"],
            episodes=8,
            window=4,
            final=4,
            runs=str(tmp_path / "gr"),
            out=str(tmp_path / "grid"),
        )
    )
    assert "normalised" not in grid["tasks"]["0-1"]["summary"]["raw"]
    assert drawn[-1][0] == "success rate"


def test_the_ant_oracle_without_controllers_says_how_to_fix_it(tiny_ant, tmp_path):
    cfg = _ant_config(tiny_ant, tmp_path, methods=["raw", "oracle"])
    with pytest.raises(SystemExit, match=r"--controllers DIR.*--methods ppo eq10 raw"):
        compare(cfg)
    assert not (tmp_path / "runs").exists()  # refused before any training


def test_the_env_follows_the_base_model_and_a_mismatch_is_explained(
    tiny_ant, tiny_checkpoints, tmp_path
):
    # the shipped metacontroller and controllers steer only the shipped base model: another
    # one needs its own metacontroller, and gets no oracle
    with pytest.raises(
        SystemExit,
        match=r"ant-metacontroller steers ant-transformer only.*"
        r"--metacontroller DIR.*--methods raw\)",
    ):
        resolved(CompareConfig(base_model=tiny_ant["base_model"]), check=True)
    inferred = resolved(
        CompareConfig(base_model=tiny_ant["base_model"], metacontroller=tiny_ant["metacontroller"]),
        check=True,
    )
    assert (inferred.env, inferred.metacontroller, inferred.tasks) == (
        "ant",
        tiny_ant["metacontroller"],
        ["post"],
    )
    assert inferred.methods == ["ppo", "eq10", "raw"]
    assert resolved(
        CompareConfig(base_model=tiny_ant["base_model"], methods=["raw"]), check=True
    ).methods == ["raw"]
    grid = resolved(
        CompareConfig(
            base_model=tiny_checkpoints["base_model"],
            metacontroller=tiny_checkpoints["metacontroller"],
        ),
        check=True,
    )
    assert grid.env == "grid" and grid.methods == ["ppo", "eq10", "raw"]
    shipped = resolved(CompareConfig(env="grid"), check=True)
    assert shipped.methods == list(METHODS)
    assert shipped.controllers == "pinpad-subgoal-controllers"
    with pytest.raises(SystemExit, match="pass --env grid"):
        compare(CompareConfig(env="ant", base_model=tiny_checkpoints["base_model"]))
    with pytest.raises(SystemExit, match="--env must be one of grid, ant"):
        compare(CompareConfig(env="moon"))
    with pytest.raises(SystemExit, match=r"--expert-success is a success rate in \(0, 1\]"):
        compare(CompareConfig(env="ant", expert_success=70.0))  # a percentage


def test_the_ant_normaliser_is_the_experts_measured_post_task_success():
    """The constant is the stochastic expert's (the one that recorded ant-hawk's data) row of
    benchmarks/results/ant_expert_eval.json: evaluating the expert again must update both."""
    from pathlib import Path

    path = Path(__file__).parent.parent / "benchmarks" / "results" / "ant_expert_eval.json"
    rows = json.loads(path.read_text())["runs"]
    (row,) = [r for r in rows if r["task"] == "post" and r["mode"] == "stochastic"]
    assert row["success_rate"] == ANT_EXPERT_POST_SUCCESS


def test_the_ant_acts_with_its_mean_action_unless_told_otherwise(tiny_ant_routes, tmp_path):
    """The ant's internal RL and oracle act with the mean action by default (as
    InternalControl-Ant-v3), ``--act sample`` reaches the env and gets runs of its own; raw-action
    RL is the same run either way. Mutants: ``act`` not passed on; runs of another act reused."""
    cfg = _ant_config(
        tiny_ant_routes,
        tmp_path,
        controllers=tiny_ant_routes["controllers"],
        methods=["oracle", "raw"],
        episodes=2,
        n_envs=2,
        batch_episodes=2,
        window=2,
        final=2,
    )
    for act in ("", "sample"):
        compare(replace(cfg, act=act))
    mean, sample = resolved(cfg), resolved(replace(cfg, act="sample"))
    assert mean.act == "mean"
    for c, want in ((mean, "mean"), (sample, "sample")):
        oracle = json.loads((run_dir(c, "oracle", "post", 0) / "curve.json").read_text())
        assert oracle["config"]["primitive_sampling"] == want
        assert oracle["config"]["task_env"] == "AntPinpadRoutes-v1"
    assert run_dir(mean, "oracle", "post", 0).parent.name.startswith("oracle-mean-")
    assert run_dir(mean, "oracle", "post", 0) != run_dir(sample, "oracle", "post", 0)
    raw = json.loads((run_dir(mean, "raw", "post", 0) / "curve.json").read_text())
    assert raw["env_id"] == "AntPinpadRoutes-v1"
    assert run_dir(mean, "raw", "post", 0) == run_dir(sample, "raw", "post", 0)
    # a finished run made under other InternalControl settings (here: the old 50-step cap) is
    # never silently reused (mutant: only the episode count checked)
    curve = run_dir(mean, "oracle", "post", 0) / "curve.json"
    saved = json.loads(curve.read_text())
    assert saved["internal_control"]["max_primitive_steps"] == 200
    saved["internal_control"]["max_primitive_steps"] = 50
    curve.write_text(json.dumps(saved))
    with pytest.raises(SystemExit, match="holds a run made with other InternalControl settings"):
        compare(cfg)


def test_act_is_checked_before_any_training(tmp_path):
    with pytest.raises(SystemExit, match="--act must be sample, greedy or mean"):
        compare(CompareConfig(act="argmax", runs=str(tmp_path / "r")))
    with pytest.raises(SystemExit, match="--act mean reads a continuous head"):
        compare(CompareConfig(env="grid", act="mean", runs=str(tmp_path / "r")))
    assert not (tmp_path / "r").exists()
