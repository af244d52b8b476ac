"""Internal RL: stock Stable-Baselines3 PPO (or sb3-contrib RecurrentPPO) on an InternalControl env.

    internal-rl train --env-id InternalControl-Pinpad-v0 --episodes 20000 --out runs/train

The env's observation is the frozen base model's residual stream, its action the controller code
z, and one step one abstract action, so an unmodified ``PPO("MlpPolicy", env)`` *is* internal RL
(paper §5). Rollouts come from the batched InternalControl VecEnv (one base-model forward per
primitive step for all ``n_envs`` episodes).

Defaults for a sparse terminal reward: γ = 1 and GAE λ = 1 (the return of an abstract step is the
episode's success, as in the paper's trajectory-level advantage), no entropy bonus (paper: 0),
normalised advantages, and an initial policy whose codes z are ~ N(0, I), the prior the
metacontroller was trained with (log-std -ln(action_scale) in action units; SB3's default 0 would
give z a standard deviation of 3, clipped to the box). Logged to TensorBoard (``<out>/tb``): SB3's rollout/ep_rew_mean and
rollout/success_rate, plus eval/success_rate from periodic evaluation. The policy is saved as
``<out>/ppo-<env-id>.zip`` and the learning curve (success against episodes) as
``<out>/curve.json``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback

from internal_rl_gym.internal_control import ControlOptions, make_internal_control_vec_env

from .baseline import clipped_surrogate, trajectory_advantages
from .common import (
    Logger,
    atomic_write_bytes,
    atomic_write_json,
    progress_bar,
    seed_everything,
    set_threads,
    torch_load_state,
    torch_save_atomic,
)


@dataclass
class TrainConfig:
    env_id: str = field(
        default="InternalControl-Pinpad-v0", metadata={"help": "an InternalControl env id"}
    )
    base_model: str = field(default="", metadata={"help": "override the id's base model"})
    metacontroller: str = field(default="", metadata={"help": "override the id's metacontroller"})
    task: str = field(default="", metadata={"help": "override the id's task (e.g. 0-1-2-3)"})
    task_env: str = field(
        default="",
        metadata={
            "help": "override the id's task env, the one the base model acts in (e.g. "
            "AntPinpadRoutes-v1 for a base model trained on its observations)"
        },
    )
    primitive_sampling: str = field(
        default="",
        metadata={
            "help": "override how the base model reads its primitive actions between "
            "decisions: sample (the paper), greedy, or mean (continuous heads)"
        },
    )
    algo: str = field(
        default="ppo",
        metadata={
            "help": "ppo (stock SB3 MlpPolicy), recurrent-ppo (sb3-contrib), or eq10: the "
            "paper's critic-free algorithm (Eq. 10: clipped surrogate, one normalised return "
            "per episode as the advantage of all its abstract steps)"
        },
    )
    batch_episodes: int = field(
        default=64, metadata={"help": "eq10: finished episodes per update (the batch B)"}
    )
    init_policy: str = field(
        default="",
        metadata={
            "help": "eq10: start from this saved policy (eq10-<env-id>.pt of an earlier run), "
            "e.g. to carry a policy to a longer task (a curriculum over task length)"
        },
    )
    episodes: int = field(default=20_000, metadata={"help": "training budget in episodes"})
    n_envs: int = field(default=16, metadata={"help": "episodes run in parallel (batched)"})
    n_steps: int = field(
        default=4,
        metadata={
            "help": "abstract steps per env per rollout (an episode lasts 2-6 abstract steps: "
            "16 envs x 4 = one PPO update per ~20 episodes)"
        },
    )
    batch_size: int = field(default=64, metadata={"help": "PPO minibatch size"})
    n_epochs: int = field(default=4, metadata={"help": "PPO epochs per rollout"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    gamma: float = field(default=1.0, metadata={"help": "discount (sparse terminal reward)"})
    gae_lambda: float = field(default=1.0, metadata={"help": "GAE λ"})
    clip_range: float = field(default=0.2, metadata={"help": "PPO clip ε"})
    ent_coef: float = field(
        default=0.0,
        metadata={
            "help": "entropy bonus (paper: 0); with eq10 it keeps a carried-over policy "
            "exploring the decisions a longer task adds"
        },
    )
    log_std_init: float | None = field(
        default=None,
        metadata={
            "help": "initial policy log-std in action units; default -ln(action_scale), so the "
            "first codes z = action_scale * action are ~ N(0, I), the metacontroller's prior "
            "(paper: the initial policy matches the prior)"
        },
    )
    max_primitive_steps: int = field(
        default=0,
        metadata={
            "help": "cap on the primitive steps of one abstract step (0 = the id's own: 50, "
            "the ant's 200)"
        },
    )
    controller_gain: float = field(
        default=1.0,
        metadata={"help": "ê = e + gain * U(z) e (1 = the paper; see InternalControlEnv)"},
    )
    eval_every: int = field(default=2000, metadata={"help": "episodes between evaluations"})
    eval_episodes: int = field(default=128, metadata={"help": "episodes per evaluation"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0 = torch default)"})
    out: str = field(default="runs/train", metadata={"help": "output directory"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})


def internal_control_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    spec = gym.spec(cfg.env_id)
    if not str(spec.entry_point).endswith(":InternalControlEnv"):
        raise SystemExit(
            f"train: {cfg.env_id} is not an InternalControl env; use InternalControl-Pinpad-v0, "
            "InternalControl-v0 or another InternalControl-* id (raw-action RL: `internal-rl "
            "baseline raw`)."
        )
    kw = dict(spec.kwargs)
    for key in ("base_model", "metacontroller", "task", "primitive_sampling"):
        if getattr(cfg, key):
            kw[key] = getattr(cfg, key)
    if cfg.task_env:
        kw["env_id"] = cfg.task_env
    if cfg.max_primitive_steps:
        kw["max_primitive_steps"] = cfg.max_primitive_steps
    kw["controller_gain"] = cfg.controller_gain
    return kw


def recorded_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    """The InternalControl settings a run trains under (the env's defaults filled in), as its
    curve.json records them."""
    defaults = {k: v for k, v in vars(ControlOptions()).items() if k != "torch_threads"}
    kw = {**defaults, **internal_control_kwargs(cfg)}
    return {k: v for k, v in kw.items() if isinstance(v, (str, int, float, bool))}


def make_vec(cfg: TrainConfig, n_envs: int, seed: int):
    return make_internal_control_vec_env(n_envs, seed=seed, **internal_control_kwargs(cfg))


class EpisodeCurve(BaseCallback):
    """Records success (0/1) of every finished episode; stops training at ``stop_at`` episodes."""

    def __init__(self, bar=None) -> None:
        super().__init__()
        self.successes: list[int] = []
        self.stop_at = 0
        self.bar = bar

    def _on_step(self) -> bool:
        for info, done in zip(self.locals["infos"], self.locals["dones"]):
            if done:
                self.successes.append(int(bool(info.get("is_success", False))))
                if self.bar is not None:
                    self.bar.update(1)
                    if len(self.successes) % 50 == 0:
                        self.bar.set_postfix(
                            success=f"{np.mean(self.successes[-500:]):.3f}", refresh=False
                        )
        self.logger.record("rollout/episodes", len(self.successes))
        return len(self.successes) < self.stop_at


def finished_episodes(model, vec, n_episodes: int, deterministic: bool = True) -> list[dict]:
    """Run a policy until ``n_episodes`` episodes finish; the info dict of each (VecMonitor's
    ``episode`` entry included)."""
    obs = vec.reset()
    done_infos: list[dict] = []
    state, starts = None, np.ones(vec.num_envs, dtype=bool)
    while len(done_infos) < n_episodes:
        action, state = model.predict(
            obs, state=state, episode_start=starts, deterministic=deterministic
        )
        obs, _, dones, infos = vec.step(action)
        starts = dones
        done_infos += [info for info, d in zip(infos, dones) if d]
    return done_infos[:n_episodes]


def evaluate_policy_success(model, vec, n_episodes: int, deterministic: bool = True) -> float:
    """Success rate of a trained policy over ``n_episodes`` finished episodes."""
    infos = finished_episodes(model, vec, n_episodes, deterministic)
    return float(np.mean([bool(i.get("is_success")) for i in infos]))


def train(cfg: TrainConfig) -> dict:
    set_threads(cfg.threads)
    seed_everything(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.algo == "eq10":
        return train_eq10(cfg, out)
    vec = make_vec(cfg, cfg.n_envs, cfg.seed)
    log_std_init = cfg.log_std_init
    if log_std_init is None:
        log_std_init = -math.log(vec.core.options.action_scale)
    policy_kwargs = {"log_std_init": log_std_init}
    common = dict(
        learning_rate=cfg.lr,
        n_steps=cfg.n_steps,
        batch_size=cfg.batch_size,
        n_epochs=cfg.n_epochs,
        gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda,
        clip_range=cfg.clip_range,
        ent_coef=cfg.ent_coef,
        seed=cfg.seed,
        tensorboard_log=str(out / "tb"),
        policy_kwargs=policy_kwargs,
        device="cpu",
        verbose=0,
    )
    if cfg.algo == "ppo":
        from stable_baselines3 import PPO

        model = PPO("MlpPolicy", vec, **common)
    elif cfg.algo == "recurrent-ppo":
        from sb3_contrib import RecurrentPPO

        model = RecurrentPPO("MlpLstmPolicy", vec, **common)
    else:
        raise SystemExit(f"train: unknown --algo {cfg.algo!r}; use ppo, recurrent-ppo or eq10.")

    bar = progress_bar(total=cfg.episodes, desc="internal RL", unit="ep", disable=not cfg.progress)
    curve_cb = EpisodeCurve(bar)
    evals: list[dict[str, float]] = []
    eval_vec = make_vec(cfg, min(cfg.n_envs, cfg.eval_episodes), cfg.seed + 10_000)
    t0 = time.time()
    next_eval = cfg.eval_every
    # Learn in chunks so evaluation happens every `eval_every` episodes. The first chunk (no
    # episode yet) starts a new TensorBoard run (tb/ppo_<n+1> beside an earlier run's
    # tb/ppo_<n>, as SB3 numbers runs); the later ones continue it.
    while len(curve_cb.successes) < cfg.episodes:
        curve_cb.stop_at = min(next_eval, cfg.episodes)
        model.learn(
            total_timesteps=10**9,
            callback=curve_cb,
            reset_num_timesteps=not curve_cb.successes,
            progress_bar=False,
            tb_log_name="ppo",
        )
        n = len(curve_cb.successes)
        if n >= next_eval or n >= cfg.episodes:
            sr = evaluate_policy_success(model, eval_vec, cfg.eval_episodes)
            evals.append({"episodes": n, "eval_success": sr, "seconds": time.time() - t0})
            model.logger.record("eval/success_rate", sr)
            model.logger.dump(model.num_timesteps)
            if cfg.progress:
                recent = np.mean(curve_cb.successes[-500:])
                bar.write(
                    f"episodes {n}: eval success {sr:.3f} | train success (last 500) {recent:.3f} | {time.time() - t0:.0f}s"
                )
            next_eval += cfg.eval_every
    bar.close()
    policy_path = out / f"{cfg.algo}-{cfg.env_id}.zip"
    atomic_write_bytes(policy_path, lambda tmp: model.save(tmp) or _rename_zip(tmp))
    result = {
        "env_id": cfg.env_id,
        "algo": cfg.algo,
        "config": {**cfg.__dict__, "log_std_init": log_std_init},
        "internal_control": recorded_kwargs(cfg),
        "successes": curve_cb.successes,
        "evaluations": evals,
        "final_eval_success": evals[-1]["eval_success"] if evals else None,
        "seconds": time.time() - t0,
        "policy": str(policy_path),
    }
    atomic_write_json(out / "curve.json", result)
    return result


# --- the paper's critic-free algorithm (Eq. 10) ----------------------------------------------
class Eq10Policy(torch.nn.Module):
    """π(action | e_t): an MLP on the residual stream. For a code ``z`` (Box actions) a Gaussian
    with a state-independent log-std, which starts at ``log_std_init`` (in action units; the
    default makes the first codes z ~ N(0, I), the metacontroller's prior); for the oracle's
    subgoal index (Discrete) a categorical."""

    def __init__(
        self, obs_dim: int, action_space: gym.Space, log_std_init: float, hidden: int = 256
    ):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Linear(obs_dim, hidden), torch.nn.Tanh(),
            torch.nn.Linear(hidden, hidden), torch.nn.Tanh(),
        )  # fmt: skip
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        n_out = int(action_space.n) if self.discrete else int(action_space.shape[0])
        self.head = torch.nn.Linear(hidden, n_out)
        with torch.no_grad():  # start near the uniform / prior policy
            self.head.weight.mul_(0.01)
            self.head.bias.zero_()
        self.log_std = torch.nn.Parameter(torch.full((n_out,), float(log_std_init)))

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        out = self.head(self.body(obs))
        if self.discrete:
            return torch.distributions.Categorical(logits=out)
        std = self.log_std.exp().expand_as(out)
        return torch.distributions.Independent(torch.distributions.Normal(out, std), 1)


def eq10_loss(
    policy: Eq10Policy,
    obs: torch.Tensor,
    actions: torch.Tensor,
    logp_old: torch.Tensor,
    adv: torch.Tensor,
    clip: float,
) -> torch.Tensor:
    """-mean over abstract steps of min(ρ A, clip(ρ, 1-ε, 1+ε) A), ρ = π/π_old; ``adv`` (N,) is
    each step's episode advantage A_τ (paper Eq. 10, with steps pooled over the batch)."""
    logp = policy.distribution(obs).log_prob(actions)[:, None]  # one step per row: (N, 1)
    return clipped_surrogate(logp, logp_old[:, None], adv, torch.ones_like(logp), clip)


def train_eq10(cfg: TrainConfig, out: Path) -> dict:
    """Internal RL with the paper's critic-free Eq. 10 on the batched InternalControl VecEnv.

    Rows run episodes continuously; each finished episode's abstract steps (observation, action,
    log-prob under the policy that acted) join the batch, and every ``batch_episodes`` finished
    episodes one update of ``n_epochs`` full-batch steps is made. Gaussian codes are passed to
    the env unclipped (the env uses any finite code as given)."""
    vec = make_internal_control_vec_env(
        cfg.n_envs, seed=cfg.seed, monitor=False, **internal_control_kwargs(cfg)
    )
    log_std_init = cfg.log_std_init
    if log_std_init is None:
        log_std_init = -math.log(vec.core.options.action_scale)
    torch.manual_seed(cfg.seed)
    policy = Eq10Policy(vec.observation_space.shape[0], vec.action_space, log_std_init)
    if cfg.init_policy:
        try:
            policy.load_state_dict(torch_load_state(cfg.init_policy))
        except (OSError, RuntimeError) as err:
            raise SystemExit(
                f"train: cannot start from --init-policy {cfg.init_policy}: {err}. Pass the "
                "eq10-<env-id>.pt of an earlier `internal-rl train --algo eq10` run on an env "
                "with the same observation and action spaces."
            ) from None
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=0.0)
    logger = Logger(out, cfg)
    bar = progress_bar(total=cfg.episodes, desc="internal RL (Eq. 10)", unit="ep",
                       disable=not cfg.progress)  # fmt: skip
    running: list[list[tuple]] = [[] for _ in range(vec.num_envs)]
    returns = np.zeros(vec.num_envs)
    successes: list[int] = []
    t0 = time.time()
    obs = vec.reset()
    while len(successes) < cfg.episodes:
        finished: list[tuple[list[tuple], float]] = []
        while len(finished) < cfg.batch_episodes:
            with torch.no_grad():
                dist = policy.distribution(torch.as_tensor(obs))
                action = dist.sample()
                logp = dist.log_prob(action)
            act = action.numpy()
            next_obs, rewards, dones, infos = vec.step(act)
            for i in range(vec.num_envs):
                running[i].append((obs[i], act[i], float(logp[i])))
                returns[i] += rewards[i]
                if dones[i]:
                    finished.append((running[i], float(returns[i])))
                    successes.append(int(bool(infos[i].get("is_success", False))))
                    running[i], returns[i] = [], 0.0
            obs = next_obs
        ep_returns = np.array([r for _, r in finished])
        adv = trajectory_advantages(ep_returns)
        steps = [(o, a, lp, adv[k]) for k, (ep, _) in enumerate(finished) for o, a, lp in ep]
        # all episodes equal: zero advantage, nothing to learn (but the entropy bonus, if any)
        if np.any(adv) or cfg.ent_coef > 0:
            b_obs = torch.as_tensor(np.stack([s[0] for s in steps]))
            b_act = torch.as_tensor(np.stack([s[1] for s in steps]))
            b_logp = torch.as_tensor([s[2] for s in steps], dtype=torch.float32)
            b_adv = torch.as_tensor([s[3] for s in steps], dtype=torch.float32)
            for _ in range(cfg.n_epochs):
                loss = eq10_loss(policy, b_obs, b_act, b_logp, b_adv, cfg.clip_range)
                if cfg.ent_coef > 0:  # not in the paper (entropy 0); keeps new decisions open
                    loss = loss - cfg.ent_coef * policy.distribution(b_obs).entropy().mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        recent = float(np.mean(successes[-500:]))
        batch_success = float(np.mean(successes[-len(finished) :]))
        logger.log(
            len(successes), **{"rollout/success_rate": batch_success, "rollout/success_500": recent}
        )
        bar.update(len(finished))
        bar.set_postfix(success=f"{recent:.3f}", refresh=False)
    bar.close()
    logger.close()
    policy_path = out / f"eq10-{cfg.env_id}.pt"
    torch_save_atomic(policy.state_dict(), policy_path)
    result = {
        "env_id": cfg.env_id,
        "algo": "eq10",
        "config": {**cfg.__dict__, "log_std_init": log_std_init},
        "internal_control": recorded_kwargs(cfg),
        "successes": successes[: cfg.episodes],
        "evaluations": [],
        "final_eval_success": None,
        "seconds": time.time() - t0,
        "policy": str(policy_path),
    }
    atomic_write_json(out / "curve.json", result)
    return result


def _rename_zip(tmp: str) -> None:
    """SB3 appends .zip to paths without it; move the file back to the temp name."""
    import os

    if not tmp.endswith(".zip") and os.path.exists(tmp + ".zip"):
        os.replace(tmp + ".zip", tmp)


def run(cfg: TrainConfig) -> None:
    result = train(cfg)
    print(f"saved policy to {result['policy']}; final eval success {result['final_eval_success']}")
