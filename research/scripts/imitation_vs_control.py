"""How far does the base model's own imitation bound its ground-truth controllers?

    python research/scripts/imitation_vs_control.py \
        --out research/results/imitation_vs_control.json

Reads committed probe reports (``internal-rl probe`` JSONs; no model is run) and sets, for every
base model and controlled layer, three numbers side by side: free play (the base model alone
completes *some* pretraining task, ``bc_free_play.task_consistent``: its navigation, with the
pair choices left to it), the controllers' success on the pretraining tasks (the right pairs
chosen for it, same navigation) and their success on the post task. The ratio of the first two
is how well the controllers grip three pair choices the model has seen; the post task needs six
choices, with +1 transitions, over a path twice as long: if the new transitions cost nothing
beyond compounding over twice as many choices, its success would be about the square of the pretraining-task success
(``pretraining_squared``, printed beside it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from agents.common import atomic_write_json  # noqa: E402

R = "benchmarks/results"
E = f"{R}/experiments"
#: (model, input encoder, depth, pretraining sequences seen, probe reports)
MODELS = [
    (
        "pinpad-linear 52k (constant lr)",
        "linear",
        6,
        52_000 * 64,
        [f"{E}/probe_pinpad-linear_step52k_layer3.json"],
    ),
    (
        "pinpad-linear-anneal82k",
        "linear",
        6,
        82_000 * 64,
        [f"{E}/probe_pinpad-linear-anneal82k_layers306.json"],
    ),
    (
        "pinpad-linear-anneal108k",
        "linear",
        6,
        108_000 * 64,
        [
            f"{E}/probe_pinpad-linear-anneal108k_layers306.json",
            f"{E}/probe_pinpad-linear-anneal108k_layers45.json",
        ],
    ),
    (
        "pinpad-linear-anneal142k",
        "linear",
        6,
        142_000 * 64,
        [f"{E}/probe_pinpad-linear-anneal142k_layers34506.json"],
    ),
    (
        "pinpad-linear-d4-anneal103k",
        "linear",
        4,
        103_080 * 64,
        [f"{E}/probe_pinpad-linear-d4-anneal103k_layers23041.json"],
    ),
    (
        "pinpad-linear-d4-anneal183k",
        "linear",
        4,
        182_789 * 64,
        [f"{E}/probe_pinpad-linear-d4-anneal183k_layers2304.json"],
    ),
    (
        "pinpad-linear-d4-anneal183k, paper's controller recipe",
        "linear",
        4,
        182_789 * 64,
        [f"{E}/probe_pinpad-linear-d4-anneal183k_layer2_paper_recipe.json"],
    ),
    (
        "pinpad-cells 90k",
        "grid_cells",
        6,
        90_000 * 64,
        [
            f"{E}/probe_pinpad-cells_step90k_layer2.json",
            f"{E}/probe_pinpad-cells_step90k_layer3.json",
        ],
    ),
    (
        "pinpad-transformer (shipped, 37k)",
        "grid_egocentric",
        6,
        37_000 * 64,
        [
            f"{R}/probe_pinpad-transformer_step37k.json",
            f"{R}/probe_pinpad-transformer_step37k_layers12.json",
        ],
    ),
    (
        "pinpad-ego 52k annealed",
        "grid_egocentric",
        6,
        52_000 * 64,
        [f"{E}/probe_pinpad-ego_step52k_annealed_layer1.json"],
    ),
    (
        "pinpad-paper 12.5k (GPU, d_model 256, batch 1024)",
        "grid_egocentric",
        6,
        12_500 * 1024,
        [
            f"{E}/pinpad-paper_device/probe_layer2_3200steps.json",
            f"{E}/pinpad-paper_device/probe_layer3_2000steps.json",
        ],
    ),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", required=True)
    p.add_argument(
        "--extra",
        nargs=5,
        action="append",
        default=[],
        metavar=("NAME", "ENCODER", "DEPTH", "SEQUENCES", "REPORT"),
        help="one more model: name, encoder, depth, sequences seen, probe report",
    )
    args = p.parse_args()
    models = MODELS + [(n, e, int(d), int(s), [r]) for n, e, d, s, r in args.extra]
    rows = []
    for name, encoder, depth, sequences, reports in models:
        free_play, layers = None, {}
        for path in reports:
            report = json.loads((ROOT / path).read_text())
            free_play = report.get("bc_free_play", {}).get("task_consistent", free_play)
            for c in report["controllers"]:
                layers.setdefault(c["layer"], (c, path))  # the first report of a layer counts
        for layer, (c, path) in sorted(layers.items()):
            pre = c.get("success_pretraining_tasks")
            rows.append(
                {
                    "model": name,
                    "encoder": encoder,
                    "depth": depth,
                    "sequences": sequences,
                    "free_play": free_play,
                    "layer": layer,
                    "is_mid_depth": layer == depth // 2,
                    "success_pretraining_tasks": pre,
                    "grip_ratio": pre / free_play if pre is not None and free_play else None,
                    "pretraining_squared": pre**2 if pre is not None else None,
                    "success_post": c["success"],
                    "success_post_greedy": c.get("success_greedy"),
                    "report": path,
                }
            )
    fmt = lambda x: "  -  " if x is None else f"{x:.3f}"  # noqa: E731
    print(
        f"{'model':52s} {'free play':>9s} {'layer':>5s} {'ctrl pretrain':>13s} {'ratio':>6s} {'pre^2':>6s} {'post':>6s} {'greedy':>6s}"
    )
    for r in rows:
        mark = "*" if r["is_mid_depth"] else " "
        print(
            f"{r['model']:52s} {fmt(r['free_play']):>9s} {r['layer']:>4d}{mark} "
            f"{fmt(r['success_pretraining_tasks']):>13s} {fmt(r['grip_ratio']):>6s} "
            f"{fmt(r['pretraining_squared']):>6s} {fmt(r['success_post']):>6s} {fmt(r['success_post_greedy']):>6s}"
        )
    print("* = L/2")
    atomic_write_json(args.out, {"rows": rows, "command": " ".join(sys.argv)})


if __name__ == "__main__":
    main()
