"""Do ground-truth controllers grip better when trained on the states they lead the model into?

    python research/scripts/dagger_controllers.py \
        --base-model research/training_state/pinpad-linear-d4-anneal103k --layer 2 \
        --controllers research/results/controllers_pinpad-linear-d4-anneal103k_layer2.safetensors \
        --out research/results/dagger_controllers_pinpad-linear-d4-anneal103k_layer2.json

The paper's controllers are trained teacher-forced on clean expert episodes (D*), but evaluated
closed-loop: the controlled model's own sampled moves become its history. Once a move heads for
the wrong pair, the history it meets was never in D*, and the base model's own inference from
that history ("it is heading for colour 4") takes over. This experiment keeps everything of the
paper's ground-truth controllers (one rank-16 linear U^(g) per subgoal at one layer, ê = e + U e,
base frozen, expert action targets, **pretraining tasks only**) and changes only the states they
are trained on: DAgger (Ross et al., 2011). Each round rolls the controlled model out on the
pretraining tasks (sampled actions, the true subgoal's controller active), labels every visited
state with the grid expert's action distribution towards the true next colour, adds the episodes
to an aggregate, and fine-tunes on batches half from the aggregate, half fresh expert episodes.
The control arm fine-tunes the same controllers for the same steps on fresh expert episodes only
(one half batch per step, so DAgger sees twice the episodes per step).
The post task (its +1 transitions and its length) is never trained on. Loss: cross-entropy to
the expert's action distribution (uniform over its shortest-path moves; the expectation of the
paper's sampled-action NLL). A diagnostic, not the paper's method.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from agents.common import atomic_write_json, progress_bar  # noqa: E402
from agents.data_sources import fresh_activation_batches, observations_to_device  # noqa: E402
from agents.probe import evaluate_controllers, load_subgoal_controllers  # noqa: E402
from agents.rollout import rollout  # noqa: E402
from internal_rl_gym.envs.grid_expert import optimal_action_mask  # noqa: E402
from internal_rl_gym.hub import load_base_model  # noqa: E402

TASKS = ["0-1-2-3", "0-1-4-5", "pretraining", "post"]


def controlled_episodes(base, ctrl, layer: int, n: int, seed: int) -> dict[str, torch.Tensor]:
    """``n`` closed-loop episodes of the pretraining tasks under the controllers, as training
    tensors: residual stream ``e`` at ``layer`` (n, T, d), ``subgoals``, ``mask`` and the
    expert's action distribution ``expert_probs`` (n, T, 4) at every visited state."""
    envs = [gym.make("GridPinpad-v0", task="pretraining") for _ in range(n)]
    targets: list[list[int]] = []  # per loop iteration: every env's next colour

    def control(infos):
        targets.append([i["target"] for i in infos])
        g = torch.as_tensor([max(0, i["target"]) // 2 for i in infos], device=base.device)
        return (lambda e: ctrl(e, g)), layer

    gen = torch.Generator().manual_seed(seed)
    ro = rollout(base, envs, [seed + i for i in range(n)], gen, control=control)
    obs, _, _, mask = ro.padded()
    tgt = np.asarray(targets, dtype=np.int64).T[:, : mask.shape[1]]  # (n, T)
    tgt = np.where(mask, tgt, 0)
    optimal = optimal_action_mask({"obs": obs, "targets": tgt}).astype(np.float32)
    probs = optimal / np.maximum(optimal.sum(-1, keepdims=True), 1.0)
    with torch.no_grad():
        x = observations_to_device(obs[:, :-1], base.obs_dim, base.device)
        e = base.run_layers(base.embed(x), 0, layer).float()
    return {
        "e": e,
        "subgoals": torch.as_tensor(tgt // 2, device=base.device),
        "mask": torch.as_tensor(mask, device=base.device),
        "expert_probs": torch.as_tensor(probs, device=base.device),
        "success": float(ro.success.mean()),
    }


def soft_nll(
    base, ctrl, layer: int, b: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy to the expert's action distribution, and the number of steps."""
    e_top = base.run_layers(ctrl(b["e"], b["subgoals"]), layer, base.n_layers)
    logp = torch.log_softmax(base.heads(e_top, predict_obs=False).action_logits.float(), -1)
    ce = -(b["expert_probs"] * logp).sum(-1)
    m = b["mask"].float()
    return (ce * m).sum(), m.sum()


def concat(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Episode tensors of several rounds, padded to a common length."""
    t = max(p["mask"].shape[1] for p in parts)
    out = {}
    for k in ("e", "subgoals", "mask", "expert_probs"):
        padded = []
        for p in parts:
            x = p[k]
            pad = [0, 0] * (x.dim() - 2) + [0, t - x.shape[1]]
            padded.append(torch.nn.functional.pad(x, pad))
        out[k] = torch.cat(padded)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base-model", required=True)
    p.add_argument("--layer", type=int, required=True)
    p.add_argument("--controllers", required=True, help="the probe's controllers to start from")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--rollouts", type=int, default=512, help="closed-loop episodes per round")
    p.add_argument("--steps", type=int, default=500, help="fine-tuning steps per round")
    p.add_argument("--batch-size", type=int, default=32, help="episodes per half batch")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--arms", nargs="+", default=["dagger", "expert_only"])
    p.add_argument("--episodes", type=int, default=256, help="env episodes per task")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    base = load_base_model(args.base_model).requires_grad_(False)

    def evaluate(ctrl) -> dict[str, float]:
        res = {
            t: evaluate_controllers(base, ctrl, args.layer, t, args.episodes, args.seed)
            for t in TASKS
        }
        res["post_greedy"] = evaluate_controllers(
            base, ctrl, args.layer, "post", args.episodes, args.seed, act="greedy"
        )
        return res

    start = load_subgoal_controllers(args.controllers, base)
    result: dict = {"args": vars(args), "start": evaluate(start), "arms": {}}
    print("start", result["start"], flush=True)
    for arm in args.arms:
        torch.manual_seed(args.seed)
        ctrl = load_subgoal_controllers(args.controllers, base).train().requires_grad_(True)
        opt = torch.optim.AdamW(ctrl.parameters(), lr=args.lr, weight_decay=0.03)
        expert = fresh_activation_batches(
            base,
            args.layer,
            "pretraining",
            16 * args.batch_size,
            args.batch_size,
            args.seed + 11,
            expert_probs=True,
        )
        aggregate: list[dict[str, torch.Tensor]] = []
        rounds = []
        for r in range(args.rounds):
            info: dict = {"round": r}
            if arm == "dagger":
                with torch.no_grad():
                    ep = controlled_episodes(
                        base, ctrl.eval(), args.layer, args.rollouts, args.seed + 1000 * (r + 1)
                    )
                info["rollout_success_pretraining"] = ep.pop("success")
                aggregate.append(ep)
                pool = concat(aggregate)
                n_pool = pool["mask"].shape[0]
            ctrl.train()
            gen = torch.Generator(device="cpu").manual_seed(args.seed + r)
            for _ in progress_bar(range(args.steps), desc=f"{arm} round {r}"):
                total, count = soft_nll(base, ctrl, args.layer, next(expert))
                if arm == "dagger":
                    idx = torch.randint(n_pool, (args.batch_size,), generator=gen)
                    batch = {k: v[idx.to(v.device)] for k, v in pool.items()}
                    t = int(batch["mask"].sum(0).nonzero().max()) + 1
                    batch = {k: v[:, :t] for k, v in batch.items()}
                    s, c = soft_nll(base, ctrl, args.layer, batch)
                    total, count = total + s, count + c
                loss = total / count
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            ctrl.eval()
            info["eval"] = evaluate(ctrl)
            print(arm, info, flush=True)
            rounds.append(info)
        result["arms"][arm] = rounds
        result["seconds"] = time.time() - t0
        atomic_write_json(args.out, result)
    print(result)


if __name__ == "__main__":
    main()
