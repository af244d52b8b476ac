"""The ``internal-rl`` programs end to end, through the installed console script, on tiny
settings: each run must exit 0, write its files, and the files must parse and hold the numbers
the program printed. collect -> pretrain -> diagnose, probe, discover and push -> pull each run
on the previous one's output; train -> evaluate, baseline and compare use the shipped
checkpoints, which complete the task now and then, so the numbers checked are not all zero.

The console script is ``internal-rl`` next to the test's Python (the venv's ``bin/``), else the
one on ``PATH``; only when neither exists (the package is not installed) do the tests fall back
to ``python -m agents.cli`` with the repository on ``PYTHONPATH``. Subprocesses run offline, one
thread each, with a private Hugging Face cache.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agents.diagnostics import format_report
from internal_rl_gym.data import Demonstrations
from internal_rl_gym.hub import (
    load_base_model,
    load_metacontroller,
    load_subgoal_controllers,
    model_fingerprint,
)

REPO = Path(__file__).resolve().parents[1]


def internal_rl() -> list[str] | None:
    """The installed console script (see the module docstring); None if there is none."""
    beside = Path(sys.executable).parent / "internal-rl"
    found = str(beside) if beside.is_file() else shutil.which("internal-rl")
    return [found] if found else None


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    """``cli(*args) -> stdout`` of one ``internal-rl`` run (which must exit 0)."""
    home = tmp_path_factory.mktemp("hf_home")
    env = {
        **os.environ,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    env.pop("HF_TOKEN", None)
    command = internal_rl()
    if command is None:  # not installed: the package from this checkout
        command = [sys.executable, "-m", "agents.cli"]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))

    def run(*args: str, online: bool = False) -> str:
        out = subprocess.run(
            [*command, *map(str, args)],
            env={**env, "HF_HUB_OFFLINE": "0"} if online else env,
            cwd=home,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, f"internal-rl {' '.join(args)}\n{out.stderr[-3000:]}"
        return out.stdout

    return run


def line(stdout: str, pattern: str) -> re.Match:
    """The match of ``pattern`` on the one printed line that matches it."""
    found = [m for m in map(re.compile(pattern).search, stdout.splitlines()) if m]
    assert len(found) == 1, f"{pattern!r} in:\n{stdout}"
    return found[0]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="module")
def collected(cli, root) -> tuple[Path, str]:
    out = root / "grid.npz"
    return out, cli("collect", "--episodes", 48, "--task", "0-1-2-3", "--out", out, "--seed", 3)


@pytest.fixture(scope="module")
def pretrained(cli, root, collected) -> tuple[Path, str]:
    run = root / "pretrain"
    args = ["--d-model", 16, "--n-layers", 2, "--steps", 12, "--batch-size", 8, "--holdout", 8]
    args += ["--eval-every", 1000, "--eval-episodes", 4, "--checkpoint-every", 6, "--warmup", 2]
    stdout = cli("pretrain", "--data", collected[0], "--out", run, *args, "--threads", 1)
    return run, stdout


@pytest.fixture(scope="module")
def probed(cli, root, pretrained) -> tuple[Path, str]:
    out = root / "probe"
    args = ["--layers", 1, "--probe-episodes", 40, "--controller-steps", 3, "--batch-size", 8]
    args += ["--eval-episodes", 4, "--diagnostic-tasks", "0-1", "--device", "cpu"]
    stdout = cli("probe", "--base-model", pretrained[0] / "model", "--out", out, *args)
    return out, stdout


@pytest.fixture(scope="module")
def discovered(cli, root, pretrained) -> tuple[Path, str]:
    out = root / "discover"
    args = ["--alpha", 0.1, "--steps", 4, "--batch-size", 8, "--episodes", 32, "--holdout", 16]
    args += ["--eval-every", 2, "--n-z", 4, "--rank", 4, "--device", "cpu"]
    return out, cli("discover", "--base-model", pretrained[0] / "model", "--out", out, *args)


#: internal RL on the shipped oracle (embedded base model and subgoal controllers): fast, and
#: it succeeds sometimes, so the successes checked below are not all zero
ORACLE = ["--env-id", "InternalControl-Pinpad-Oracle-v0", "--task", "0-1"]


@pytest.fixture(scope="module")
def trained(cli, root) -> tuple[Path, str]:
    out = root / "train"
    args = ["--episodes", 12, "--n-envs", 2, "--n-steps", 8, "--batch-size", 16, "--n-epochs", 1]
    args += ["--eval-every", 6, "--eval-episodes", 4, "--no-progress"]
    return out, cli("train", *ORACLE, "--out", out, *args)


# ---------------------------------------------------------------------------------- programs


def test_collect_writes_the_episodes_it_reports(collected):
    """Mutant: the printed step count off by one from the file's."""
    path, stdout = collected
    m = line(stdout, r"^wrote (\d+) episodes, (\d+) steps to (\S+) \(.*mean length ([\d.]+); ")
    data = Demonstrations.load(path)
    assert Path(m[3]) == path
    assert (data.n_episodes, data.n_steps) == (int(m[1]), int(m[2])) == (48, data.n_steps)
    assert f"{data.lengths.mean():.1f}" == m[4]
    assert all(tuple(t[t >= 0]) == (0, 1, 2, 3) for t in data.tasks)


