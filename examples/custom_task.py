"""Custom tasks: any colour sequence on GridPinpad, and internal RL on it with stock SB3 PPO.

    python examples/custom_task.py --base-model DIR_OR_REPO --metacontroller DIR_OR_REPO \
        [--task 2-3-4-5-6-7] [--timesteps 20000]

The paper's held-out task uses only +1 subgoal transitions; `internal_rl_gym.tasks` builds others:
`grid_task_from_subgoals((1, 2, 3))` is 2-3-4-5-6-7.
"""

import argparse

from stable_baselines3 import PPO

from internal_rl_gym import make_internal_control_vec_env
from internal_rl_gym.tasks import format_task, grid_task_from_subgoals

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base-model", required=True)
    p.add_argument("--metacontroller", required=True)
    p.add_argument("--task", default=format_task(grid_task_from_subgoals((1, 2, 3))))
    p.add_argument("--timesteps", type=int, default=20_000)
    p.add_argument("--n-envs", type=int, default=16)
    p.add_argument("--n-steps", type=int, default=32, help="abstract steps per env per rollout")
    args = p.parse_args()

    env = make_internal_control_vec_env(
        args.n_envs,
        base_model=args.base_model,
        metacontroller=args.metacontroller,
        task=args.task,
        seed=0,
    )
    model = PPO(
        "MlpPolicy", env, gamma=1.0, gae_lambda=1.0, n_steps=args.n_steps, batch_size=128, seed=0
    )
    model.learn(args.timesteps, progress_bar=True)
    episodes = list(model.ep_info_buffer)  # the last (up to 100) finished episodes
    rate = sum(e.get("is_success", 0) for e in episodes) / max(1, len(episodes))
    print(f"task {args.task}: success over the last {len(episodes)} episodes {rate:.2f}")
