"""Hindsight codes, the session-23 prototype of ``internal-rl discover --posterior hindsight``.

    python research/scripts/hindsight_prototype.py --k 8 --steps 2000 --out runs/hs/r_k8
    python research/scripts/hindsight_prototype.py --k 8 --window 2 --boundaries teacher --steps 1500 ...

A segment's categorical code z (straight-through Gumbel-softmax, one draw per segment) is read
by a small MLP from the residual stream at ``--enc-layer`` of the segment's end state (and
``--window - 1`` steps after it); one rank-16 controller per code steers layer ``--layer``.
Segments: the true subgoal boundaries (``--boundaries true``, a diagnostic) or the switches of
the shipped L/2 metacontroller, now ``pinpad-segmenter`` (``teacher``, label-free). Prints the
code-by-subgoal table and, for each true subgoal's majority code, the success of the held-out
tasks steered with it; ``<out>.json`` keeps them. ``--usage`` adds a mutual-information term
(measured: it spreads codes uniformly and destroys them).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from agents.data_sources import observations_to_device  # noqa: E402
from agents.probe import evaluate_controllers  # noqa: E402
from internal_rl_gym.envs.grid_expert import collect_grid_demonstrations  # noqa: E402
from internal_rl_gym.hub import load_base_model, load_metacontroller  # noqa: E402
from internal_rl_gym.models import SubgoalControllers  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--layer", type=int, default=1)
p.add_argument("--enc-layer", type=int, default=0)
p.add_argument("--k", type=int, default=4)
p.add_argument("--steps", type=int, default=1500)
p.add_argument("--alpha", type=float, default=0.0)
p.add_argument("--tau", type=float, default=1.0)
p.add_argument("--batch", type=int, default=64)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--eval", type=int, default=256)
p.add_argument("--out", default="/tmp/hs/run")
p.add_argument("--boundaries", default="true")
p.add_argument("--usage", type=float, default=0.0)
p.add_argument("--window", type=int, default=1)
args = p.parse_args()
torch.manual_seed(args.seed)
base = load_base_model("pinpad-transformer")
teacher = load_metacontroller("pinpad-segmenter", base_model=base).eval()
for q in base.parameters():
    q.requires_grad_(False)
d = base.d_model
enc = nn.Sequential(
    nn.LayerNorm(d * args.window), nn.Linear(d * args.window, 64), nn.ReLU(), nn.Linear(64, args.k)
)
ctrl = SubgoalControllers(d, args.k, 16, layer=args.layer)
opt = torch.optim.AdamW(
    list(enc.parameters()) + list(ctrl.parameters()), lr=3e-3, weight_decay=0.03
)


def segment_ends(sub, mask):
    """(B,T) index of each step's segment end state (first step of the next segment, or T)."""
    B, T = sub.shape
    end = np.zeros((B, T), np.int64)
    for i in range(B):
        L = int(mask[i].sum())
        nxt = L
        for t in range(L - 1, -1, -1):
            if t < L - 1 and sub[i, t + 1] != sub[i, t]:
                nxt = t + 1
            end[i, t] = nxt
    return end


def batch(seed, n):
    data = collect_grid_demonstrations(n, "pretraining", seed=seed)
    b = data.batch(np.arange(n))
    obs = observations_to_device(b["obs"], base.obs_dim, base.device)
    with torch.no_grad():
        e0 = base.embed(obs)
        eenc = base.run_layers(e0, 0, args.enc_layer) if args.enc_layer else e0
        e = base.run_layers(e0[:, :-1], 0, args.layer)
    if args.boundaries == "true":
        end = segment_ends(b["subgoals"], b["mask"])
    else:
        with torch.no_grad():
            e3 = base.run_layers(e0[:, :-1], 0, teacher.layer)
            beta = teacher(e3, torch.as_tensor(b["mask"]), sample=False).beta.numpy() > 0.5
        seg = np.cumsum(beta, 1) * (b["mask"] > 0)
        end = segment_ends(seg, b["mask"])
    return (
        e.float(),
        eenc.float(),
        torch.as_tensor(end),
        torch.as_tensor(b["actions"]),
        torch.as_tensor(b["mask"]).float(),
        b["subgoals"],
    )


