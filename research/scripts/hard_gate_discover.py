"""Discovery with the gate binarised in the forward pass, as internal RL uses it.

    python research/scripts/hard_gate_discover.py -- --base-model ant-transformer \
        --init-from ant-metacontroller --data data/antroutes1_pretraining_clean.npz \
        --steps 250 --batch-size 32 --rank 16 --kl-warmup 0 --lr 3e-4 --eval-every 125 \
        --keep-checkpoints --threads 1 --layer 3 --alpha 0.1 --out runs/discover-hard-gate

Runs ``internal-rl discover`` with everything after ``--`` as its arguments, except that the
metacontroller's switching gate is a straight-through step: β_t = 1[σ(logit) > 0.5] forward,
σ's gradient backward, so a code is either held or replaced, never blended. The shipped ant
metacontroller was trained with a soft gate (β often between 0.1 and 0.9); with its gate
binarised its codes are worse than no control (session 38, `constant_code_gain.py`), which is
the regime internal RL acts in. The saved model is an ordinary metacontroller (soft gate at
load): score it binarised with ``constant_code_gain.py``.
"""

from __future__ import annotations

import sys

import torch
from internal_rl_agents import cli

from internal_rl_gym.models.metacontroller import Metacontroller


def hard_integrate(self, e, h_prev, z_tilde, gate_noise=None):
    """`Metacontroller._integrate` with a straight-through binary β."""
    first, second = self.switch_net[0], self.switch_net[2]
    d_eh = self.d_model + self.n_h
    pre = torch.nn.functional.linear(torch.cat([e, h_prev], -1), first.weight[:, :d_eh], first.bias)
    w_z = first.weight[:, d_eh:]
    b = e.shape[0]
    z = z_tilde[:, 0]
    betas, zs = [torch.ones(b, device=e.device, dtype=e.dtype)], [z]
    for i in range(1, e.shape[1]):
        logit = second(torch.relu(pre[:, i] + torch.nn.functional.linear(z, w_z)))[:, 0]
        soft = torch.sigmoid(logit / self.gate_temperature)
        beta = (soft > 0.5).to(soft.dtype) + soft - soft.detach()
        z = beta[:, None] * z_tilde[:, i] + (1 - beta[:, None]) * z
        betas.append(beta)
        zs.append(z)
    return torch.stack(betas, 1), torch.stack(zs, 1)


def main() -> None:
    args = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
    Metacontroller._integrate = hard_integrate
    raise SystemExit(cli.main(["discover", *args]))


if __name__ == "__main__":
    main()
