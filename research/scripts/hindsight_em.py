"""Codes by expectation-maximisation over segments: does scoring every code on every segment find
the subgoals where the Gumbel posterior did not?

    python research/scripts/hindsight_em.py --base-model ant-transformer \
        --data data/antroutes1_pretraining_clean.npz --segments true --steps 400 \
        --out research/results/session33/hindsight_em_true_s0.json

K controllers (rank ``--rank`` at ``--layer``, as ``SubgoalControllers``) and no encoder. Each
step, every episode of the batch is run with each code held throughout; a segment's score for
code k is its mean action log-likelihood under k. Responsibilities are softmax(score / τ) over the
codes, balanced over the batch's segments by Sinkhorn iterations (``--balance``; as SwAV does, so
that one controller that learns the average first cannot take every segment), and the
controllers minimise the responsibility-weighted NLL. Labels are read only to score: the purity
of each held-out segment's best code against its true subgoal, and the NLL with each segment's
best code against the ground-truth controllers' (session 32: -29.18 per step right, -25.59
wrong, -26.63 none).

``--rank 0`` gives full d x d controllers (the paper's ant), started at small random matrices
(``--init-std``). Two starts other than random: ``--seed-steps N`` fits code k alone to one
random segment first (k-means++ style), ``--split-every N`` grows the codes from one by splitting
each in two every N steps (LBG style), so that each split takes the partition that pays most.

``--segments true`` cuts where the true subgoal changes (a diagnostic that reads the labels);
``--segments <metacontroller>`` where that metacontroller's gate opens (label-free).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from hindsight_true_segments import true_segment_starts
from internal_rl_agents.common import atomic_write_json
from internal_rl_agents.data_sources import observations_to_device, stream_layers
from internal_rl_agents.discover import segment_starts
from internal_rl_agents.probe import action_log_prob

from internal_rl_gym.data import Demonstrations
from internal_rl_gym.hub import load_base_model, load_metacontroller
from internal_rl_gym.models import SubgoalControllers


def sinkhorn(scores: torch.Tensor, iters: int = 3) -> torch.Tensor:
    """Rows (segments) sum to 1, columns (codes) to n / K: balanced soft assignments."""
    q = (scores - scores.max()).exp()
    n, k = q.shape
    for _ in range(iters):
        q = q / q.sum(0, keepdim=True) / k
        q = q / q.sum(1, keepdim=True) / n
    return q * n


def batch_streams(base, data: Demonstrations, idx, layer, segmenter):
    b = data.batch(idx)
    obs = observations_to_device(b["obs"], base.obs_dim, base.device)
    layers = sorted({layer} | ({segmenter.layer} if segmenter is not None else set()))
    with torch.no_grad():
        streams = stream_layers(base, obs, layers)
    mask = torch.as_tensor(b["mask"]).bool()
    sub = torch.as_tensor(b["subgoals"])
    if segmenter is None:
        starts = true_segment_starts(sub, mask)
    else:
        starts = segment_starts(segmenter, streams[segmenter.layer][:, :-1], mask).cpu()
    return {
        "e": streams[layer][:, :-1],
        "actions": torch.as_tensor(b["actions"]),
        "mask": mask,
        "subgoals": sub,
        "seg": (starts.long().cumsum(1) - 1).clamp(min=0),
    }


def segment_nll(base, ctrl, layer, b, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, S) summed NLL per segment with code k held throughout, and (B, S) step counts."""
    e = b["e"]
    code = torch.full(e.shape[:2], k, dtype=torch.long)
    head = base.heads(base.run_layers(ctrl(e, code), layer, base.n_layers), predict_obs=False)
    nll = -action_log_prob(base, head, b["actions"]) * b["mask"]
    s_max = int(b["seg"].max()) + 1
    sums = torch.zeros(e.shape[0], s_max).scatter_add(1, b["seg"], nll)
    counts = torch.zeros(e.shape[0], s_max).scatter_add(1, b["seg"], b["mask"].float())
    return sums, counts


def evaluate(base, ctrl, layer, b, n_z) -> dict:
    with torch.no_grad():
        out = [segment_nll(base, ctrl, layer, b, k) for k in range(n_z)]
    sums, counts = torch.stack([s for s, _ in out], -1), out[0][1]
    valid = counts > 0
    best = sums.argmin(-1)[valid]
    # a segment's true subgoal: the label at its first step
    first = torch.zeros_like(counts, dtype=torch.long).scatter_reduce(
        1, b["seg"], b["subgoals"].clamp(min=0), "amax", include_self=False
    )[valid]
    n_sub = int(first.max()) + 1
    table = np.zeros((n_z, n_sub), int)
    np.add.at(table, (best.numpy(), first.numpy()), 1)
    steps = counts[valid].sum()
    return {
        "purity": float(table.max(1).sum() / table.sum()),
        "chance": float(np.bincount(first.numpy()).max() / len(first)),
        "codes_used": int((table.sum(1) > 0).sum()),
        "best_code_nll": float(sums.min(-1).values[valid].sum() / steps),
        "mean_code_nll": float(sums.mean(-1)[valid].sum() / steps),
        "table": table.tolist(),
    }


@torch.no_grad()
def split(ctrl: SubgoalControllers, active: int, noise: float) -> None:
    """Codes ``active .. 2 active - 1`` become copies of codes ``0 .. active - 1``, each pair
    pushed apart by ± a random perturbation of relative size ``noise``."""
    for p in ctrl.parameters():
        for j in range(min(active, p.shape[0] - active)):
            eps = torch.randn_like(p[j]) * noise * (p[j].norm() / p[j].numel() ** 0.5 + 1e-8)
            p[active + j] = p[j] - eps
            p[j] += eps


