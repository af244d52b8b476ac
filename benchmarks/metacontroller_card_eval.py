"""The evaluation JSON behind a metacontroller's card, from an ``internal-rl discover`` run.

    python benchmarks/metacontroller_card_eval.py --run runs/discover --alpha 0.1 \
        --out benchmarks/results/pinpad-metacontroller_eval.json --notes "..."

Reads ``<run>/alpha_<α>/report.json`` (switch alignment, β, rate/distortion on held-out clean
episodes) and ``<run>/summary.json`` (the abstract-action check of the best α), names the
numbers for the card's table next to issue 4's targets, and adds ``notes`` (the card's
Limitations paragraph). ``internal-rl push <run>/alpha_<α>/model --eval-json <out>`` then
renders the card from it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from internal_rl_agents.common import atomic_write_json


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", help="the `internal-rl discover --out` directory")
    p.add_argument("--alpha", type=float, help="which α of the sweep")
    p.add_argument(
        "--report",
        help="instead of --run/--alpha: the JSON of `benchmarks/metacontroller_codes.py "
        "--abstract-action-check` (e.g. for a checkpoint saved mid-run)",
    )
    p.add_argument(
        "--code-content",
        default="",
        help="the JSON of `benchmarks/code_content.py` for this metacontroller: adds the probe "
        "from the code to the subgoal and the success steered by the code of each true subgoal",
    )
    p.add_argument(
        "--comparison",
        default="",
        help="the JSON of `internal-rl compare` (e.g. benchmarks/results/"
        "internal_rl_learning.json): adds internal RL's median final success per task",
    )
    p.add_argument(
        "--alignment",
        default="",
        help="the JSON of `benchmarks/ant_switch_alignment.py`: adds the switch F1 at each "
        "tolerance it measured, next to chance",
    )
    p.add_argument("--env-id", default="GridPinpad-v0", help="the env the card names")
    p.add_argument("--f1-target", type=float, default=0.8, help="the F1 target the card names")
    p.add_argument("--out", required=True, help="evaluation JSON to write")
    p.add_argument("--notes", default="", help="the card's Limitations paragraph")
    args = p.parse_args()
    if args.report:
        report = json.loads(Path(args.report).read_text())
        summary = {"abstract_action_check": report.get("abstract_action_check")}
    elif args.run and args.alpha is not None:
        run = Path(args.run)
        report = json.loads((run / f"alpha_{args.alpha:g}" / "report.json").read_text())
        summary = json.loads((run / "summary.json").read_text())
        if summary.get("best_alpha") != args.alpha:
            summary["abstract_action_check"] = None  # the check ran on the best α only
    else:
        p.error("pass --report, or --run and --alpha")
    tol = report["tolerance"]
    metrics = {
        f"switch F1 vs true subgoal boundaries (±{tol} step; target >= {args.f1_target:g})": report[
            "switch_f1"
        ],
        "switch precision": report["switch_precision"],
        "switch onset F1 (first step of each run of β > 0.5; secondary)": report.get(
            "switch_onset_f1", float("nan")
        ),
        "switch recall": report["switch_recall"],
        "segments per episode (true: "
        f"{report['true_subgoals_per_episode']:g}; target within 1)": report[
            "switches_per_episode"
        ],
        "episodes with segment count within 1 of the truth": report["switch_count_within_1"],
        "β quasi-binary fraction (< 0.1 or > 0.9; target >= 0.9)": report["beta_binary_fraction"],
        "held-out action NLL": report["nll"],
        "KL per step": report["kl"],
    }
    if "z_subgoal_probe" in report:
        metrics["active dimensions of z (variance > 0.01)"] = report["z_active_dims"]
        metrics[f"linear probe z -> true subgoal (chance {report['z_subgoal_chance']:.2f})"] = (
            report["z_subgoal_probe"]
        )
    if args.alignment:
        for row in json.loads(Path(args.alignment).read_text())["by_tolerance"]:
            steps = "step" if row["tolerance"] == 1 else "steps"
            name = f"switch F1 within ±{row['tolerance']} {steps} (chance {row['chance_f1']:.2f})"
            metrics[name] = row["f1"]
    check = summary.get("abstract_action_check") or {}
    if check:
        prior = "codes drawn from the prior"
        metrics[f"segments from {prior} that end on a completed pair"] = check["pair_fraction"]
        metrics[f"segments from {prior} that end on any colour"] = check["any_visit_fraction"]
    if args.code_content:
        content = json.loads(Path(args.code_content).read_text())
        for label in ("subgoal", "first_move", "direction"):
            r = content["probe"][label]
            name = f"probe code at segment start -> {label.replace('_', ' ')}"
            metrics[f"{name} (chance {r['chance']:.2f})"] = r["accuracy"]
        for task, rate in content.get("steered_success", {}).items():
            metrics[f"{task}: success steered by the code of each true subgoal"] = rate
    if args.comparison:
        comparison = json.loads(Path(args.comparison).read_text())
        for task, r in comparison["tasks"].items():
            for method in ("ppo", "eq10"):
                if method in r["summary"]:
                    # the seeds that finished (`compare --finished-only` may report fewer)
                    n = len(r["summary"][method].get("seeds", comparison["config"]["seeds"]))
                    what = "stock SB3 PPO" if method == "ppo" else "Eq. 10"
                    metrics[f"{task}: internal RL ({what}) median final success, {n} seeds"] = r[
                        "summary"
                    ][method]["final_success_median"]
    out = {
        **report,
        "metrics": metrics,
        "abstract_action_check": check,
        "env_id": args.env_id,
        "notes": args.notes,
        "card_eval_command": " ".join(["python", *sys.argv]),
    }
    atomic_write_json(args.out, out)
    print(json.dumps(metrics, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
