"""Collect the base-model diagnostics that `internal-rl pretrain` logged, for several runs.

    python benchmarks/pretrain_diagnostics.py runs/pinpad-ego runs/pinpad-transformer \
        --out benchmarks/results/pretrain_diagnostics.json

Each run directory holds ``config.json`` (the exact settings) and ``metrics.jsonl``, where every
``--eval-every`` steps pretraining logged ``diag/*``: held-out accuracy and optimal-action rate
split by whether the history determines the next target, probe accuracy per layer (of the subgoal
and of the last colour visited), and free play.
This script only gathers them side by side (it computes nothing new). With ``--plot PNG`` it
also draws, per run, the subgoal probe's accuracy by layer at a few steps (paper Fig. 3/A1) and
the probe at mid-depth and free play against training steps.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from internal_rl_agents.common import atomic_write_json

KEYS = (
    "accuracy_determined",
    "accuracy_undetermined",
    "optimal_determined",
    "optimal_undetermined",
    "probe_mid",
    "task_consistent",
    "env_success",
    "mean_valid_colours",
    "within_pair_rate",
    "between_pair_rate",
    "probe_last_visited_best",
)


def read_run(run: Path) -> dict:
    config = json.loads((run / "config.json").read_text())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    diags: dict[int, dict] = {}
    for row in rows:
        found = {k[5:]: v for k, v in row.items() if k.startswith("diag/")}
        if found:
            diags[row["step"]] = found

    def by_layer(d: dict, prefix: str) -> list[float]:
        layers = sorted(int(k[len(prefix) :]) for k in d if k.startswith(prefix))
        return [round(d[f"{prefix}{i}"], 3) for i in layers]

    return {
        "config": config,
        "diagnostics": [
            {
                "step": s,
                **{k: round(d[k], 4) for k in KEYS if k in d},
                "probe_by_layer": by_layer(d, "probe_layer"),
                # the last colour visited (9 classes: none yet, or colour 0-7)
                "last_visited_by_layer": by_layer(d, "probe_last_visited_layer"),
            }
            for s, d in sorted(diags.items())
        ],
    }


def plot(result: dict, path: str, n_curves: int = 5) -> None:
    """One column per run: subgoal probe accuracy by layer at ``n_curves`` steps; the probe of
    the last colour visited by layer at the same steps; mid-depth probe and free play (share of
    episodes consistent with a pretraining task) against steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, len(result), figsize=(4.5 * len(result), 10.5), squeeze=False)
    for col, (name, r) in enumerate(result.items()):
        diags = [d for d in r["diagnostics"] if d["probe_by_layer"]]
        picks = sorted(
            {round(i * (len(diags) - 1) / max(1, n_curves - 1)) for i in range(n_curves)}
        )
        ax = axes[0, col]
        for i in picks:
            d = diags[i]
            ax.plot(d["probe_by_layer"], marker="o", label=f"step {d['step']}")
        ax.set_title(f"{name} ({r['config'].get('obs_encoder', '?')})")
        ax.set_xlabel("layer (0 = input embedding)")
        ax.set_ylabel("subgoal probe accuracy")
        ax.set_ylim(0.2, 0.8)
        ax.legend(fontsize=8)
        ax = axes[1, col]
        for i in picks:
            if diags[i].get("last_visited_by_layer"):
                ax.plot(
                    diags[i]["last_visited_by_layer"], marker="o", label=f"step {diags[i]['step']}"
                )
        ax.set_xlabel("layer (0 = input embedding)")
        ax.set_ylabel("last-colour-visited probe accuracy")
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=8)
        ax = axes[2, col]
        steps = [d["step"] for d in diags]
        ax.plot(steps, [d.get("probe_mid") for d in diags], marker=".", label="probe at L/2")
        ax.plot(steps, [d.get("task_consistent") for d in diags], marker=".", label="free play")
        ax.set_xlabel("pretraining step")
        ax.locator_params(axis="x", nbins=5)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", default="benchmarks/results/pretrain_diagnostics.json")
    p.add_argument("--plot", default="", help="also write this PNG (probe by layer, free play)")
    args = p.parse_args()
    result = {Path(r).name: read_run(Path(r)) for r in args.runs}
    atomic_write_json(args.out, result)
    if args.plot:
        plot(result, args.plot)
    for name, r in result.items():
        for d in r["diagnostics"]:
            print(
                name,
                d["step"],
                {
                    k: d.get(k)
                    for k in (
                        "optimal_determined",
                        "optimal_undetermined",
                        "probe_mid",
                        "task_consistent",
                    )
                },
            )


if __name__ == "__main__":
    main()
