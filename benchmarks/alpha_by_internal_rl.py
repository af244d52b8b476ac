"""The committed sweep: the KL strength α chosen by downstream internal RL (paper §C: α is
selected by the success of internal RL with the metacontroller it produced), on local Ray.

    python benchmarks/alpha_by_internal_rl.py [more `internal-rl sweep` options]

Each trial (`internal-rl sweep discover-train`) discovers a metacontroller with one α, then
runs internal RL (Eq. 10) with it on the task 0-1-2-3, whose 1 -> 2 transition never occurs in
pretraining; 3 α x 3 seeds. CPU-sized, so smaller than the paper's protocol (docs/sweeps.md):
discovery is the second stage of the `pinpad-segmenter` recipe (the default metacontroller until session 23) (250 steps from the
shipped model with a Gumbel-Sigmoid gate, τ = 0.5, expert action targets, layer 3), not a run
from scratch (~3000 steps before switches appear, ~20 minutes per α on one core); internal RL
is 4000 episodes. Rerunning resumes: finished trials are not run again.

The trials run in ``runs/sweeps/alpha_by_internal_rl``; their light outputs (sweep.json,
summary.json, the plots and every trial's trial.json, enough for ``internal-rl sweep-plot``)
are copied to ``benchmarks/results/sweeps/alpha_by_internal_rl``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from internal_rl_agents.cli import main

ROOT = Path(__file__).resolve().parents[1]

RUNS = Path("runs/sweeps/alpha_by_internal_rl")
RESULTS = ROOT / "benchmarks/results/sweeps/alpha_by_internal_rl"
COMMITTED = [
    "sweep", "discover-train",
    "--grid", "discover.alpha=0.1,0.25,1.0",
    "--seeds", "0", "1", "2",
    "--set",
    "base_model=pinpad-transformer",
    "discover.init_from=pinpad-segmenter", "discover.layer=3",
    "discover.action_targets=expert", "discover.gumbel_temperature=0.5", "discover.kl_warmup=0",
    "discover.lr=3e-4", "discover.steps=250", "discover.eval_every=250",
    "train.env_id=InternalControl-v0", "train.task=0-1-2-3", "train.algo=eq10",
    "train.lr=1e-3", "train.episodes=4000", "train.n_envs=64", "train.batch_episodes=64",
    "--window", "250", "--final", "500",
    "--num-cpus", "2", "--cpus-per-trial", "1",
    "--out", str(RUNS),
]  # fmt: skip


def copy_results(runs: Path, results: Path) -> None:
    results.mkdir(parents=True, exist_ok=True)
    for name in ("sweep.json", "summary.json", "success.png", "rate_distortion.png"):
        if (runs / name).is_file():
            shutil.copy2(runs / name, results / name)
    for record in runs.glob("trials/*/*/trial.json"):
        target = results / record.relative_to(runs)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(record, target)


if __name__ == "__main__":
    code = main(COMMITTED + sys.argv[1:])
    copy_results(RUNS, RESULTS)
    sys.exit(code)
