"""Paired comparison of free-play results (``ant_history_cut.py free-play`` JSON files) against a
baseline evaluated on the same seeds: per model, the mean over seeds, the mean paired difference
and its standard error (seeds are the pairs: same seeds, same task draws).

    python research/scripts/paired_free_play.py \
        --baseline research/results/session30/free_play_ant-routes1-window32_step85000_mean.json \
            research/results/session34/free_play_shipped_seeds3000-5000_mean.json \
        --models research/results/session35/free_play_*.json \
        --out research/results/session35/free_play_paired.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from internal_rl_agents.common import atomic_write_json


def per_seed(paths: list[str]) -> dict[int, float]:
    """Seed -> task-consistent free play, gathered from one or more result files."""
    out: dict[int, float] = {}
    for p in paths:
        for run in json.loads(Path(p).read_text())["runs"]:
            out[int(run["seed"])] = float(run["task_consistent"])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", nargs="+", required=True, help="the baseline's result files")
    p.add_argument(
        "--models", nargs="+", required=True, help="per model a result file, or several joined by +"
    )
    p.add_argument("--out", default="")
    args = p.parse_args()
    base = per_seed(args.baseline)
    rows = []
    for path in args.models:
        mine = per_seed(path.split("+"))
        seeds = sorted(set(mine) & set(base))
        if len(seeds) < 2:
            raise SystemExit(f"{path} shares fewer than 2 seeds with the baseline")
        d = np.array([mine[s] - base[s] for s in seeds])
        rows.append({
            "file": path, "seeds": seeds, "mean": float(np.mean([mine[s] for s in seeds])),
            "baseline_mean": float(np.mean([base[s] for s in seeds])),
            "paired_diff": float(d.mean()), "paired_se": float(d.std(ddof=1) / np.sqrt(len(d))),
        })  # fmt: skip
        r = rows[-1]
        print(f"{r['mean']:.3f} vs {r['baseline_mean']:.3f}: {r['paired_diff']:+.3f} "
              f"(SE {r['paired_se']:.3f}, {len(seeds)} seeds)  {path}")  # fmt: skip
    if args.out:
        atomic_write_json(args.out, {"baseline": args.baseline, "models": rows})


if __name__ == "__main__":
    main()
