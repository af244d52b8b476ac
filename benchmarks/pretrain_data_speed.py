"""Pretraining's data path: host time and bytes per batch, float32 vs bit-packed observations.

    python benchmarks/pretrain_data_speed.py [--batch-sizes 256 1024] [--rounds 5]

For each batch size, in one run and in interleaved rounds (so machine noise hits all alike),
times the host's share of what the training loop does before the model sees a batch:

  (a) decoded (what `internal-rl pretrain` does when training on the CPU):
      ``EpisodePool.next_batch()`` unpacks the grid's bit-packed observations in numpy into
      float32 (B, T+1, 637), which a GPU trainer would then have to copy;
  (b) packed (what it does when training on a GPU): ``next_batch(decode=False)`` keeps them
      packed, 80 bytes per step, and ``observations_to_device`` copies those and unpacks them
      on the GPU, a single embedding lookup there (not timed here: no GPU on this machine);
  (c) for reference, that same unpacking run on the CPU (why CPU training keeps (a)).

Reports milliseconds per batch and the bytes a batch's observations take in host memory (what
would travel to a GPU). Every mode reads the same sequence of batches from one pool of fresh
expert episodes on the pretraining tasks.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from internal_rl_agents.common import atomic_write_json
from internal_rl_agents.data_sources import EpisodePool, observations_to_device

from internal_rl_gym.envs.grid_expert import collect_grid_demonstrations


def measure(data, batch_size: int, mode: str, n_batches: int, seed: int) -> tuple[float, int]:
    """Seconds and observation bytes for ``n_batches`` batches (the same batches for a seed)."""
    pool = EpisodePool(data, batch_size, seed)
    seconds, nbytes = 0.0, 0
    for _ in range(n_batches):
        t0 = time.perf_counter()
        batch = pool.next_batch(decode=mode == "a")
        if mode == "c":
            obs = observations_to_device(batch["obs"], data.obs_dim, "cpu")
            assert obs.dtype == torch.float32
        seconds += time.perf_counter() - t0
        nbytes += batch["obs"].nbytes
    return seconds, nbytes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--episodes", type=int, default=16384, help="pool of expert episodes")
    p.add_argument("--batches", type=int, default=4, help="batches per round and mode")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results/pretrain_data_speed.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = collect_grid_demonstrations(args.episodes, "pretraining", seed=0)
    rows = []
    for b in args.batch_sizes:
        totals = {m: [0.0, 0] for m in "abc"}
        for r in range(args.rounds):
            for m in "abc":
                s, n = measure(data, b, m, args.batches, seed=r)
                totals[m][0] += s
                totals[m][1] += n
        n = args.rounds * args.batches
        ms = {m: 1e3 * totals[m][0] / n for m in "abc"}
        mb = {m: totals[m][1] / n / 1e6 for m in "abc"}
        row = {
            "batch_size": b,
            "a_decoded_host_ms": round(ms["a"], 2),
            "b_packed_host_ms": round(ms["b"], 2),
            "a_over_b_host_time": round(ms["a"] / ms["b"], 1),
            "c_packed_unpacked_on_cpu_ms": round(ms["c"], 2),
            "a_obs_mb": round(mb["a"], 2),
            "b_obs_mb": round(mb["b"], 3),
            "a_over_b_bytes": round(mb["a"] / mb["b"], 1),
        }
        print(row)
        rows.append(row)
    atomic_write_json(
        args.out,
        {
            "threads": args.threads,
            "episodes": args.episodes,
            "batches_per_mode": args.rounds * args.batches,
            "mean_episode_length": round(float(np.mean(data.lengths)), 1),
            "results": rows,
        },
    )


if __name__ == "__main__":
    main()
