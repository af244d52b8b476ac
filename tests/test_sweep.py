"""`internal-rl sweep`: trials built by the programs' own parsers, a real sweep on local Ray, its
summary against the trials' own files, and a resume that runs only the unfinished trial."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from agents.discover import DiscoverConfig
from agents.sweep import (
    PlotConfig,
    SweepConfig,
    plan_trials,
    random_values,
    run_plot,
    summarise,
    sweep,
)
from agents.train import TrainConfig

TINY_DISCOVER = [
    "discover.steps=4", "discover.batch_size=8", "discover.episodes=32", "discover.holdout=16",
    "discover.eval_every=2", "discover.n_z=4", "discover.rank=4",
]  # fmt: skip
TINY_TRAIN = [
    "train.env_id=InternalControl-v0", "train.task=0-1", "train.algo=eq10", "train.episodes=8",
    "train.n_envs=4", "train.batch_episodes=4",
]  # fmt: skip


def _alpha_sweep(tiny_checkpoints, out: Path, **kw) -> SweepConfig:
    """The paper's selection of α by downstream internal RL, tiny: 2 α x 2 seeds."""
    defaults = dict(
        program="discover-train",
        grid=["discover.alpha=0.1,0.3"],
        seeds=[0, 1],
        set=[f"base_model={tiny_checkpoints['base_model']}", *TINY_DISCOVER, *TINY_TRAIN],
        out=str(out),
        num_cpus=2,
        window=4,
        final=4,
    )
    return SweepConfig(**{**defaults, **kw})


def test_trials_get_their_settings_from_the_programs_own_parsers(tiny_checkpoints, tmp_path):
    trials = plan_trials(_alpha_sweep(tiny_checkpoints, tmp_path / "s"))
    assert [t.name for t in trials] == [
        "discover.alpha=0.1/seed_0", "discover.alpha=0.1/seed_1",
        "discover.alpha=0.3/seed_0", "discover.alpha=0.3/seed_1",
    ]  # fmt: skip
    t = trials[3]
    assert t.folder == (tmp_path / "s" / "trials" / "discover.alpha=0.3" / "seed_1").resolve()
    from agents.sweep import build_config

    discover = build_config("discover", t.settings["discover"])
    train = build_config("train", t.settings["train"])
    assert isinstance(discover, DiscoverConfig) and isinstance(train, TrainConfig)
    assert discover.alpha == [0.3] and discover.steps == 4 and discover.seed == 1
    assert train.seed == 1 and train.episodes == 8 and train.progress is False
    assert discover.threads == train.threads == 1  # one torch thread per reserved core
    # internal RL acts with the metacontroller this trial discovered, on the same base model
    assert train.metacontroller == str(t.folder / "discover" / "alpha_0.3" / "model")
    assert train.base_model == discover.base_model == tiny_checkpoints["base_model"]

    def plan(**kw):
        return plan_trials(_alpha_sweep(tiny_checkpoints, tmp_path / "s", **kw))

    with pytest.raises(SystemExit, match="discover.lr"):  # lr of which stage?
        plan(grid=["lr=1e-3,3e-4"])
    with pytest.raises(SystemExit, match="has no setting 'nope'"):
        plan(set=["train.nope=1"])
    with pytest.raises(SystemExit, match="--seeds"):
        plan(set=["seed=3"])
    with pytest.raises(SystemExit, match="one α"):
        plan(grid=[], set=["discover.alpha=0.1 0.3"])
    with pytest.raises(SystemExit):  # the program's own parser rejects the value
        plan(set=["train.episodes=many"])
    # random search: reproducible draws inside their ranges
    draws = random_values({"lr": "loguniform:1e-4:1e-2", "n": "randint:1:3"}, 20, seed=0)
    assert draws == random_values({"lr": "loguniform:1e-4:1e-2", "n": "randint:1:3"}, 20, seed=0)
    assert all(1e-4 <= float(d["lr"]) <= 1e-2 and d["n"] in ("1", "2", "3") for d in draws)


