"""Base-model speed: training throughput and single-step latency, both architectures, one run.

    python benchmarks/model_speed.py [--threads 1] [--out benchmarks/results/model_speed.json]

For the CPU presets (grid transformer: d_model 128, 6 layers; ant Hawk: d_model 128, 6 layers):
  * training throughput: tokens/s of forward + backward + AdamW on batches of 64 sequences, in
    fp32 and under bfloat16 autocast (``internal-rl pretrain --precision bf16``);
  * single-step latency for one new timestep at context position t, with the cache (KV cache /
    recurrent state) vs recomputing the whole prefix, at batch 1 and 16;
  * Hawk only: training throughput at an ant episode's length (256 steps) with the chunked
    RG-LRU scan (``RGLRU.chunk`` = 16, the default) vs the same scan with chunk 1, a Python
    step per timestep (close to, not exactly, the loop the chunked scan replaced).
Random weights: speed does not depend on training.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from internal_rl_agents.common import atomic_write_json, autocast

from internal_rl_gym.models import ANT_CPU_PRESET, GRID_CPU_PRESET, BaseModel
from internal_rl_gym.models.layers import RGLRU


def timeit(fn, min_seconds: float = 1.0) -> float:
    fn()  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_seconds:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n


def training_tokens_per_s(
    model: BaseModel, batch: int, t: int, seconds: float, rounds: int = 4
) -> dict[str, float]:
    """Tokens/s in fp32 and under bfloat16 autocast (``pretrain --precision bf16``), timed in
    alternating slices so that machine noise hits both alike."""
    obs = torch.rand(batch, t + 1, model.obs_dim)
    if model.action_type == "discrete":
        obs = (obs > 0.95).float()
        actions = torch.randint(0, model.config.n_actions, (batch, t))
    else:
        actions = torch.randn(batch, t, model.config.action_dim)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(precision: str):
        with autocast(torch.device("cpu"), precision):  # what `pretrain --precision` runs
            loss = model.loss(obs, actions).loss
        opt.zero_grad()
        loss.backward()
        opt.step()

    per_step = {"fp32": [], "bf16": []}
    for _ in range(rounds):
        for name in per_step:
            per_step[name].append(timeit(lambda name=name: step(name), seconds / rounds))
    return {name: batch * t * len(v) / sum(v) for name, v in per_step.items()}


@torch.no_grad()
def step_latency(model: BaseModel, batch: int, position: int, seconds: float) -> dict[str, float]:
    obs = torch.rand(batch, position + 1, model.obs_dim)
    state = model.init_state(batch)
    for i in range(position):
        model.step(obs[:, i], state)

    def cached():
        s = state.clone()
        model.step(obs[:, position], s)

    def clone_only():
        state.clone()

    def recompute():
        model(obs[:, : position + 1])

    cached_s = max(1e-9, timeit(cached, seconds) - timeit(clone_only, seconds))
    return {"cached_ms": cached_s * 1e3, "recompute_ms": timeit(recompute, seconds) * 1e3}


def scan_speedup(model: BaseModel, seconds: float, t: int = 256) -> dict[str, float]:
    """bf16 training tokens/s with the chunked RG-LRU scan vs one Python step per timestep,
    alternating the two so that machine noise hits both alike."""
    default, rates = RGLRU.chunk, {"chunked": [], "per_timestep": []}
    try:
        for _ in range(2):
            for name, chunk in (("chunked", default), ("per_timestep", 1)):
                RGLRU.chunk = chunk
                rates[name].append(training_tokens_per_s(model, 64, t, seconds / 2, 1)["bf16"])
    finally:
        RGLRU.chunk = default
    chunked, per_step = (sum(v) / len(v) for v in rates.values())
    return {
        "chunk": default,
        "tokens_per_s_chunked": round(chunked),
        "tokens_per_s_per_timestep": round(per_step),
        "speedup": round(chunked / per_step, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--out", default="benchmarks/results/model_speed.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = {
        "grid_transformer_cpu": BaseModel.from_config(GRID_CPU_PRESET),
        "ant_hawk_cpu": BaseModel.from_config(
            ANT_CPU_PRESET.replace(obs_dim=39, action_dim=8, action_type="continuous")
        ),
    }
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    result = {
        "threads": args.threads,
        "machine": platform.processor() or platform.machine(),
        "cpu_bf16": any(f in flags.split() for f in ("avx512_bf16", "amx_bf16")),
    }
    for name, model in models.items():
        seq = 32 if "grid" in name else 128
        rates = training_tokens_per_s(model, 64, seq, args.seconds)
        entry = {
            "params_M": round(model.n_params / 1e6, 3),
            "train_tokens_per_s": round(rates["fp32"]),
            "train_tokens_per_s_bf16_autocast": round(rates["bf16"]),
            "bf16_speedup": round(rates["bf16"] / rates["fp32"], 2),
            "train_sequence_length": seq,
        }
        for batch in (1, 16):
            for pos in (32, 96):
                lat = step_latency(model.eval(), batch, pos, args.seconds / 2)
                entry[f"step_b{batch}_t{pos}"] = {k: round(v, 3) for k, v in lat.items()} | {
                    "speedup": round(lat["recompute_ms"] / lat["cached_ms"], 2)
                }
        if model.arch == "hawk":
            entry["scan_t256_bf16"] = scan_speedup(model.train(), args.seconds)
        result[name] = entry
        print(name, json.dumps(entry, indent=1))
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
