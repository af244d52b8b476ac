"""How much is knowing the subgoal worth per step, on clean and on noisy expert data?

    python research/scripts/ground_truth_nll_by_data.py research/results/session38/ground_truth_nll_by_data.json

Teacher-forced action NLL per step of `ant-transformer` alone and with `ant-subgoal-controllers`
(the controller of each step's true subgoal at layer 3), on the held-out episodes `discover`
keeps (the last 512 of 2,000, a fifth: 400) of the clean (mean-expert) data and of 2,000
stochastic-expert episodes (`internal-rl collect --env AntPinpadRoutes-v1 --task pretraining
--episodes 2000 --expert-mode stochastic --seed 2 --out data/antroutes1_pretraining_stoch_s2.npz`).
"""

import sys

import torch
from internal_rl_agents.common import atomic_write_json
from internal_rl_agents.discover import heldout_split
from internal_rl_agents.probe import controlled_nll

from internal_rl_gym.data import Demonstrations
from internal_rl_gym.hub import load_base_model, load_subgoal_controllers

torch.set_num_threads(1)
base = load_base_model("ant-transformer")
ctrl = load_subgoal_controllers("ant-subgoal-controllers", base_model=base)
out = {}
for name in ["clean", "stoch_s2"]:
    path = {
        "clean": "data/antroutes1_pretraining_clean.npz",
        "stoch_s2": "data/antroutes1_pretraining_stoch_s2.npz",
    }[name]
    _, held = heldout_split(Demonstrations.load(path), 512)
    out[name] = {
        "no_control": controlled_nll(base, None, 0, held),
        "ground_truth_controllers": controlled_nll(base, ctrl, 3, held),
    }
    print(name, out[name], flush=True)
out["command"] = " ".join(["python", *sys.argv])
atomic_write_json(sys.argv[1], out)
