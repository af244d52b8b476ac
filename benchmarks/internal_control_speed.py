"""InternalControl speed: primitive steps/s of N separate envs vs the batched VecEnv, one run.

    python benchmarks/internal_control_speed.py [--n-envs 16] [--seconds 30] [--rounds 10] \
        [--codes prior|uniform]

Measures, single-threaded, on GridPinpad's post-training task with the CPU-preset model sizes:
  (a) N separate ``InternalControlEnv`` in SB3's ``DummyVecEnv`` (one forward call per env);
  (b) the batched ``InternalControlVecEnv`` (one forward call per primitive step for the rows
      still inside their abstract step);
  (c) the bare base-model step with KV cache at batch N (the model alone, no env, no
      metacontroller): the ceiling for (b).
Targets (issue 5): (b) >= 5x (a) at N = 16, and (b) >= a third of (c). Also reports the
abstract-step lengths under random codes (``--codes``: from the metacontroller's prior
N(0, I), the default, or uniform in the action box) and the share of the lockstep batch's
row-steps that do work (rows whose gate fired idle until the batch's longest abstract step
ends). The three are measured in interleaved time slices, so machine noise hits them alike.
Uses ``--base-model``/``--metacontroller`` when given, else the embedded default checkpoints
when present, else random weights of the same sizes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from internal_rl_agents.common import atomic_write_json

from internal_rl_gym.hub import available_defaults, load_base_model, load_metacontroller
from internal_rl_gym.internal_control import (
    InternalControlEnv,
    make_internal_control_vec_env,
)
from internal_rl_gym.models import GRID_CPU_PRESET, BaseModel, Metacontroller


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


class VecEnvMeter:
    """Primitive steps of a VecEnv under random controller codes, measured in time slices, and
    how the abstract steps' lengths fill a lockstep batch (a VecEnv step lasts as long as its
    longest abstract step)."""

    def __init__(self, vec, n_envs: int, codes: str, action_scale: float) -> None:
        self.vec, self.n_envs, self.codes, self.scale = vec, n_envs, codes, action_scale
        self.rng = np.random.default_rng(0)
        self.steps, self.lockstep, self.lengths, self.seconds = 0, 0, [], 0.0
        vec.reset()

    def run(self, seconds: float) -> None:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            shape = (self.n_envs, self.vec.action_space.shape[0])
            if self.codes == "prior":  # what `internal-rl train`'s initial policy sends
                codes = np.clip(self.rng.standard_normal(shape) / self.scale, -1.0, 1.0)
            else:
                codes = self.rng.uniform(-1, 1, shape)
            _, _, _, infos = self.vec.step(codes)
            ps = [i["primitive_steps"] for i in infos]
            self.steps += sum(ps)
            self.lockstep += self.n_envs * max(ps)
            self.lengths += ps
        self.seconds += time.perf_counter() - t0

    def rate(self) -> float:
        return self.steps / self.seconds

    def lengths_summary(self) -> dict[str, float]:
        return {
            "abstract_step_length_mean": round(float(np.mean(self.lengths)), 2),
            "abstract_step_length_p90": round(float(np.percentile(self.lengths, 90)), 1),
            "abstract_step_length_max": int(max(self.lengths)),
            "lockstep_useful_fraction": round(self.steps / self.lockstep, 3),
        }


class BareModelMeter:
    """The bare base-model step with KV cache at batch N: no env, no metacontroller."""

    def __init__(self, base_dir: str, n_envs: int) -> None:
        self.base = load_base_model(base_dir)
        self.n = n_envs
        # real first observations of the post task (the encoder's cost depends on them)
        env = gym.make("GridPinpad-v0", task="post")
        self.obs = torch.as_tensor(np.stack([env.reset(seed=i)[0] for i in range(n_envs)]))
        self.state = self.base.init_state(n_envs)
        self.steps, self.seconds = 0, 0.0

    @torch.no_grad()
    def run(self, seconds: float) -> None:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            if int(self.state.lengths.max()) >= 100:
                self.base.reset_state(self.state, torch.ones(self.n, dtype=torch.bool))
            self.base.step(self.obs, self.state)
            self.steps += self.n
        self.seconds += time.perf_counter() - t0

    def rate(self) -> float:
        return self.steps / self.seconds


def main() -> None:
    import tempfile

    from stable_baselines3.common.vec_env import DummyVecEnv

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n-envs", type=int, default=16)
    p.add_argument("--seconds", type=float, default=30.0, help="per measurement, in all")
    p.add_argument("--rounds", type=int, default=10, help="time slices per measurement")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--codes",
        choices=("prior", "uniform"),
        default="prior",
        help="random controller codes: 'prior' = z ~ N(0, I), the metacontroller's prior and "
        "what `internal-rl train`'s initial policy sends; 'uniform' = actions uniform in the "
        "box [-1, 1] (z uniform in +-3, far wider than any code the metacontroller was trained on)",
    )
    p.add_argument("--base-model", default="", help="with --metacontroller: other checkpoints")
    p.add_argument("--metacontroller", default="")
    p.add_argument(
        "--out",
        default="",
        help="default: benchmarks/results/internal_control_speed.json, or "
        "internal_control_speed_uniform_codes.json with --codes uniform",
    )
    args = p.parse_args()
    if not args.out:
        suffix = "" if args.codes == "prior" else "_uniform_codes"
        args.out = f"benchmarks/results/internal_control_speed{suffix}.json"
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        base, meta, source = models(Path(tmp), args.base_model, args.metacontroller)
        kw = {"base_model": base, "metacontroller": meta, "task": "post"}
        n = args.n_envs
        separate = DummyVecEnv([lambda: InternalControlEnv(**kw) for _ in range(n)])
        separate.seed(0)
        batched = make_internal_control_vec_env(n, seed=0, monitor=False, **kw)
        scale = batched.core.options.action_scale  # the same options in both
        meters = {
            "a": VecEnvMeter(separate, n, args.codes, scale),
            "b": VecEnvMeter(batched, n, args.codes, scale),
            "c": BareModelMeter(base, n),
        }
        # Round-robin time slices, so that a noisy machine (other jobs, CPU steal) slows all
        # three alike instead of whichever ran during the noise.
        for _ in range(args.rounds):
            for meter in meters.values():
                meter.run(args.seconds / args.rounds)
        a, b, c = (meters[k].rate() for k in "abc")
        lengths = meters["b"].lengths_summary()
    result = {
        "n_envs": n,
        "threads": args.threads,
        "seconds_each": args.seconds,
        "rounds": args.rounds,
        "models": source,
        "codes": args.codes,
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
