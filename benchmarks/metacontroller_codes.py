"""Do a metacontroller's codes name subgoals? Held-out diagnostics of any metacontroller.

    python benchmarks/metacontroller_codes.py --metacontroller pinpad-metacontroller \
        --out benchmarks/results/pinpad-metacontroller_codes.json

Runs ``agents.discover.evaluate_metacontroller`` (switch alignment, β, rate/distortion, and the
code diagnostics: active dimensions of z and a linear probe from z to the true subgoal) on the
held-out set ``internal-rl discover`` uses: 512 fresh clean expert episodes of the grid's
pretraining tasks with its default seed, or with ``--data`` the held-out part of a dataset (the
ant's, for a metacontroller saved mid-run:
``--base-model ant-transformer --metacontroller ant-metacontroller --data
data/antroutes1_pretraining_clean.npz --holdout 512``); with ``--abstract-action-check`` also the check that
``discover`` runs on its best model (z ~ N(0, I) at every switch in free play: how many segments
end on a completed pair). Internal RL can only learn to pick subgoals if the codes
name them; a probe at chance means the abstract actions carry something else.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from internal_rl_agents.common import atomic_write_json
from internal_rl_agents.discover import (
    abstract_action_check,
    add_hindsight,
    cache_activations,
    collapse_warning,
    evaluate_metacontroller,
    format_report,
    heldout_split,
    plot_beta_traces,
)

from internal_rl_gym.data import Demonstrations
from internal_rl_gym.envs.grid_expert import collect_grid_demonstrations
from internal_rl_gym.hub import load_metacontroller
from internal_rl_gym.internal_control import load_frozen_models


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-model", default="pinpad-transformer")
    p.add_argument("--metacontroller", default="pinpad-metacontroller")
    p.add_argument("--alpha", type=float, default=0.0, help="α for the reported loss only")
    p.add_argument("--episodes", type=int, default=512, help="fresh grid episodes (no --data)")
    p.add_argument(
        "--data",
        default="",
        help="clean demonstrations (.npz), as given to `discover --data`: score its held-out part",
    )
    p.add_argument("--holdout", type=int, default=512, help="with --data: as `discover --holdout`")
    p.add_argument("--seed", type=int, default=0, help="as `internal-rl discover --seed`")
    p.add_argument(
        "--abstract-action-check",
        action="store_true",
        help="also sample z ~ N(0, I) at every switch and report the segments (1-2 minutes)",
    )
    p.add_argument(
        "--segments-from",
        default="pinpad-segmenter",
        help="hindsight metacontrollers: the metacontroller whose gate marks the segments",
    )
    p.add_argument(
        "--beta-trace", default="", help="also plot β over 4 held-out episodes to this .png"
    )
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    base, meta = load_frozen_models(args.base_model, args.metacontroller)
    if args.data:
        _, held = heldout_split(Demonstrations.load(args.data), args.holdout)
    else:
        held = collect_grid_demonstrations(
            args.episodes, "pretraining", seed=args.seed + 20_000_003
        )
    cache = cache_activations(base, held, meta.layer)
    if meta.posterior == "hindsight":
        segmenter = load_metacontroller(args.segments_from, base_model=base)
        add_hindsight(cache, base, held, segmenter, meta.hindsight_layer)
    report = evaluate_metacontroller(meta, base, cache, args.alpha)
    if args.beta_trace:
        plot_beta_traces(args.metacontroller, base, cache, Path(args.beta_trace))
    report["warning"] = collapse_warning(report) or ""
    print(format_report(report))
    if report["warning"]:
        print("WARNING:", report["warning"])
    if args.abstract_action_check:
        report["abstract_action_check"] = abstract_action_check(base, meta, seed=args.seed)
        print("abstract-action check (z ~ N(0, I) at switches):", report["abstract_action_check"])
    report.update(
        base_model=args.base_model,
        metacontroller=args.metacontroller,
        command=" ".join(["python", *sys.argv]),
    )
    atomic_write_json(args.out, report)


if __name__ == "__main__":
    main()