def codes_logits(eenc, end):
    B, T = end.shape
    xs = [
        eenc[torch.arange(B)[:, None], (end + j).clamp(max=eenc.shape[1] - 1)]
        for j in range(args.window)
    ]
    return enc(torch.cat(xs, -1))


def delta_all(e):
    return torch.einsum("btkr,kdr->btkd", torch.einsum("btd,kdr->btkr", e, ctrl.b), ctrl.a)


t0 = time.time()
g = torch.Generator().manual_seed(args.seed)
for step in range(args.steps):
    e, eenc, end, act, mask, sub = batch(10_000 + step, args.batch)
    logits = codes_logits(eenc, end)
    # one Gumbel draw per segment: index the noise by the segment's end position
    u = torch.rand(e.shape[0], e.shape[1] + 1, args.k, generator=g).clamp(1e-9, 1 - 1e-9)
    gum = -(-u.log()).log()
    gum = gum[torch.arange(e.shape[0])[:, None], end]
    soft = ((logits + gum) / args.tau).softmax(-1)
    hard = F.one_hot(soft.argmax(-1), args.k).float()
    w = hard - soft.detach() + soft
    e_hat = e + (w[..., None] * delta_all(e)).sum(-2)
    head = base.heads(base.run_layers(e_hat, args.layer, base.n_layers), predict_obs=False)
    nll = -base.action_distribution(head, validate_args=False).log_prob(act.clamp(min=0))
    logq = logits.log_softmax(-1)
    kl = (logq.exp() * (logq + np.log(args.k))).sum(-1)
    n = mask.sum()
    loss = (nll * mask).sum() / n + args.alpha * (kl * mask).sum() / n
    pbar = (logq.exp() * mask[..., None]).sum((0, 1)) / n
    usage_h = -(pbar * (pbar + 1e-9).log()).sum()
    cond_h = -((logq.exp() * logq).sum(-1) * mask).sum() / n
    loss = loss - args.usage * (usage_h - cond_h)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 100 == 0 or step == args.steps - 1:
        a = logits.argmax(-1).numpy()
        m = mask.numpy() > 0
        tab = np.zeros((args.k, 4), int)
        np.add.at(tab, (a[m], sub[m]), 1)
        pur = tab.max(1).sum() / tab.sum()
        print(
            f"step {step} nll {(nll * mask).sum().item() / n.item():.4f} kl {(kl * mask).sum().item() / n.item():.3f} purity {pur:.3f} {time.time() - t0:.0f}s",
            flush=True,
        )
# held-out NLL on fixed episodes (label-free model selection)
with torch.no_grad():
    tot = cnt = 0.0
    for j in range(8):
        e, eenc, end, act, mask, sub = batch(777_000 + j, 64)
        logits = codes_logits(eenc, end)
        w = F.one_hot(logits.argmax(-1), args.k).float()
        e_hat = e + (w[..., None] * delta_all(e)).sum(-2)
        head = base.heads(base.run_layers(e_hat, args.layer, base.n_layers), predict_obs=False)
        nll = -base.action_distribution(head, validate_args=False).log_prob(act.clamp(min=0))
        tot += float((nll * mask).sum())
        cnt += float(mask.sum())
    heldout_nll = tot / cnt
print("held-out NLL", heldout_nll)
print(tab)
# evaluate: map each subgoal to its majority code
code_of = tab.argmax(0)
print("code of subgoal", code_of)
gt = SubgoalControllers(d, 4, 16, layer=args.layer)
with torch.no_grad():
    gt.a.copy_(ctrl.a[code_of])
    gt.b.copy_(ctrl.b[code_of])
res = {}
for task in ("0-1-2-3-4-5", "2-3-4-5-6-7"):
    res[task] = evaluate_controllers(base, gt.eval(), args.layer, task, args.eval, seed=123)
    print(task, res[task], flush=True)
with open(args.out + ".json", "w") as f:
    json.dump(
        {
            "args": vars(args),
            "heldout_nll": heldout_nll,
            "purity": float(pur),
            "table": tab.tolist(),
            "success": res,
        },
        f,
        indent=1,
    )
