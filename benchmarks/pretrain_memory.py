"""Peak memory of `internal-rl pretrain` on ant demonstrations: oneDNN's kernel caches bounded
(what pretraining does) vs their library defaults (what it did before), same run.

    python benchmarks/pretrain_memory.py --data data/antroutes_pretraining.npz \\
        [--episodes 1000 4000] [--steps 150] [--batch-size 16]

For each dataset size (the first N episodes of ``--data``) it runs the same seeded bf16
pretraining twice, each in its own process: (a) "default", with oneDNN's primitive cache and
PyTorch's ideep cache at their defaults of 1024 entries each (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``
and ``LRU_CACHE_CAPACITY`` set to 1024), and (b) "bounded", as `internal-rl pretrain` runs now
(:func:`internal_rl_agents.common.bound_onednn_caches`: 64 entries each). Under bf16 autocast on
a CPU those caches hold kernels per tensor shape, so episodes of varying length add ~13 MB per new
length T and, once full, churn and fragment the heap: the process's memory grows with the steps
(13 GB at step 400 of a batch-64 run on the full 10,000-episode dataset). Reports each process's
peak RSS, its training throughput and its final loss (the two must be equal: bounding a cache
rebuilds the same kernels), and the ratio bounded / default.

The subsets are cut from ``--data`` (loaded once, here); the training processes load only them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from internal_rl_agents.common import ONEDNN_CACHE_VARIABLES, atomic_write_json

from internal_rl_gym.data import Demonstrations

#: Runs the CLI in this process, then writes its peak RSS (KiB, Linux ``ru_maxrss``) to argv[1].
CHILD = """
import resource, sys
from internal_rl_agents.cli import main
try:
    main(sys.argv[2:])
finally:
    with open(sys.argv[1], "w") as f:
        f.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
"""


def run_pretrain(data: Path, out: Path, mode: str, args: argparse.Namespace) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ONEDNN_CACHE_VARIABLES}
    if mode == "default":
        env.update(dict.fromkeys(ONEDNN_CACHE_VARIABLES, "1024"))
    env["OMP_NUM_THREADS"] = str(args.threads)
    rss_file = out / f"{mode}.maxrss"
    run_dir = out / f"run-{mode}"
    cli = ["pretrain", "--data", str(data), "--out", str(run_dir), "--preset", args.preset]
    cli += ["--steps", str(args.steps), "--batch-size", str(args.batch_size)]
    cli += ["--precision", "bf16", "--threads", str(args.threads), "--obs-coef", "10"]
    cli += ["--log-every", str(args.steps), "--checkpoint-every", str(10 * args.steps)]
    cli += ["--eval-every", str(10 * args.steps), "--eval-episodes", "2", "--holdout", "64"]
    subprocess.run(
        [sys.executable, "-c", CHILD, str(rss_file), *cli],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = [
        r
        for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
        if "train/loss" in r
    ][-1]
    return {
        "peak_rss_mib": round(int(rss_file.read_text()) / 1024),
        "tokens_per_s": round(last["perf/tokens_per_s"]),
        "final_loss": last["train/loss"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", default="data/antroutes_pretraining.npz", help="ant dataset .npz")
    p.add_argument("--episodes", type=int, nargs="+", default=[1000, 4000])
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--preset", default="ant-cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results/pretrain_memory.json")
    args = p.parse_args()
    data = Demonstrations.load(args.data)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.episodes:
            n = min(n, data.n_episodes)
            folder = Path(tmp) / str(n)
            subset = data.episode_range(0, n).save(folder / "data.npz")
            runs = {m: run_pretrain(subset, folder, m, args) for m in ("default", "bounded")}
            row = {
                "episodes": n,
                "steps_in_data": int(data.act_offsets[n]),
                **{f"{m}_{k}": v for m, r in runs.items() for k, v in r.items()},
                "peak_rss_bounded_over_default": round(
                    runs["bounded"]["peak_rss_mib"] / runs["default"]["peak_rss_mib"], 2
                ),
                "speed_bounded_over_default": round(
                    runs["bounded"]["tokens_per_s"] / runs["default"]["tokens_per_s"], 2
                ),
                "same_losses": runs["bounded"]["final_loss"] == runs["default"]["final_loss"],
            }
            print(row)
            rows.append(row)
    atomic_write_json(
        args.out,
        {
            "data": args.data,
            "preset": args.preset,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "threads": args.threads,
            "precision": "bf16",
            "results": rows,
        },
    )


if __name__ == "__main__":
    main()
