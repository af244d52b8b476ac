"""Internal RL's best case on a task with a categorical metacontroller: at every abstract step
choose the code most often inferred for the env's true current subgoal (``code_of_subgoal`` of
``benchmarks/code_content.py``), abstract steps ended by the metacontroller's own gate β.

    python research/scripts/codes_at_own_switches.py 0-1-2-3-4-5 post

Uses the embedded defaults and ``benchmarks/results/pinpad-metacontroller_code_content.json``;
prints the success rate over 256 episodes per task (64 in parallel, seed 123).
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from internal_rl_gym.internal_control import make_internal_control_vec_env  # noqa: E402

torch.set_num_threads(1)
content = Path("benchmarks/results/pinpad-metacontroller_code_content.json")
code_of = json.loads(content.read_text())["code_of_subgoal"]
for task in sys.argv[1:]:
    vec = make_internal_control_vec_env(64, task=task, seed=123)
    vec.reset()
    first = 0 if task == "post" else int(task.split("-")[0]) // 2
    current = np.full(64, first)
    finished, successes, lengths = 0, 0, []
    while finished < 256:
        _, _, dones, infos = vec.step(np.array([code_of[c] for c in current]))
        for i, (done, info) in enumerate(zip(dones, infos)):
            lengths.append(info.get("primitive_steps", 0))
            if done:
                finished += 1
                successes += bool(info.get("is_success"))
                current[i] = first
            else:
                current[i] = max(0, int(info.get("subgoal", current[i])))
    print(f"{task}: success {successes / finished:.3f} with each true subgoal's code at the "
          f"metacontroller's own switches (mean abstract step {np.mean(lengths):.1f})")  # fmt: skip