def seed_segments(base, ctrl, train: Demonstrations, args, rng, segmenter) -> None:
    """Fit each code to one segment of its own: code k to a random segment of episode k."""
    b = batch_streams(
        base, train, rng.choice(train.n_episodes, args.n_z, replace=False), args.layer, segmenter
    )  # fmt: skip
    n_seg = b["seg"].max(1).values + 1
    pick = torch.as_tensor([int(rng.integers(int(n))) for n in n_seg])
    print("seed segments:", pick.tolist(), "subgoals:",
          [int(b["subgoals"][k][b["seg"][k] == pick[k]][0]) for k in range(args.n_z)])  # fmt: skip
    opt = torch.optim.AdamW(ctrl.parameters(), lr=args.lr, weight_decay=0.03)
    own = [{key: v[k : k + 1] for key, v in b.items()} for k in range(args.n_z)]
    for _ in range(args.seed_steps):
        loss = 0.0
        for k in range(args.n_z):
            sums, counts = segment_nll(base, ctrl, args.layer, own[k], k)
            loss = loss + sums[0, pick[k]] / counts[0, pick[k]] / args.n_z
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-model", default="ant-transformer")
    p.add_argument("--data", required=True)
    p.add_argument("--segments", default="true", help="true, or a metacontroller")
    p.add_argument("--layer", type=int, default=3)
    p.add_argument("--n-z", type=int, default=8)
    p.add_argument("--rank", type=int, default=16, help="0 = full d x d controllers")
    p.add_argument(
        "--init-std", type=float, default=0.01,
        help="full rank only: U starts ~ N(0, init_std² / d), not at zero (identical zero "
        "controllers would score every code alike, and EM would never break the symmetry)",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--grad-clip", type=float, default=float("inf"), help="as discover's 1.0")
    p.add_argument("--tau", type=float, default=0.1, help="temperature on mean log-lik/step")
    p.add_argument("--balance", default="sinkhorn", choices=["sinkhorn", "none"])
    p.add_argument(
        "--seed-steps", type=int, default=0,
        help="k-means++-style start: first fit code k alone to one random training segment "
        "(episode k of one batch of n_z episodes) for this many steps, then run EM",
    )  # fmt: skip
    p.add_argument(
        "--split-every", type=int, default=0,
        help="LBG-style growth: start with one code and, every this many steps, split each "
        "active code into two (a copy plus --split-noise), up to --n-z codes (0 = all from the "
        "start)",
    )  # fmt: skip
    p.add_argument("--split-noise", type=float, default=0.01, help="relative size of a split")
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--eval-episodes", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    base = load_base_model(args.base_model).eval()
    for q in base.parameters():
        q.requires_grad_(False)
    segmenter = None
    if args.segments != "true":
        segmenter = load_metacontroller(args.segments, base_model=base).eval()
    data = Demonstrations.load(args.data)
    train, held = data.split(max(1, data.n_episodes // 5))
    held_b = batch_streams(base, held, np.arange(args.eval_episodes), args.layer, segmenter)
    ctrl = SubgoalControllers(base.d_model, args.n_z, rank=args.rank, layer=args.layer)
    if args.rank == 0:
        with torch.no_grad():
            ctrl.u.normal_(0.0, args.init_std / base.d_model**0.5)
    opt = torch.optim.AdamW(ctrl.parameters(), lr=args.lr, weight_decay=0.03)
    log, t0 = [], time.time()
    if args.seed_steps:
        seed_segments(base, ctrl, train, args, rng, segmenter)
    active = 1 if args.split_every else args.n_z
    skipped = 0
    for step in range(args.steps + 1):
        if args.split_every and step and step % args.split_every == 0 and active < args.n_z:
            split(ctrl, active, args.split_noise)
            active = min(2 * active, args.n_z)
            opt = torch.optim.AdamW(ctrl.parameters(), lr=args.lr, weight_decay=0.03)
        if step % args.eval_every == 0:
            minutes = (time.time() - t0) / 60
            rep = {"step": step, "minutes": minutes, "active": active, "skipped": skipped}
            rep.update(evaluate(base, ctrl, args.layer, held_b, active))
            log.append(rep)
            print({k: v for k, v in rep.items() if k != "table"}, flush=True)
            atomic_write_json(args.out, {"args": vars(args), "log": log})
        if step == args.steps:
            break
        b = batch_streams(
            base, train, rng.choice(train.n_episodes, args.batch_size, replace=False),
            args.layer, segmenter,
        )  # fmt: skip
        out = [segment_nll(base, ctrl, args.layer, b, k) for k in range(active)]
        sums = torch.stack([s for s, _ in out], -1)  # (B, S, K)
        counts = out[0][1]
        valid = counts > 0
        scores = -(sums.detach()[valid] / counts[valid][:, None]) / args.tau  # (n_seg, K)
        r = sinkhorn(scores) if args.balance == "sinkhorn" else scores.softmax(-1)
        loss = (r * sums[valid]).sum() / counts.sum()
        if not torch.isfinite(loss):  # a batch the controllers push off the head's support
            skipped += 1
            print(f"step {step}: non-finite loss, skipped ({skipped} so far)", flush=True)
            continue
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ctrl.parameters(), args.grad_clip)
        opt.step()


if __name__ == "__main__":
    main()
