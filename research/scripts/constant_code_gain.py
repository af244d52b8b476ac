"""How much of a metacontroller's action-NLL gain needs no segment at all?

    python research/scripts/constant_code_gain.py --base-model ant-transformer \
        --metacontroller ant-metacontroller --data data/antroutes1_pretraining_clean.npz \
        --out research/results/session38/constant_code_gain.json

On the held-out clean episodes `discover` keeps (the last ``--holdout``), the action NLL per step
of the frozen base model (1) alone, (2) steered by the metacontroller's own codes and gate
(posterior means), (2b) the same with each code held between the gate's switches
(β > 0.5, the gate binarised as internal RL does), (3) steered by one code for every step of every episode: the mean of its
posterior codes, and (4) one code fitted by gradient descent on the training episodes (the
metacontroller's controller, frozen). If (4) takes most of (2)'s gain, the codes mostly carry
what is the same in every episode (e.g. how clean data differs from the noisy pretraining data),
not the segment's subgoal.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from internal_rl_agents.common import atomic_write_json
from internal_rl_agents.discover import cache_activations, heldout_split

from internal_rl_gym.data import Demonstrations
from internal_rl_gym.internal_control import load_frozen_models


@torch.no_grad()
def nll(base, meta, cached, z_fn, batch: int = 64) -> float:
    """Mean action NLL per valid step; ``z_fn(e, mask)`` gives the code (B, T, n_z) or None."""
    total = steps = 0.0
    n = len(cached.lengths)
    for s in range(0, n, batch):
        idx = np.arange(s, min(n, s + batch))
        e, act, mask = cached.batch(idx)
        z = z_fn(e, mask)
        e_hat = e if z is None else meta.control(e, z)
        upper = base.run_layers(e_hat, meta.layer, base.n_layers)
        lp = base.action_distribution(base.heads(upper), validate_args=False).log_prob(act)
        total += float(-(lp * mask).sum())
        steps += float(mask.sum())
    return total / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-model", required=True)
    p.add_argument("--metacontroller", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--holdout", type=int, default=512)
    p.add_argument("--train-episodes", type=int, default=512)
    p.add_argument("--fit-steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    base, meta = load_frozen_models(args.base_model, args.metacontroller)
    meta.eval()
    train_data, held_data = heldout_split(Demonstrations.load(args.data), args.holdout)
    held = cache_activations(base, held_data, meta.layer)
    train = cache_activations(
        base, train_data.episode_range(0, min(args.train_episodes, train_data.n_episodes)),
        meta.layer,
    )  # fmt: skip

    own = nll(base, meta, held, lambda e, m: meta(e, m, sample=False).z)

    def binarised(e, m):  # its codes held between its own switches (β > 0.5), as internal RL
        out = meta(e, m, sample=False)
        return meta.forward_with_codes(e, out.mu, (out.beta > 0.5).float()).z

    own_binarised = nll(base, meta, held, binarised)
    sums, count = 0.0, 0.0
    for s in range(0, len(held.lengths), 64):
        e, _, mask = held.batch(np.arange(s, min(len(held.lengths), s + 64)))
        z = meta(e, mask, sample=False).z
        sums = sums + (z * mask[..., None]).sum((0, 1))
        count += float(mask.sum())
    z_mean = sums / count

    def constant(z):
        return lambda e, m: z.expand(e.shape[0], e.shape[1], -1)

    z_fit = z_mean.clone().requires_grad_(True)
    opt = torch.optim.Adam([z_fit], lr=3e-2)
    gen = np.random.default_rng(args.seed)
    for step in range(args.fit_steps):
        idx = gen.choice(len(train.lengths), 32, replace=False)
        e, act, mask = train.batch(idx)
        upper = base.run_layers(meta.control(e, z_fit.expand(*e.shape[:2], -1)), meta.layer,
                                base.n_layers)  # fmt: skip
        lp = base.action_distribution(base.heads(upper), validate_args=False).log_prob(act)
        loss = -(lp * mask).sum() / mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (step + 1) % 50 == 0:
            print(f"fit step {step + 1}: train NLL {loss.item():.3f}", file=sys.stderr)
    report = {
        "base_model": args.base_model,
        "metacontroller": args.metacontroller,
        "held_out_episodes": len(held.lengths),
        "nll_per_step": {
            "no_control": nll(base, meta, held, lambda e, m: None),
            "own_codes_and_gate": own,
            "own_codes_gate_binarised": own_binarised,
            "posterior_mean_code_everywhere": nll(base, meta, held, constant(z_mean.detach())),
            "one_fitted_code_everywhere": nll(base, meta, held, constant(z_fit.detach())),
        },
        "command": " ".join(["python", *sys.argv]),
    }
    print(report["nll_per_step"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, report)


if __name__ == "__main__":
    main()