def test_pretrain_writes_a_model_and_the_diagnostics_it_printed(pretrained, collected):
    """Mutant: "base model saved to" names the run folder instead of the model's."""
    run, stdout = pretrained
    m = line(stdout, r"^model: ([\d.]+)M parameters on cpu; data: (\S+)$")
    assert Path(m[2]) == collected[0]
    model = load_base_model(line(stdout, r"^base model saved to (\S+)$")[1])
    assert f"{model.n_params / 1e6:.2f}" == m[1]
    assert (model.d_model, model.n_layers) == (16, 2)
    report = json.loads((run / "diagnostics.json").read_text())
    assert report.pop("step") == 12
    assert line(stdout, r"^step 12: (.*)$")[1] == format_report(report)
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train/loss" in r][-1] == 12
    assert json.loads((run / "model" / "trainer_state.json").read_text()) == {"global_step": 12}
    assert json.loads((run / "config.json").read_text())["steps"] == 12


def test_diagnose_prints_the_report_it_writes(cli, root, pretrained):
    """`internal-rl diagnose` (run by no other test). Mutant: --out written without the
    report."""
    model = pretrained[0] / "model"
    out = root / "diagnose.json"
    stdout = cli("diagnose", "--model", model, "--episodes", 8, "--env-episodes", 2, "--out", out)
    report = json.loads(out.read_text())
    assert report.pop("model") == str(model)
    assert report.pop("env_id") == "GridPinpad-v0"
    assert report.pop("act") == "sample"
    assert stdout.strip() == format_report(report)
    assert 0.0 <= report["accuracy_all"] <= 1.0 and 0.0 <= report["probe_mid"] <= 1.0
    assert set(report) >= {"probe_layer0", "probe_layer1", "probe_layer2", "env_success"}


def test_diagnose_an_ant_model_plays_the_env_its_observations_match(cli, root, tiny_ant):
    """An ant base model: the held-out NLL, probes and free play in the AntPinpad id whose
    observations it reads. Mutants: the env guessed from the action type alone; free play left
    out of the report or printed from another number."""
    out = root / "diagnose_ant.json"
    stdout = cli(
        "diagnose",
        "--model",
        tiny_ant["base_model"],
        "--episodes",
        4,
        "--env-episodes",
        3,
        "--out",
        out,
    )
    report = json.loads(out.read_text())
    assert report.pop("model") == tiny_ant["base_model"]
    assert report.pop("env_id") == "AntPinpad-v0"  # 41-dimensional observations
    assert report.pop("act") == "sample"
    assert stdout.strip() == format_report(report)
    assert "free play: task completed" in stdout and report["free_play_mean_length"] > 0
    ends = sum(v for k, v in report.items() if k.startswith("free_play_ended_"))
    assert ends == pytest.approx(1.0)
    # --greedy (= --act greedy) and --act mean play the same layouts with the head's mean
    # action: other episodes
    args = ("--model", tiny_ant["base_model"], "--episodes", 4, "--env-episodes", 3)
    for flags, act in ((("--greedy",), "greedy"), (("--act", "mean"), "mean")):
        cli("diagnose", *args, *flags, "--out", out)
        other = json.loads(out.read_text())
        assert other["act"] == act
        assert other["free_play_mean_length"] != report["free_play_mean_length"]


def test_probe_writes_controllers_and_the_accuracies_it_printed(probed, pretrained):
    """Mutant: the probe accuracies printed in another order than written."""
    out, stdout = probed
    report = json.loads((out / "probe.json").read_text())
    printed = line(stdout, r"^probe accuracy by layer: (.*)$")[1].split()
    assert printed == [f"{a:.3f}" for a in report["probe_accuracy_by_layer"]]
    (ctrl,) = report["controllers"]
    m = line(stdout, r"^layer 1: controller NLL train ([\d.]+) held-out ([\d.]+) .*post ([\d.]+)")
    assert m.groups() == tuple(f"{ctrl[k]:.3f}" for k in ("train_nll", "heldout_nll", "success"))
    base = load_base_model(pretrained[0] / "model")
    loaded = load_subgoal_controllers(out / "controllers_layer1", base_model=base)
    assert loaded.layer == 1 and (out / "probe.png").stat().st_size > 1000


