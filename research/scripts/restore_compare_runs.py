"""Put a committed comparison's finished runs back under ``--runs``, so that `internal-rl
compare` on another machine trains only the runs the report lists as unfinished.

A report (`<out>.json`) holds the success of every episode of every run and its wall time; this
writes each as the ``curve.json`` `compare` reuses, at the folder `compare` would train it in
(the same config, so the same checkpoint fingerprints in the path), marked ``restored_from``.
Internal RL runs get the InternalControl settings that config trains under now; `compare`
refuses them if those changed. The weights themselves are not in the report: restore only on a
checkout whose embedded checkpoints are the ones the report was made with.

    python research/scripts/restore_compare_runs.py --report benchmarks/results/compare_ant.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

from internal_rl_agents.common import atomic_write_json
from internal_rl_agents.compare import CompareConfig, internal_rl_config, resolved, run_dir
from internal_rl_agents.train import recorded_kwargs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--report", required=True)
    p.add_argument("--runs", default=None, help="default: the report's --runs")
    args = p.parse_args()
    report = json.loads(Path(args.report).read_text())
    known = {f.name for f in fields(CompareConfig)}
    cfg = CompareConfig(**{k: v for k, v in report["config"].items() if k in known})
    if args.runs:
        cfg.runs = args.runs
    cfg = resolved(cfg)
    for task, result in report["tasks"].items():
        for method, by_seed in result["successes"].items():
            seconds = dict(
                zip(
                    result["summary"][method]["seeds"],
                    result["summary"][method]["seconds_per_seed"],
                )
            )
            for seed, bits in by_seed.items():
                out = run_dir(cfg, method, task, int(seed))
                if (out / "curve.json").exists():
                    print(f"{out}: has a curve.json, left as is")
                    continue
                curve = {
                    "method": method,
                    "successes": [int(b) for b in bits],
                    "seconds": seconds[int(seed)],
                    "restored_from": args.report,
                }
                if method != "raw":
                    train_cfg = internal_rl_config(cfg, method, task, int(seed))
                    curve["internal_control"] = recorded_kwargs(train_cfg)
                out.mkdir(parents=True, exist_ok=True)
                atomic_write_json(out / "curve.json", curve)
                print(f"{out}: restored ({len(bits)} episodes)")


if __name__ == "__main__":
    main()