def test_a_folder_run_with_other_settings_is_refused(tiny_checkpoints, tmp_path):
    from agents.sweep import is_finished, stage_configs

    trial = plan_trials(_alpha_sweep(tiny_checkpoints, tmp_path / "s"))[0]
    trial.folder.mkdir(parents=True)
    record = stage_configs(trial)
    del record["discover"]["weight_decay"]  # a setting discover gained since: at its default
    (trial.folder / "trial_config.json").write_text(json.dumps(record))
    assert not is_finished(trial)
    (trial.folder / "trial.json").write_text("{}")
    assert is_finished(trial)
    record["train"]["episodes"] = 9
    (trial.folder / "trial_config.json").write_text(json.dumps(record))
    with pytest.raises(SystemExit, match="train.episodes: 9 there, 8 now"):
        is_finished(trial)


def test_without_ray_the_sweep_says_how_to_install_it(tiny_checkpoints, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    with pytest.raises(SystemExit, match=r'pip install -e "\.\[sweep\]"'):
        sweep(_alpha_sweep(tiny_checkpoints, tmp_path / "s"))


@pytest.fixture
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_a_sweep_on_local_ray_summarises_its_trials_and_resumes(
    tiny_checkpoints, tmp_path, local_ray, monkeypatch
):
    out = tmp_path / "sweep"
    cfg = _alpha_sweep(tiny_checkpoints, out)
    summary = sweep(cfg)
    assert summary["trials"] == {"finished": 4, "total": 4}
    assert (out / "success.png").stat().st_size > 0
    assert (out / "rate_distortion.png").stat().st_size > 0
    trials = {t.name: t for t in plan_trials(cfg)}
    for c in summary["configurations"]:
        alpha = c["params"]["discover.alpha"]
        assert sorted(c["seeds"]) == [0, 1]
        # every trial wrote its programs' results in its own folder
        curves = []
        reports = []
        for seed in (0, 1):
            folder = trials[f"{c['name']}/seed_{seed}"].folder
            assert (folder / "trial.json").is_file() and (folder / "log.txt").is_file()
            curves.append(json.loads((folder / "train" / "curve.json").read_text())["successes"])
            report = folder / "discover" / f"alpha_{alpha}" / "report.json"
            reports.append(json.loads(report.read_text()))
        # the summary's medians are those of the programs' own files
        finals = [np.mean(s[-4:]) for s in curves]
        assert c["metrics"]["final_success"]["median"] == pytest.approx(np.median(finals))
        assert c["metrics"]["discover/kl"]["median"] == pytest.approx(
            np.median([r["kl"] for r in reports])
        )
        assert c["metrics"]["discover/nll"]["median"] == pytest.approx(
            np.median([r["nll"] for r in reports])
        )
        windows = [[np.mean(s[:4]), np.mean(s[4:8])] for s in curves]
        assert c["curves"]["success"]["median"] == pytest.approx(np.median(windows, 0).tolist())
    assert summary["best"]["configuration"] in ("discover.alpha=0.1", "discover.alpha=0.3")
    assert json.loads((out / "summary.json").read_text())["configurations"] == json.loads(
        json.dumps(summary["configurations"])
    )

    # a sweep killed while one trial ran: that trial has no trial.json; rerunning the same
    # command runs only it
    unfinished = trials["discover.alpha=0.3/seed_0"].folder
    (unfinished / "trial.json").unlink()
    curve_files = {n: t.folder / "train" / "curve.json" for n, t in trials.items()}
    before = {n: f.stat().st_mtime_ns for n, f in curve_files.items()}
    records = {n: (t.folder / "trial.json").read_bytes() for n, t in trials.items() if n != "discover.alpha=0.3/seed_0"}  # fmt: skip
    again = sweep(cfg)
    assert again["trials"] == {"finished": 4, "total": 4}
    after = {n: f.stat().st_mtime_ns for n, f in curve_files.items()}
    assert [n for n in trials if after[n] != before[n]] == ["discover.alpha=0.3/seed_0"]
    assert all((trials[n].folder / "trial.json").read_bytes() == b for n, b in records.items())
    # a finished sweep needs nothing from Ray to be summarised again
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "ray", None)
        assert sweep(cfg)["configurations"] == again["configurations"]
    assert summarise(out.resolve())["best"] == again["best"]
    for png in ("success.png", "rate_distortion.png"):
        (out / png).unlink()
    run_plot(PlotConfig(out=str(out), window=2))  # `internal-rl sweep-plot`, another window
    assert (out / "success.png").stat().st_size > 0 and (out / "rate_distortion.png").is_file()