def test_discover_writes_the_metacontroller_it_names(discovered, pretrained):
    """Mutant: the printed best model folder is its parent (not a checkpoint)."""
    out, stdout = discovered
    summary = json.loads((out / "summary.json").read_text())
    m = line(stdout, r"^best α by switch F1: ([\d.]+) -> (\S+)$")
    assert float(m[1]) == summary["best_alpha"] == 0.1
    base = load_base_model(pretrained[0] / "model")
    meta = load_metacontroller(m[2], base_model=base)
    assert meta.base_model_fingerprint == model_fingerprint(base) and meta.n_z == 4
    check = line(stdout, r"^abstract-action check \(z ~ N\(0, I\) at switches\): (\{.*\})$")[1]
    assert ast.literal_eval(check) == summary["abstract_action_check"]


def test_train_then_evaluate_the_saved_policy(cli, root, trained):
    """Mutants: curve.json's final eval success taken from the first evaluation; evaluate
    printing the standard deviation as the ± (it is the standard error)."""
    out, stdout = trained
    curve = json.loads((out / "curve.json").read_text())
    m = line(stdout, r"^saved policy to (\S+); final eval success (\S+)$")
    assert Path(m[1]) == Path(curve["policy"]) == out / "ppo-InternalControl-Pinpad-Oracle-v0.zip"
    assert float(m[2]) == curve["final_eval_success"] == curve["evaluations"][-1]["eval_success"]
    assert len(curve["successes"]) >= 12 and set(curve["successes"]) <= {0, 1}

    report_path = root / "eval.json"
    args = ["--episodes", 8, "--n-envs", 4, "--out", report_path]
    stdout = cli("evaluate", "--policy", m[1], *ORACLE, *args)
    report = json.loads(report_path.read_text())
    success = report["metrics"]["success_rate"]
    e = line(stdout, r"^success ([\d.]+) ± ([\d.]+) over (\d+) episodes$")
    assert (e[1], e[2]) == (f"{success['mean']:.3f}", f"{success['std'] / np.sqrt(8):.3f}")
    assert int(e[3]) == report["n_eval_episodes"] == 8
    assert report["policy"] == m[1] and report["deterministic"] is True


def test_baseline_prints_the_success_of_the_curve_it_writes(cli, root):
    """Mutant: the printed success over fewer episodes than the curve holds."""
    out = root / "raw"  # the shipped base model, which completes 0-1 now and then
    args = ["--task", "0-1", "--episodes", 8, "--batch-episodes", 4, "--device", "cpu"]
    stdout = cli("baseline", "--out", out, *args, "--threads", 1)
    curve = json.loads((out / "curve.json").read_text())
    m = line(stdout, r"^raw-action RL: success over the last (\d+) episodes ([\d.]+) ")
    assert int(m[1]) == len(curve["successes"]) == 8
    assert m[2] == f"{np.mean(curve['successes']):.3f}"


def test_compare_prints_the_medians_of_the_report_it_writes(cli, root):
    """Mutant: the plot not written."""
    out = root / "comparison"  # the shipped base model and oracle
    args = ["--tasks", "0-1", "--episodes", 8, "--seeds", 0, "--methods", "raw", "oracle"]
    args += ["--n-envs", 4, "--batch-episodes", 4, "--window", 4, "--final", 4]
    args += ["--runs", root / "runs", "--threads", 1]
    stdout = cli("compare", *args, "--out", out)
    report = json.loads(out.with_suffix(".json").read_text())
    summary = report["tasks"]["0-1"]["summary"]
    assert set(summary) == {"raw", "oracle"}
    printed = re.findall(r"^0-1 .*: median final success ([\d.]+)$", stdout, re.M)
    assert printed == [f"{summary[k]['final_success_median']:.3f}" for k in ("raw", "oracle")]
    assert out.with_suffix(".png").stat().st_size > 1000
    assert "internal-rl compare" in report["command"]


def test_push_dry_run_then_pull_round_trip(cli, root, pretrained, fake_hub):
    """Mutant: the dry run lists sizes other than the files'."""
    model = pretrained[0] / "model"
    upload = root / "upload"
    stdout = cli("push", model, "--repo-id", "e2e/tiny", "--dry-run", upload)
    listed = {
        Path(f).relative_to(upload).as_posix(): size
        for f, size in re.findall(r"^  (\S+)  \(([\d,]+) bytes\)$", stdout, re.M)
    }
    files = {p.name: f"{p.stat().st_size:,}" for p in upload.iterdir()}
    assert listed == files and {"config.json", "model.safetensors", "README.md"} <= set(files)
    commit = fake_hub.add_repo("e2e/tiny", upload)
    cache = root / "pulled"
    stdout = cli("pull", "e2e/tiny", "--cache-dir", cache, "--endpoint", fake_hub.url, online=True)
    folder = Path(stdout.strip().splitlines()[-1])
    assert folder == cache / "models--e2e--tiny" / "snapshots" / commit
    for name in files:
        assert (folder / name).read_bytes() == (upload / name).read_bytes()
    assert model_fingerprint(load_base_model(folder)) == model_fingerprint(load_base_model(model))
