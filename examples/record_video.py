"""Record episodes as .mp4 videos with Gymnasium's RecordVideo wrapper.

    python examples/record_video.py [--env-id GridPinpad-v0] [--episodes 1] [--out videos]
        [--max-steps 200] [--base-model DIR_OR_REPO --metacontroller DIR_OR_REPO]

Every id of the package renders ``rgb_array`` frames, so ``gymnasium.wrappers.RecordVideo`` works
on all of them. On GridPinpad-v0 the shortest-path expert plays (a solved episode); on the other
ids the actions are random. InternalControl ids film their task env, one frame per abstract
action. Notes:

* RecordVideo encodes with moviepy, which this package does not install:
  ``pip install moviepy`` (or ``pip install "gymnasium[other]"``).
* AntPinpad renders with MuJoCo: without a display set ``MUJOCO_GL=egl`` (or ``osmesa``).
* InternalControl-v0 needs ``--base-model``/``--metacontroller``; the named ids
  (InternalControl-Pinpad-v0, ...) use the embedded default checkpoints unless given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import gymnasium as gym

import internal_rl_gym  # noqa: F401  (registers the env ids)
from internal_rl_gym.envs.grid_expert import GridPinpadExpert


def make_env(args: argparse.Namespace) -> gym.Env:
    kwargs: dict = {"render_mode": "rgb_array"}
    if args.base_model:
        kwargs["base_model"] = args.base_model
    if args.metacontroller:
        kwargs["metacontroller"] = args.metacontroller
    if args.env_id.startswith("AntPinpad"):
        kwargs.update(width=args.size, height=args.size)
    elif str(gym.spec(args.env_id).kwargs.get("env_id", "")).startswith("AntPinpad"):
        kwargs["env_kwargs"] = {"width": args.size, "height": args.size}
    return gym.make(args.env_id, **kwargs)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--env-id", default="GridPinpad-v0")
    p.add_argument("--episodes", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=200, help="cut an episode's video here")
    p.add_argument("--out", default="videos", help="folder for the .mp4 files")
    p.add_argument("--size", type=int, default=240, help="frame size of MuJoCo renders")
    p.add_argument("--base-model", default=None)
    p.add_argument("--metacontroller", default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    env = make_env(args)
    try:
        env = gym.wrappers.RecordVideo(
            env,
            args.out,
            episode_trigger=lambda episode: True,  # film every episode
            name_prefix=args.env_id,
            disable_logger=True,
        )
    except gym.error.DependencyNotInstalled as err:
        sys.exit(f"{err}\nRecordVideo writes .mp4 files with moviepy: pip install moviepy")
    expert = GridPinpadExpert(seed=args.seed) if args.env_id == "GridPinpad-v0" else None
    env.action_space.seed(args.seed)
    for episode in range(args.episodes):
        env.reset(seed=args.seed + episode)
        steps, done, info = 0, False, {}
        while not done and steps < args.max_steps:
            action = expert.act(env) if expert else env.action_space.sample()
            _, _, terminated, truncated, info = env.step(action)
            steps, done = steps + 1, terminated or truncated
        if not done and env.recording:
            env.stop_recording()  # cut at --max-steps: save what was filmed
        print(f"episode {episode}: {steps} steps, success={info.get('success')}")
    env.close()
    for video in sorted(Path(args.out).glob(f"{args.env_id}*.mp4")):
        print(f"wrote {video}")


if __name__ == "__main__":
    main()
