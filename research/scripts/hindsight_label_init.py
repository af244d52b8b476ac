"""A hindsight metacontroller whose posterior starts out naming the true subgoal: does discovery
keep such codes, or leave them? (A diagnostic: it reads the labels.)

    python research/scripts/hindsight_label_init.py --base-model ant-transformer \
        --data data/antroutes1_pretraining_clean.npz --out runs/hs-ant/label-init
    python research/scripts/hindsight_true_segments.py -- --base-model ant-transformer \
        --data data/antroutes1_pretraining_clean.npz --posterior hindsight \
        --segments-from ant-metacontroller --code categorical --n-z 8 --alpha 0 --lr 3e-3 \
        --steps 1000 --eval-every 250 --batch-size 32 --rank 16 --layer 3 --threads 1 \
        --init-from runs/hs-ant/label-init --out runs/hs-ant/from-labels

Builds the metacontroller the second command trains (categorical codes, hindsight posterior at
``--hindsight-layer`` with a window of 2, rank-16 controllers at ``--layer``), trains only its
posterior, by cross-entropy, to put each true segment on code = its true subgoal, then, with
``--controller-steps N``, N steps of its controllers and switching unit alone on the action NLL
with those codes held (the posterior frozen), and saves it for ``--init-from``. If discovery then keeps the
codes and its NLL approaches the ground-truth controllers' (-29.18), the subgoal codes are a
basin the objective holds and finding them is an initialisation problem; if the codes drift,
the objective prefers something else at this rank.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from hindsight_true_segments import true_segment_starts
from internal_rl_agents.data_sources import observations_to_device, stream_layers

from internal_rl_gym.data import Demonstrations
from internal_rl_gym.hub import load_base_model, model_fingerprint
from internal_rl_gym.models import Metacontroller


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-model", default="ant-transformer")
    p.add_argument("--data", required=True)
    p.add_argument("--layer", type=int, default=3)
    p.add_argument("--hindsight-layer", type=int, default=0)
    p.add_argument("--n-z", type=int, default=8)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--controller-steps", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    base = load_base_model(args.base_model).eval()
    meta = Metacontroller(
        d_model=base.d_model,
        layer=args.layer,
        n_z=args.n_z,
        rank=args.rank,
        base_model_name=args.base_model,
        base_model_fingerprint=model_fingerprint(base),
        code="categorical",
        posterior="hindsight",
        hindsight_layer=args.hindsight_layer,
        hindsight_window=2,
    )
    data = Demonstrations.load(args.data)
    train, held = data.split(max(1, data.n_episodes // 5))
    opt = torch.optim.Adam(meta.encoder.parameters(), lr=3e-3)

    def batch(source, idx):
        """The controlled and the hindsight streams of episodes ``idx``, cut at the true
        segments, with their actions, mask and subgoals."""
        b = source.batch(idx)
        obs = observations_to_device(b["obs"], base.obs_dim, base.device)
        with torch.no_grad():
            streams = stream_layers(base, obs, sorted({args.hindsight_layer, args.layer}))
        sub = torch.as_tensor(b["subgoals"])
        mask = torch.as_tensor(b["mask"]).bool()
        e = streams[args.layer][:, :-1]
        starts = true_segment_starts(sub, mask)
        return e, streams[args.hindsight_layer], starts, torch.as_tensor(b["actions"]), mask, sub

    for step in range(args.steps):
        e, e_h, starts, _, mask, sub = batch(
            train, rng.choice(train.n_episodes, args.batch_size, replace=False)
        )
        out = meta.hindsight_forward(e, e_h, starts, mask, sample=False)
        logp = out.mu.clamp(min=1e-8).log().gather(-1, sub.clamp(min=0)[..., None])[..., 0]
        loss = -(logp * mask).sum() / mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step}: cross-entropy {loss.item():.3f}", flush=True)
    e, e_h, starts, _, mask, sub = batch(held, np.arange(256))
    with torch.no_grad():
        code = meta.hindsight_forward(e, e_h, starts, mask, sample=False).mu.argmax(-1)
    acc = float(((code == sub) & mask).sum() / mask.sum())
    print(f"held-out steps whose code is their true subgoal: {acc:.3f}")
    rest = [q for n, q in meta.named_parameters() if not n.startswith("encoder.")]
    opt = torch.optim.AdamW(rest, lr=3e-3, weight_decay=0.03)
    gen = torch.Generator().manual_seed(args.seed)
    for step in range(args.controller_steps):
        e, e_h, starts, actions, mask, _ = batch(
            train, rng.choice(train.n_episodes, args.batch_size, replace=False)
        )
        res = meta.hindsight_elbo(base, e, e_h, starts, actions, mask, 0.0, gen)
        opt.zero_grad()
        res.loss.backward()
        opt.step()
        if step % 50 == 0 or step == args.controller_steps - 1:
            print(f"controllers, step {step}: NLL {res.action_nll.item():.3f}", flush=True)
    meta.save_pretrained(args.out)


if __name__ == "__main__":
    main()
