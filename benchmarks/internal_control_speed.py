"""InternalControl speed: primitive steps/s of N separate envs vs the batched VecEnv, one run.

    python benchmarks/internal_control_speed.py [--n-envs 16] [--seconds 20]

Measures, single-threaded, on GridPinpad's post-training task with the CPU-preset model sizes:
  (a) N separate ``InternalControlEnv`` in SB3's ``DummyVecEnv`` (one forward call per env);
  (b) the batched ``InternalControlVecEnv`` (one forward call per primitive step for all N);
  (c) the bare base-model step with KV cache at batch N (the model alone, no env, no
      metacontroller): the ceiling for (b).
Targets (issue 5): (b) >= 5x (a) at N = 16, and (b) >= a third of (c). Also reports the
abstract-step lengths under random codes and the share of the lockstep batch's row-steps that
do work (rows whose gate fired wait for the batch's longest abstract step).
Uses ``--base-model``/``--metacontroller`` when given, else the embedded default checkpoints
when present, else random weights of the same sizes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agents.common import atomic_write_json  # noqa: E402
from internal_rl_gym.hub import available_defaults, load_base_model, load_metacontroller  # noqa: E402
from internal_rl_gym.internal_control import (  # noqa: E402
    InternalControlEnv,
    make_internal_control_vec_env,
)
from internal_rl_gym.models import GRID_CPU_PRESET, BaseModel, Metacontroller  # noqa: E402


def models(tmp: Path, base_model: str, metacontroller: str) -> tuple[str, str, str]:
    if base_model and metacontroller:
        load_metacontroller(metacontroller, base_model=load_base_model(base_model))
        return base_model, metacontroller, f"{base_model} + {metacontroller}"
    if {"pinpad-transformer", "pinpad-metacontroller"} <= set(available_defaults()):
        base = load_base_model("pinpad-transformer")
        load_metacontroller("pinpad-metacontroller", base_model=base)
        return "pinpad-transformer", "pinpad-metacontroller", "embedded defaults"
    torch.manual_seed(0)
    base = BaseModel.from_config(GRID_CPU_PRESET)
    meta = Metacontroller(d_model=base.d_model, layer=base.n_layers // 2)
    base.save_pretrained(tmp / "base")
    meta.save_pretrained(tmp / "meta")
    return str(tmp / "base"), str(tmp / "meta"), "random weights (CPU preset sizes)"


def primitive_rate(vec, seconds: float, n_envs: int) -> tuple[float, dict[str, float]]:
    """Primitive steps/s under random controller codes, and how the abstract steps' lengths
    fill a lockstep batch (a VecEnv step lasts as long as its longest abstract step)."""
    vec.reset()
    rng = np.random.default_rng(0)
    steps, lockstep, lengths, t0 = 0, 0, [], time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        _, _, _, infos = vec.step(rng.uniform(-1, 1, (n_envs, vec.action_space.shape[0])))
        ps = [i["primitive_steps"] for i in infos]
        steps += sum(ps)
        lockstep += n_envs * max(ps)
        lengths += ps
    rate = steps / (time.perf_counter() - t0)
    return rate, {
        "abstract_step_length_mean": round(float(np.mean(lengths)), 2),
        "abstract_step_length_p90": round(float(np.percentile(lengths, 90)), 1),
        "abstract_step_length_max": int(max(lengths)),
        "lockstep_useful_fraction": round(steps / lockstep, 3),
    }


@torch.no_grad()
def bare_model_rate(base_dir: str, n_envs: int, seconds: float) -> float:
    base = load_base_model(base_dir)
    obs = torch.zeros(n_envs, base.obs_dim)
    obs[:, 12::13] = (torch.rand(n_envs, 49) > 0.9).float()
    state = base.init_state(n_envs)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        if int(state.lengths.max()) >= 100:
            base.reset_state(state, torch.ones(n_envs, dtype=torch.bool))
        base.step(obs, state)
        steps += n_envs
    return steps / (time.perf_counter() - t0)


def main() -> None:
    import tempfile

    from stable_baselines3.common.vec_env import DummyVecEnv

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n-envs", type=int, default=16)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--base-model", default="", help="with --metacontroller: other checkpoints")
    p.add_argument("--metacontroller", default="")
    p.add_argument("--out", default="benchmarks/results/internal_control_speed.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        base, meta, source = models(Path(tmp), args.base_model, args.metacontroller)
        kw = {"base_model": base, "metacontroller": meta, "task": "post"}
        n = args.n_envs
        separate = DummyVecEnv([lambda: InternalControlEnv(**kw) for _ in range(n)])
        separate.seed(0)
        a, _ = primitive_rate(separate, args.seconds, n)
        batched = make_internal_control_vec_env(n, seed=0, monitor=False, **kw)
        b, lengths = primitive_rate(batched, args.seconds, n)
        c = bare_model_rate(base, n, args.seconds)
    result = {
        "n_envs": n,
        "threads": args.threads,
        "models": source,
        "a_separate_envs_dummyvecenv_steps_per_s": round(a),
        "b_batched_vecenv_steps_per_s": round(b),
        "c_bare_model_step_steps_per_s": round(c),
        "b_over_a": round(b / a, 2),
        "b_over_c": round(b / c, 3),
        "targets": {"b_over_a": 5.0, "b_over_c": 0.333},
        "batched_abstract_steps": lengths,
    }
    print(result)
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
