"""InternalControl speed: primitive steps/s of N separate envs vs the batched VecEnv, one run.

    python benchmarks/internal_control_speed.py [--n-envs 1 16 64 256] [--seconds 8] \
        [--rounds 4] [--codes prior|uniform] [--dummy-cap 64] [--ppo-steps 2048] [--ppo-n-envs 64]

Measures, single-threaded, on GridPinpad's post-training task, for every N of ``--n-envs``:
  (a) N separate ``InternalControlEnv`` in SB3's ``DummyVecEnv`` (one forward call per env);
  (b) the batched ``InternalControlVecEnv`` (one forward call per primitive step for the rows
      still inside their abstract step);
  (c) the bare base-model step with KV cache at batch N (the model alone, no env, no
      metacontroller): the ceiling for (b).
Targets (issue 32, at N = 64): (b) >= 10x (a) (floor 5x) and (b) >= 5,000 primitive steps/s on 2
idle cores (goal 20,000). Also reports the abstract-step lengths under random actions (``--codes``:
for a Box action space, z from the metacontroller's prior N(0, I), the default, or uniform in
the action box; for a Discrete action space, categorical codes or oracle subgoals, a uniform
index either way) and the share of the lockstep batch's row-steps that do work (rows whose gate
fired idle until the batch's longest abstract step ends). The three meters of one N run in
interleaved time slices, so machine noise hits them alike; compare ratios, not rates, across
runs on a busy machine.

The separate envs of (a) run one after another, so their rate per env does not depend on N:
above ``--dummy-cap`` envs, (a) runs ``--dummy-cap`` of them and says so (``a_envs``).

Then the wall time of ``PPO("MlpPolicy", env).learn(k)`` end to end (building the env, the
model and the learning; ``k = --ppo-steps`` abstract steps), on one ``InternalControl-Pinpad-v0``
and on the batched VecEnv of ``--ppo-n-envs`` rows; the batched PPO gets ``n_steps = 2048 // N``
so both collect 2048 abstract steps per update (``--ppo-steps 0`` skips this part).

Uses ``--base-model``/``--metacontroller`` when given, else the embedded default checkpoints
when present, else random weights of the same sizes. Writes
``benchmarks/results/internal_control_speed.json`` (one entry per N under ``"runs"``).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from internal_rl_agents.common import atomic_write_json

import internal_rl_gym  # noqa: F401  (registers the ids)
from internal_rl_gym.hub import available_defaults
from internal_rl_gym.internal_control import (
    InternalControlEnv,
    load_frozen_models,
    make_internal_control_vec_env,
)
from internal_rl_gym.models import GRID_CPU_PRESET, BaseModel, Metacontroller

DEFAULTS = ("pinpad-transformer", "pinpad-metacontroller")


def models(tmp: Path, base_model: str, metacontroller: str) -> tuple[str, str, str]:
    """(base model, metacontroller, description) to benchmark."""
    if base_model and metacontroller:
        load_frozen_models(base_model, metacontroller)  # checks that they fit (any kind)
        return base_model, metacontroller, f"{base_model} + {metacontroller}"
    if set(DEFAULTS) <= set(available_defaults()):
        return *DEFAULTS, "embedded defaults"
    torch.manual_seed(0)
    base = BaseModel.from_config(GRID_CPU_PRESET)
    meta = Metacontroller(d_model=base.d_model, layer=base.n_layers // 2)
    base.save_pretrained(tmp / "base")
    meta.save_pretrained(tmp / "meta")
    return str(tmp / "base"), str(tmp / "meta"), "random weights (CPU preset sizes)"


class RandomActions:
    """Random actions for a VecEnv of either action space: Box codes from the prior N(0, I)
    (what `internal-rl train`'s initial policy sends) or uniform in the box; Discrete indices
    uniform."""

    def __init__(self, space: spaces.Space, n_envs: int, codes: str, scale: float) -> None:
        self.space, self.n, self.codes, self.scale = space, n_envs, codes, scale
        self.rng = np.random.default_rng(0)

    def __call__(self) -> np.ndarray:
        if isinstance(self.space, spaces.Discrete):
            return self.rng.integers(self.space.n, size=self.n)
        shape = (self.n, *self.space.shape)
        if self.codes == "prior":
            return np.clip(self.rng.standard_normal(shape) / self.scale, -1.0, 1.0)
        return self.rng.uniform(-1.0, 1.0, shape)


class VecEnvMeter:
    """Primitive steps of a VecEnv under random actions, measured in time slices, and how the
    abstract steps' lengths fill a lockstep batch (a VecEnv step lasts as long as its longest
    abstract step)."""

    def __init__(self, vec, codes: str, scale: float) -> None:
        self.vec, self.actions = vec, RandomActions(vec.action_space, vec.num_envs, codes, scale)
        self.steps, self.lockstep, self.lengths, self.seconds = 0, 0, [], 0.0
        vec.reset()

    def run(self, seconds: float) -> None:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            _, _, _, infos = self.vec.step(self.actions())
            ps = [i["primitive_steps"] for i in infos]
            self.steps += sum(ps)
            self.lockstep += len(ps) * max(ps)
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

    def __init__(self, base: BaseModel, n_envs: int) -> None:
        self.base, self.n = base, n_envs
        # real first observations of the post task (the encoder's cost depends on them)
        env = gym.make("GridPinpad-v0", task="post")
        obs = np.stack([env.reset(seed=i)[0] for i in range(n_envs)])
        self.obs = torch.as_tensor(obs)
        self.state = base.init_state(n_envs)
        self.steps, self.seconds = 0, 0.0

    @torch.inference_mode()
    def run(self, seconds: float) -> None:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            if int(self.state.layer_lengths.max()) >= 100:  # GridPinpad's episode length
                self.base.reset_state(self.state, torch.ones(self.n, dtype=torch.bool))
            self.base.step(self.obs, self.state)
            self.steps += self.n
        self.seconds += time.perf_counter() - t0

    def rate(self) -> float:
        return self.steps / self.seconds


def measure(n: int, kw: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """(a), (b), (c) at N = n, in interleaved time slices."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    base, meta = load_frozen_models(kw["base_model"], kw["metacontroller"])
    env_kw = dict(kw, base_model=base, metacontroller=meta)  # the envs share the frozen models
    n_a = min(n, args.dummy_cap)
    separate = DummyVecEnv([lambda: InternalControlEnv(**env_kw) for _ in range(n_a)])
    separate.seed(0)
    batched = make_internal_control_vec_env(n, seed=0, monitor=False, **env_kw)
    scale = batched.core.options.action_scale  # the same options in both
    meters = {
        "a": VecEnvMeter(separate, args.codes, scale),
        "b": VecEnvMeter(batched, args.codes, scale),
        "c": BareModelMeter(base, n),
    }
    # Round-robin time slices, so that a noisy machine (other jobs, CPU steal) slows all three
    # alike instead of whichever ran during the noise.
    for _ in range(args.rounds):
        for meter in meters.values():
            meter.run(args.seconds / args.rounds)
    a, b, c = (meters[k].rate() for k in "abc")
    row: dict[str, Any] = {
        "n_envs": n,
        "a_envs": n_a,
        "a_separate_envs_dummyvecenv_steps_per_s": round(a),
        "b_batched_vecenv_steps_per_s": round(b),
        "c_bare_model_step_steps_per_s": round(c),
        "b_over_a": round(b / a, 2),
        "b_over_c": round(b / c, 3),
        "batched_abstract_steps": meters["b"].lengths_summary(),
    }
    if n_a < n:
        row["note"] = (
            f"(a) ran {n_a} of the {n} separate envs: they step one after another, so the "
            "rate per env does not depend on N"
        )
    print(row, flush=True)
    return row


