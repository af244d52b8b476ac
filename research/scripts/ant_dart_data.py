"""Expert demonstrations with recoveries (DART, Laskey et al. 2017): can a base model that walks off
the grid in a third of its free-play episodes learn to come back from where its errors lead?

    python research/scripts/ant_dart_data.py --noise 0.15 --episodes 5000 --seed 3 \
        --out data/antroutes1_dart015.npz
    python research/scripts/ant_dart_data.py --mode heading --noise 0.8 --episodes 2500 \
        --seed 5 --out data/antroutes1_dart_heading08.npz
    python research/scripts/ant_dart_data.py --mode model --model ant-transformer \
        --kick-rate 0.02 --kick-steps 20 --episodes 2500 --seed 8 \
        --out data/antroutes1_dagger.npz

The stochastic expert acts as in ``internal-rl collect --env AntPinpadRoutes-v1``, but the env
executes a perturbed action while the dataset records the torques the expert chose: the episodes
drift off the expert's own path, and their labels show the way back. ``--mode torque`` adds
Gaussian noise of scale ``--noise`` to the torques (clipped to [-1, 1]); ``--mode heading``
starts, with probability ``--kick-rate`` per step, a stretch of ``--kick-steps`` steps in which
the gait walks towards the planned direction turned by ±``--noise`` radians (the gait is the
same function of the same state and phase, so the recorded torques are what the expert would do
there). ``--mode model`` (DAgger, Ross et al. 2011, with the expert's β-mixture): during such
stretches the base model ``--model`` acts, with its mean action and its own running history, so
the episodes go where the model's errors lead and the labels are the expert's way back from
there. Failed episodes are dropped, as ``collect`` drops them.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import internal_rl_gym  # noqa: F401
from internal_rl_gym.envs import ant_expert
from internal_rl_gym.envs.ant_gait import gait_action
from internal_rl_gym.hub import load_base_model


class HeadingKicks(ant_expert.AntPinpadExpert):
    """The expert, plus ``executed``: its gait towards a direction turned during kicks."""

    def __init__(self, *args, kick: float, rate: float, steps: int, kick_seed: int, **kwargs):
        self.kick, self.rate, self.steps = kick, rate, steps
        self.kicks = np.random.default_rng(kick_seed)
        self._left, self._angle = 0, 0.0
        super().__init__(*args, **kwargs)

    def direction(self, e) -> np.ndarray:
        d = super().direction(e)
        self._planned, self._phase = d, self.phase  # what act's gait uses this step
        return d

    def act(self, env) -> np.ndarray:
        e = env.unwrapped
        if e.steps <= self._last_steps:  # the expert's own act restarts its clock here
            self._left = 0
        u = super().act(env)
        if self._left == 0 and self.kicks.random() < self.rate:
            self._left, self._angle = self.steps, self.kick * self.kicks.choice([-1.0, 1.0])
        self.executed = u
        if self._left > 0:
            self._left -= 1
            c, s = np.cos(self._angle), np.sin(self._angle)
            d = self._planned
            turned = np.array([c * d[0] - s * d[1], s * d[0] + c * d[1]])
            q = e.data
            self.executed = gait_action(q.qpos, q.qvel, self._phase, turned, self.gait).astype(
                np.float32
            )
        return u


def perturbed_execution(perturb):
    """``ant_expert.run_episode`` with ``perturb(expert, a)`` executed and ``a`` recorded."""
    original = ant_expert.run_episode

    def run_episode(env, expert, seed=None, record=False):
        step = env.step
        env.step = lambda a: step(perturb(expert, a))
        try:
            return original(env, expert, seed=seed, record=record)
        finally:
            del env.step  # back to the class's step

    return run_episode


class ModelStretches:
    """``perturb`` for :func:`model_execution`: the base model's mean action during stretches.

    The model is stepped on every observation (expert's steps too), so that when a stretch
    starts it acts from the same history it would have in free play."""

    def __init__(self, model, rate: float, steps: int, seed: int):
        self.model, self.rate, self.steps = model, rate, steps
        self.rng = np.random.default_rng(seed)

    def reset(self, obs: np.ndarray) -> None:
        self.state, self.obs, self._left = self.model.init_state(1), obs, 0

    @torch.no_grad()
    def __call__(self, expert, a: np.ndarray) -> np.ndarray:
        head, _ = self.model.step(torch.as_tensor(self.obs[None], dtype=torch.float32), self.state)
        if self._left == 0 and self.rng.random() < self.rate:
            self._left = self.steps
        if self._left == 0:
            return a
        self._left -= 1
        return np.clip(head.expected_action().float()[0].numpy(), -1, 1).astype(a.dtype)


def model_execution(perturb: ModelStretches):
    """``ant_expert.run_episode`` with the model stepped on every observation it sees."""
    original = ant_expert.run_episode

    def run_episode(env, expert, seed=None, record=False):
        step, reset = env.step, env.reset

        def stepped(a):
            out = step(perturb(expert, a))
            perturb.obs = out[0]
            return out

        def reset_and_watch(**kw):
            obs, info = reset(**kw)
            perturb.reset(obs)
            return obs, info

        env.step, env.reset = stepped, reset_and_watch
        try:
            return original(env, expert, seed=seed, record=record)
        finally:
            del env.step, env.reset  # back to the class's methods

    return run_episode


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="AntPinpadRoutes-v1")
    p.add_argument("--mode", choices=["torque", "heading", "model"], default="torque")
    p.add_argument("--noise", type=float, default=0.0, help="torque std, or kick angle (rad)")
    p.add_argument("--model", default="ant-transformer", help="model: the base model that acts")
    p.add_argument("--kick-rate", type=float, default=0.02, help="heading, model: kicks per step")
    p.add_argument("--kick-steps", type=int, default=15, help="heading, model: steps per kick")
    p.add_argument("--episodes", type=int, default=5000)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if args.mode != "model" and args.noise <= 0:
        p.error(f"--mode {args.mode} needs --noise > 0 (torque std or kick angle)")
    rng = np.random.default_rng(args.seed + 7)

    def torque_noise(expert, a: np.ndarray) -> np.ndarray:
        return np.clip(a + args.noise * rng.normal(size=a.shape), -1, 1).astype(a.dtype)

    if args.mode == "torque":
        ant_expert.run_episode = perturbed_execution(torque_noise)
    elif args.mode == "model":
        torch.set_num_threads(1)
        model = load_base_model(args.model).eval()
        stretches = ModelStretches(model, args.kick_rate, args.kick_steps, args.seed + 7)
        ant_expert.run_episode = model_execution(stretches)
    else:
        ant_expert.run_episode = perturbed_execution(lambda expert, a: expert.executed)
        kicks = {"kick": args.noise, "rate": args.kick_rate, "steps": args.kick_steps}
        ant_expert.AntPinpadExpert = lambda **kw: HeadingKicks(
            **kw, **kicks, kick_seed=args.seed + 7
        )
    data = ant_expert.collect_ant_demonstrations(
        args.episodes, "pretraining", seed=args.seed, stochastic=True, env_id=args.env,
        progress=True,
    )  # fmt: skip
    data.metadata.update(execution_noise=args.noise, dart_mode=args.mode)
    if args.mode in ("heading", "model"):
        data.metadata.update(kick_rate=args.kick_rate, kick_steps=args.kick_steps)
    if args.mode == "model":
        data.metadata.update(dagger_model=args.model)
    m = data.metadata
    print(f"kept {args.episodes} of {m['attempts']} episodes ({m['dropped']} failed)")
    print(data.save(args.out))


if __name__ == "__main__":
    main()
