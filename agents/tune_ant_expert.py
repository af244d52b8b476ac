"""Tune the AntPinpad expert's gait and write the shipped parameter set (a "checkpoint").

    python -m agents.tune_ant_expert --out internal_rl_gym/checkpoints/ant-gait-expert
    python benchmarks/ant_expert_eval.py --episodes 200          # evaluate the new parameters
    python -m agents.tune_ant_expert --out internal_rl_gym/checkpoints/ant-gait-expert \\
        --card-only --eval-json benchmarks/results/ant_expert_eval.json   # add them to the card

The expert (:mod:`internal_rl_gym.envs.ant_expert`) is a trot gait with 7 parameters driven by a
grid planner. Its parameters come from two random searches, both deterministic under their seed:

1. ``search_walking_gait``: draw ``walk_candidates`` gaits uniformly from
   ``WALK_SEARCH_RANGES`` and keep the fastest one (mean speed along ``walk_directions`` random
   directions, ``walk_seconds`` each, on flat ground) that never falls;
2. ``tune_gait``: starting from stage 1's gait, perturb every parameter by up to
   ``tune_spread`` (relative) ``tune_candidates`` times and keep the gait whose deterministic
   expert solves most of ``tune_episodes`` pretraining-task episodes (reset seeds
   ``tune_seed..``, disjoint from the benchmark's 0..).

Writes ``<out>/config.json`` (the gait and planner parameters the library loads, the exact
command, the seeds and the search results; written atomically) and ``<out>/README.md`` (a card;
with ``--eval-json`` it also reports the benchmark's success rates). The library's
``GaitParams``/``PlannerParams`` defaults must then be set to the new values (a test checks it).
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from internal_rl_gym.envs.ant_expert import PlannerParams, tune_gait
from internal_rl_gym.envs.ant_gait import WALK_SEARCH_RANGES, search_walking_gait

from .common import (
    add_config_arguments,
    atomic_write_bytes,
    atomic_write_json,
    config_from_args,
)


@dataclass
class TuneAntExpertConfig:
    out: str = field(
        default="runs/ant-gait-expert",
        metadata={"help": "output directory (ship: internal_rl_gym/checkpoints/ant-gait-expert)"},
    )
    # stage 1: fastest fall-free straight walk
    walk_candidates: int = field(default=1500, metadata={"help": "stage 1: random gaits tried"})
    walk_directions: int = field(default=6, metadata={"help": "stage 1: walks per gait"})
    walk_seconds: float = field(default=5.0, metadata={"help": "stage 1: seconds per walk"})
    walk_seed: int = field(default=0, metadata={"help": "stage 1: seed (gaits, directions)"})
    # stage 2: task success around stage 1's gait
    tune_candidates: int = field(default=60, metadata={"help": "stage 2: perturbed gaits tried"})
    tune_episodes: int = field(default=24, metadata={"help": "stage 2: episodes per gait"})
    tune_spread: float = field(default=0.15, metadata={"help": "stage 2: relative perturbation"})
    tune_task: str = field(default="pretraining", metadata={"help": "stage 2: task set"})
    tune_seed: int = field(
        default=1000, metadata={"help": "stage 2: seed (perturbations, first reset seed)"}
    )
    decimals: int = field(default=3, metadata={"help": "gait parameters are rounded to this"})
    # fixed (not searched) parts of the expert and the env
    repel_dist: float = field(default=0.3, metadata={"help": "planner: repulsion range (cells)"})
    repel_gain: float = field(default=1.5, metadata={"help": "planner: repulsion at a border"})
    recentre_dist: float = field(default=0.0, metadata={"help": "planner: recentre range"})
    cell_size: float = field(default=2.0, metadata={"help": "AntPinpad cell size (m)"})
    # card
    eval_json: str | None = field(
        default=None,
        metadata={"help": "benchmarks/ant_expert_eval.py output to report in README.md"},
    )
    card_only: bool = field(
        default=False,
        metadata={"help": "skip the search: rewrite README.md from an existing config.json"},
    )


def command_line() -> str:
    """The command that is running, as one would type it from the repository root."""
    return " ".join(
        shlex.quote(a) for a in ["python", "-m", "agents.tune_ant_expert", *sys.argv[1:]]
    )


def search(cfg: TuneAntExpertConfig) -> dict[str, Any]:
    """Run both stages and return the content of ``config.json``."""
    t0 = time.perf_counter()
    env_kwargs = {"cell_size": cfg.cell_size}
    planner = PlannerParams(cfg.repel_dist, cfg.repel_gain, cfg.recentre_dist)

    # --- stage 1: fastest fall-free walk ---------------------------------------------------
    walks: list[dict[str, Any]] = []
    walk_gait, walk_speed = search_walking_gait(
        cfg.walk_candidates,
        seed=cfg.walk_seed,
        n_directions=cfg.walk_directions,
        seconds_per_walk=cfg.walk_seconds,
        decimals=cfg.decimals,
        env_kwargs=env_kwargs,
        history=walks,
        verbose=True,
    )
    t1 = time.perf_counter()
    fall_free = sorted((w for w in walks if w["speed"] is not None), key=lambda w: -w["speed"])
    print(
        f"stage 1: {walk_speed:.3f} m/s, {len(fall_free)}/{len(walks)} fall-free, {t1 - t0:.0f} s"
    )

    # --- stage 2: task success around stage 1's gait ----------------------------------------
    tuned: list[dict[str, Any]] = []
    gait, success = tune_gait(
        cfg.tune_candidates,
        seed=cfg.tune_seed,
        n_episodes=cfg.tune_episodes,
        task=cfg.tune_task,
        base=walk_gait,
        spread=cfg.tune_spread,
        env_kwargs=env_kwargs,
        planner=planner,
        decimals=cfg.decimals,
        history=tuned,
        verbose=True,
    )
    t2 = time.perf_counter()
    print(f"stage 2: success {success:.3f} (start {tuned[0]['success_rate']:.3f}), {t2 - t1:.0f} s")

    return {
        "gait": asdict(gait),
        "planner": asdict(planner),
        "command": command_line(),
        "config": asdict(cfg),
        "search": {
            "walk": {
                "ranges": {k: list(v) for k, v in WALK_SEARCH_RANGES.items()},
                "best_gait": asdict(walk_gait),
                "best_speed_m_per_s": walk_speed,
                "fall_free": len(fall_free),
                "candidates": len(walks),
                "top": fall_free[:5],
                "seconds": round(t1 - t0, 1),
            },
            "tune": {
                "start_success_rate": tuned[0]["success_rate"],
                "best_success_rate": success,
                "note": "optimistic: the best of many candidates on the same episodes",
                "candidates": len(tuned) - 1,
                "seconds": round(t2 - t1, 1),
            },
        },
        "env_kwargs": env_kwargs,
        "versions": {
            "python": platform.python_version(),
            "mujoco": mujoco.__version__,
            "numpy": np.__version__,
        },
        "seconds": round(t2 - t0, 1),
    }


def card_metadata(evaluation: dict[str, Any] | None) -> str:
    """The card's YAML front matter (Hub metadata; the evaluation's success rates, if any)."""
    from huggingface_hub import EvalResult, ModelCardData

    evals = [
        EvalResult(
            task_type="reinforcement-learning",
            task_name="reinforcement-learning",
            dataset_type="AntPinpad-v0",
            dataset_name="AntPinpad-v0",
            metric_type="success_rate",
            metric_name=f"success rate, {r['task']} tasks, {r['mode']} expert",
            metric_value=round(r["success_rate"], 4),
            verified=False,
        )
        for r in (evaluation or {}).get("runs", [])
    ]
    data = ModelCardData(
        library_name="internal-rl-gym",
        tags=["AntPinpad-v0", "internal-rl-gym", "reinforcement-learning", "scripted-expert"],
        model_name="ant-gait-expert",
        eval_results=evals or None,
    )
    return data.to_yaml()


def render_card(
    result: dict[str, Any], evaluation: dict[str, Any] | None, card_command: str
) -> str:
    """The checkpoint's README.md."""
    walk, tune = result["search"]["walk"], result["search"]["tune"]
    c, v = result["config"], result["versions"]
    gait_rows = "\n".join(f"| `{k}` | {v:g} |" for k, v in result["gait"].items())
    planner_rows = "\n".join(f"| `{k}` | {v:g} |" for k, v in result["planner"].items())
    if evaluation is None:
        metrics = (
            "Not evaluated yet: run `python benchmarks/ant_expert_eval.py --episodes 200` and "
            "rewrite this card with `--card-only --eval-json <its output>`."
        )
    else:
        rows = []
        for r in evaluation["runs"]:
            rows.append(
                f"| {r['task']} | {r['mode']} | {r['n_episodes']} | "
                f"{r['success_rate']:.3f} ± {r['stderr']:.3f} | {r.get('target')} |"
            )
        used = evaluation.get("expert_params", {}).get("mean", {}).get("gait")
        warning = ""
        if used is not None and used != result["gait"]:
            warning = (
                "\n\n**Warning:** this evaluation used a different gait than this config "
                f"({used}); re-run the benchmark.\n"
            )
        first = evaluation["runs"][0]
        metrics = (
            f"`python benchmarks/ant_expert_eval.py --episodes {first['n_episodes']} "
            f"--seed {first['seed']}` (reset seeds from {first['seed']}, disjoint from the "
            "tuning episodes; the paper's PPO expert reaches 0.8 on the pretraining tasks and "
            "0.7 on 0-1-2-3):\n\n"
            "| tasks | mode | episodes | success ± s.e. | target |\n|---|---|---|---|---|\n"
            + "\n".join(rows)
            + warning
        )
    return f"""---
{card_metadata(evaluation)}
---

# ant-gait-expert

Parameters of the AntPinpad-v0 expert (`internal_rl_gym.envs.ant_expert.AntPinpadExpert`): a
direction-conditioned trot gait driven by a grid planner. `AntPinpadExpert()` loads them from
this `config.json` (`load_ant_expert_params()`); `GaitParams()`/`PlannerParams()` defaults
equal them.

## How it was made

```bash
{result["command"]}
```

({result["seconds"]:.0f} s on a CPU; MuJoCo {v["mujoco"]}, NumPy {v["numpy"]}.) \
Two random searches, deterministic under their seeds (see `agents/tune_ant_expert.py`):

1. Fastest fall-free straight walk: {walk["candidates"]} gaits drawn uniformly from \
`WALK_SEARCH_RANGES` (seed {c["walk_seed"]}), each walking {c["walk_directions"]} random \
directions for {c["walk_seconds"]:g} s; {walk["fall_free"]} never fell, the fastest walks at \
{walk["best_speed_m_per_s"]:.3f} m/s.
2. Task success: {tune["candidates"]} perturbations (±{c["tune_spread"]:g}) of that gait, each \
scored by the deterministic expert on {c["tune_episodes"]} {c["tune_task"]} episodes (reset seeds \
from {c["tune_seed"]}): success {tune["start_success_rate"]:.3f} → {tune["best_success_rate"]:.3f} \
(optimistic: the best of many candidates on the same episodes).

## Parameters

| gait | value |
|---|---|
{gait_rows}

| planner (not searched) | value |
|---|---|
{planner_rows}

## Evaluation

{metrics}

(This card: `{card_command}`.)
"""


def write_card(out: Path, eval_json: str | None) -> None:
    result = json.loads((out / "config.json").read_text())
    evaluation = json.loads(Path(eval_json).read_text()) if eval_json else None
    card = render_card(result, evaluation, command_line())
    atomic_write_bytes(out / "README.md", lambda tmp: Path(tmp).write_text(card))


def run(cfg: TuneAntExpertConfig) -> None:
    out = Path(cfg.out)
    if not cfg.card_only:
        result = search(cfg)
        atomic_write_json(out / "config.json", result)
        gait = ", ".join(f"{k}={v:g}" for k, v in result["gait"].items())
        print(f"wrote {out / 'config.json'}: GaitParams({gait})")
    write_card(out, cfg.eval_json)
    print(f"wrote {out / 'README.md'}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_config_arguments(p, TuneAntExpertConfig)
    args = p.parse_args()
    run(config_from_args(TuneAntExpertConfig, args))
