"""Batched rollouts of a base model acting in task envs (one forward call per step for all)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

#: how a base model picks each action from its head (:func:`rollout`)
ACTS = ("sample", "greedy", "mean")


@dataclass
class Rollouts:
    """N finished episodes: observations o_1..o_{T+1} and actions per episode, plus outcomes.

    ``actions`` are what the envs executed (continuous: clipped to the action bounds);
    ``raw_actions`` are the samples the head drew, before clipping, and ``log_probs`` are theirs
    (for discrete actions the two are the same). A policy-gradient ratio must score the same
    samples again: ``base.action_distribution(head).log_prob(raw_actions)``.
    """

    obs: list[np.ndarray]
    actions: list[np.ndarray]
    raw_actions: list[np.ndarray]
    log_probs: list[np.ndarray]
    success: np.ndarray
    returns: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(a) for a in self.actions])

    def padded(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """obs (N, T+1, D), sampled actions (N, T[, action_dim]) (``raw_actions``: unclipped, the
        ones ``log_probs`` score), their log-probs (N, T), mask (N, T); zeros past each end."""
        n, t = len(self.actions), int(self.lengths.max())
        d = self.obs[0].shape[-1]
        obs = np.zeros((n, t + 1, d), dtype=np.float32)
        raw = self.raw_actions
        act = np.zeros((n, t, *raw[0].shape[1:]), dtype=raw[0].dtype)
        logp = np.zeros((n, t), dtype=np.float32)
        mask = np.zeros((n, t), dtype=bool)
        for i in range(n):
            k = len(self.actions[i])
            obs[i, : k + 1], act[i, :k], logp[i, :k], mask[i, :k] = (
                self.obs[i],
                raw[i],
                self.log_probs[i],
                True,
            )
        return obs, act, logp, mask


def check_act(act: str, base) -> None:
    """Refuse an acting mode the base model's action head cannot take, saying which it can."""
    if act not in ACTS:
        raise ValueError(f"--act must be one of {', '.join(ACTS)}, got {act!r}.")
    if act == "mean" and base.action_type != "continuous":
        raise ValueError(
            "--act mean reads a continuous head's mean action, but this base model's actions "
            "are discrete: use --act sample or --act greedy."
        )


@torch.no_grad()
def rollout(
    base,
    envs: list[gym.Env],
    seeds: list[int],
    generator: torch.Generator,
    control: Callable[[list[dict]], tuple[Callable, int] | None] | None = None,
    act: str = "sample",
) -> Rollouts:
    """Run one episode in each env with the base model's own action head. ``act``:

    * ``"sample"``: a categorical sample, or for continuous actions a Gaussian sample (a mixture
      head: a component, then a sample around its mean);
    * ``"greedy"``: the categorical's mode, or the Gaussian's mean (a mixture head: the most
      probable component's mean);
    * ``"mean"`` (continuous heads): the head's mean action, a mixture's ``Σ_k π_k μ_k``.

    Continuous actions are clipped to the env's action bounds (log-probabilities are of the
    unclipped action, under the whole head; those are kept in ``raw_actions``).

    ``control(infos)`` may return ``(intervention, layer)`` for this step, given each env's
    latest info (e.g. ground-truth controllers selected by ``info["subgoal"]``).
    """
    check_act(act, base)
    greedy = act == "greedy"
    n = len(envs)
    first = [env.reset(seed=s) for env, s in zip(envs, seeds)]
    obs = np.stack([o for o, _ in first]).astype(np.float32)
    infos = [info for _, info in first]
    trajectories = [[o.copy()] for o in obs]  # copies: obs is overwritten row by row below
    actions: list[list] = [[] for _ in range(n)]
    raw_actions: list[list] = [[] for _ in range(n)]
    space, discrete = envs[0].action_space, base.action_type == "discrete"
    logps: list[list[float]] = [[] for _ in range(n)]
    success = np.zeros(n, dtype=bool)
    returns = np.zeros(n, dtype=np.float32)
    active = np.ones(n, dtype=bool)
    state = base.init_state(n)
    while active.any():
        ctl = control(infos) if control is not None else None
        intervention, layer = ctl if ctl is not None else (None, None)
        head, _ = base.step(
            torch.as_tensor(obs, device=base.device), state, intervention=intervention, layer=layer
        )
        if discrete:
            logp_all = torch.log_softmax(head.action_logits.float(), -1).cpu()
            if greedy:
                a = logp_all.argmax(-1)
            else:
                a = torch.multinomial(logp_all.exp(), 1, generator=generator)[:, 0]
            lp = logp_all.gather(-1, a[:, None])[:, 0].numpy()
            a = sampled = a.numpy()
        else:
            mean = head.action_mean.float().cpu()
            std = head.action_log_std.float().exp().cpu()
            if act == "mean":  # the whole head's mean: no component to pick, no noise
                mean = head.expected_action().float().cpu()
            elif head.action_mix_logits is not None:  # a mixture head: each row's component first
                probs = torch.softmax(head.action_mix_logits.float(), -1).cpu()
                k = (
                    probs.argmax(-1)
                    if greedy
                    else torch.multinomial(probs, 1, generator=generator)[:, 0]
                )
                mean, std = mean[torch.arange(len(k)), k], std[torch.arange(len(k)), k]
            raw = (
                mean + std * torch.randn(mean.shape, generator=generator)
                if act == "sample"
                else mean
            )
            dist = base.action_distribution(head, validate_args=False)
            lp = dist.log_prob(raw.to(head.action_mean)).float().cpu().numpy()
            sampled = raw.numpy()
            a = np.clip(sampled, space.low, space.high).astype(space.dtype)
        for i in np.nonzero(active)[0]:
            a_i = int(a[i]) if discrete else a[i]
            o, r, term, trunc, info = envs[i].step(a_i)
            obs[i], infos[i] = o, info
            trajectories[i].append(o)
            actions[i].append(a_i)
            raw_actions[i].append(a_i if discrete else sampled[i].copy())
            logps[i].append(float(lp[i]))
            returns[i] += r
            if term or trunc:
                active[i] = False
                success[i] = bool(info.get("success", False))
    return Rollouts(
        obs=[np.stack(t) for t in trajectories],
        actions=[np.array(a, dtype=np.int64 if discrete else np.float32) for a in actions],
        raw_actions=[np.array(a, dtype=np.int64 if discrete else np.float32) for a in raw_actions],
        log_probs=[np.array(lp, dtype=np.float32) for lp in logps],
        success=success,
        returns=returns,
    )