def ppo_wall_time(k: int, n_envs: int, kw: dict[str, Any]) -> dict[str, Any]:
    """Seconds of ``PPO("MlpPolicy", env).learn(k)`` end to end, building the env included, on
    one ``InternalControl-Pinpad-v0`` (n_envs = 1) or on the batched VecEnv."""
    from stable_baselines3 import PPO

    t0 = time.perf_counter()
    if n_envs == 1:
        env = gym.make("InternalControl-Pinpad-v0", **kw)
        model = PPO("MlpPolicy", env, seed=0)
        what = 'PPO("MlpPolicy", gym.make("InternalControl-Pinpad-v0")).learn(k)'
    else:
        env = make_internal_control_vec_env(n_envs, seed=0, **kw)
        model = PPO("MlpPolicy", env, n_steps=max(1, 2048 // n_envs), seed=0)
        what = (
            f'PPO("MlpPolicy", make_internal_control_vec_env({n_envs}), '
            f"n_steps={max(1, 2048 // n_envs)}).learn(k)"
        )
    model.learn(k)
    seconds = time.perf_counter() - t0
    row = {"n_envs": n_envs, "k_abstract_steps": k, "wall_s": round(seconds, 1), "call": what}
    print(row, flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n-envs", type=int, nargs="+", default=[1, 16, 64, 256])
    p.add_argument("--seconds", type=float, default=8.0, help="per meter and N, in all")
    p.add_argument("--rounds", type=int, default=4, help="time slices per meter and N")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--dummy-cap",
        type=int,
        default=64,
        help="(a) runs at most this many separate envs (its rate per env does not depend on N)",
    )
    p.add_argument(
        "--codes",
        choices=("prior", "uniform"),
        default="prior",
        help="random Box actions: 'prior' = z ~ N(0, I), the metacontroller's prior and what "
        "`internal-rl train`'s initial policy sends; 'uniform' = actions uniform in the box "
        "[-1, 1] (z uniform in +-3). Discrete actions are uniform indices either way",
    )
    p.add_argument("--ppo-steps", type=int, default=2048, help="k of PPO.learn(k); 0 skips it")
    p.add_argument("--ppo-n-envs", type=int, default=64, help="rows of the batched PPO run")
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
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        base, meta, source = models(Path(tmp), args.base_model, args.metacontroller)
        kw = {"base_model": base, "metacontroller": meta, "task": "post"}
        runs = [measure(n, kw, args) for n in args.n_envs]
        ppo = []
        if args.ppo_steps > 0:
            pkw = {"base_model": base, "metacontroller": meta}  # task: the ids' "post"
            ppo = [ppo_wall_time(args.ppo_steps, n, pkw) for n in (1, args.ppo_n_envs)]
            ppo[1]["speedup_over_single_env"] = round(ppo[0]["wall_s"] / ppo[1]["wall_s"], 2)
    result = {
        "command": "python benchmarks/internal_control_speed.py "
        + " ".join(
            [f"--n-envs {' '.join(map(str, args.n_envs))}", f"--seconds {args.seconds:g}"]
            + [f"--rounds {args.rounds}", f"--codes {args.codes}"]
            + [f"--dummy-cap {args.dummy_cap}", f"--ppo-steps {args.ppo_steps}"]
            + [f"--ppo-n-envs {args.ppo_n_envs}"]
        ),
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "loadavg_before_after": [list(load_before), list(os.getloadavg())],
        "seconds_each": args.seconds,
        "rounds": args.rounds,
        "models": source,
        "codes": args.codes,
        "targets_at_n64": {"b_over_a": 10.0, "b_over_a_floor": 5.0, "b_steps_per_s": 5000},
        "runs": runs,
        "ppo_learn_wall_time": ppo,
    }
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
