"""The evaluation JSON behind the default base model's card, from an ``internal-rl probe`` run.

    python benchmarks/base_model_card_eval.py --probe runs/probe/probe.json \
        --base-model runs/pinpad-ego/model --out benchmarks/results/pinpad-transformer_eval.json \
        --notes "..."

Takes the probe report (subgoal probes by layer, ground-truth controllers per layer), adds the
base model's behaviour cloning in free play when the report predates it (``grid_free_play``,
same episodes and seed as ``internal-rl probe`` uses now), rebuilds the card's ``metrics`` block
and adds ``notes`` (the card's Limitations paragraph). ``internal-rl push <model> --eval-json
<out>`` then renders the card from it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from internal_rl_agents.common import atomic_write_json
from internal_rl_agents.diagnostics import grid_free_play
from internal_rl_agents.probe import card_metrics

from internal_rl_gym.hub import load_base_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--probe", required=True, help="probe.json written by `internal-rl probe`")
    p.add_argument("--base-model", required=True, help="the base model the probe measured")
    p.add_argument("--out", required=True, help="evaluation JSON to write")
    p.add_argument("--notes", default="", help="the card's Limitations paragraph")
    args = p.parse_args()
    torch.set_num_threads(1)
    report = json.loads(Path(args.probe).read_text())
    cfg = report["config"]
    if "bc_free_play" not in report:
        base = load_base_model(args.base_model)
        report["bc_free_play"] = grid_free_play(
            base, n_episodes=cfg["eval_episodes"], seed=cfg["seed"]
        )
    if "metrics" not in report:  # reports from before `probe` named its card metrics
        report["metrics"] = card_metrics(
            report["probe_accuracy_by_layer"],
            report["controllers"],
            report["bc_free_play"]["task_consistent"],
            report["task"],
        )
    for c in report["controllers"]:  # the post task in every acting mode it was read in
        plain = f"success rate, post-training task, ground-truth controllers at layer {c['layer']}"
        if "success_mean" in c and plain in report["metrics"]:
            report["metrics"][f"{plain}, sampled"] = report["metrics"].pop(plain)
        for key, how in (("success_greedy", "greedy"), ("success_mean", "mean action")):
            if key in c:
                name = f"success rate, post-training task, ground-truth controllers at layer {c['layer']}, {how}"
                report["metrics"][name] = c[key]
    report["n_eval_episodes"] = cfg["eval_episodes"]
    report["env_id"] = report.get("env_id", "GridPinpad-v0")
    report["base_model"] = args.base_model
    report["notes"] = args.notes
    report["card_eval_command"] = " ".join(["python", *sys.argv])
    atomic_write_json(args.out, report)
    print(json.dumps(report["metrics"], indent=1))


if __name__ == "__main__":
    main()
