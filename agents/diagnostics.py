"""Base-model diagnostics: did pretraining learn more than movement heuristics?

Three measurements, cheap enough to run during pretraining (findings.md: a model can reach a
good-looking action accuracy while following no task at all):

1. Held-out action quality split by whether the history determines the next target. On the grid
   the target is determined after the first colour of a pair (target colour odd) and ambiguous
   at the start and after each pair (even). We report plain accuracy and the *optimal-action
   rate* (the model's most likely action is one of the expert's shortest-path actions; a perfect
   imitator scores 1.0, whereas accuracy is capped near 0.75 by the expert's random tie-breaks).
2. Linear probe accuracy of the ground-truth abstract subgoal from the residual stream at every
   layer (paper Fig. 3), trained and tested on disjoint held-out episodes.
3. Behaviour in the env, batched free play: the model acts (sampling its action head) in fresh
   layouts; we record the colours it visits. ``task_consistent`` = the visited colours form one of
   the pretraining tasks (the model executed *some* valid task); ``env_success`` = they form the
   episode's own sampled task, which is what GridPinpad would reward. The task is not observable,
   so a perfect imitator scores about 1/16 on ``env_success`` and close to 1 on ``task_consistent``.
   ``within_pair_rate``: after the first colour of a pair (2k), how often the next colour visited
   is its partner 2k+1 (what the history determines); ``between_pair_rate``: after a completed
   pair, how often the next colour keeps the sequence a valid pretraining-task prefix.
"""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import torch

from internal_rl_gym import tasks
from internal_rl_gym.data import Demonstrations
from internal_rl_gym.envs import grid_core
from internal_rl_gym.envs.grid_expert import optimal_action_mask
from internal_rl_gym.tasks import ANT_PRETRAINING_TASKS, GRID_PRETRAINING_TASKS

GRID_SIZE, GRID_WALLS, GRID_COLOURS = tasks.GRID_SIZE, tasks.GRID_N_WALLS, tasks.GRID_N_COLOURS


@torch.no_grad()
def action_quality(model, heldout: Demonstrations, max_episodes: int = 512) -> dict[str, float]:
    """Accuracy and optimal-action rate, overall and split by determined/undetermined target."""
    model.eval()
    idx = np.arange(min(max_episodes, heldout.n_episodes))
    sums: dict[str, float] = {}
    for s in range(0, len(idx), 128):
        batch = heldout.batch(idx[s : s + 128])
        obs = torch.as_tensor(batch["obs"][:, :-1], device=model.device)
        logits = model(obs).action_logits.float().cpu().numpy()
        pred = logits.argmax(-1)
        mask = batch["mask"]
        correct = pred == batch["actions"]
        optimal = np.take_along_axis(optimal_action_mask(batch), pred[..., None], -1)[..., 0]
        determined = (batch["targets"] % 2 == 1) & mask
        undetermined = (batch["targets"] % 2 == 0) & mask
        for name, m in (("all", mask), ("determined", determined), ("undetermined", undetermined)):
            sums[f"accuracy_{name}_n"] = sums.get(f"accuracy_{name}_n", 0) + m.sum()
            sums[f"accuracy_{name}"] = sums.get(f"accuracy_{name}", 0) + (correct & m).sum()
            sums[f"optimal_{name}"] = sums.get(f"optimal_{name}", 0) + (optimal & m).sum()
    out = {}
    for name in ("all", "determined", "undetermined"):
        n = max(1, sums[f"accuracy_{name}_n"])
        out[f"accuracy_{name}"] = float(sums[f"accuracy_{name}"] / n)
        out[f"optimal_{name}"] = float(sums[f"optimal_{name}"] / n)
    return out


def last_visited_colours(targets: np.ndarray, n_colours: int = GRID_COLOURS) -> np.ndarray:
    """(B, T) padded targets -> the colour visited most recently before each step (``n_colours``
    = none yet). A target changes exactly when the previous one was visited."""
    out = np.full(targets.shape, n_colours, dtype=np.int64)
    for t in range(1, targets.shape[1]):
        changed = (targets[:, t] != targets[:, t - 1]) & (targets[:, t] >= 0)
        out[:, t] = np.where(changed, targets[:, t - 1], out[:, t - 1])
    return out


@torch.no_grad()
def residual_features(model, data: Demonstrations, episodes: np.ndarray, label: str = "subgoals"):
    """Residual streams at every layer for all valid steps: (L+1, N, d) features, (N,) labels
    (``"subgoals"`` or ``"last_visited"``), (N,) episode ids, (N,) time index in the episode."""
    model.eval()
    feats, labels, eps, times = [], [], [], []
    for s in range(0, len(episodes), 128):
        ids = episodes[s : s + 128]
        batch = data.batch(ids)
        obs = torch.as_tensor(batch["obs"][:, :-1], device=model.device)
        res = torch.stack(model(obs, return_residuals=True).residuals)  # (L+1, B, T, d)
        mask = batch["mask"]
        feats.append(res[:, torch.as_tensor(mask)].float().cpu())
        y = batch["subgoals"] if label == "subgoals" else last_visited_colours(batch["targets"])
        labels.append(y[mask])
        eps.append(np.broadcast_to(ids[:, None], mask.shape)[mask])
        times.append(np.broadcast_to(np.arange(mask.shape[1])[None], mask.shape)[mask])
    return torch.cat(feats, 1), np.concatenate(labels), np.concatenate(eps), np.concatenate(times)


def train_linear_probe(
    x: torch.Tensor,
    y: np.ndarray,
    n_classes: int,
    steps: int = 300,
    lr: float = 1e-2,
    seed: int = 0,
) -> torch.nn.Linear:
    """Softmax regression probe (paper §C.2; AdamW, no weight decay), full batch."""
    g = torch.Generator().manual_seed(seed)
    probe = torch.nn.Linear(x.shape[1], n_classes)
    torch.nn.init.normal_(probe.weight, std=0.01, generator=g)
    torch.nn.init.zeros_(probe.bias)
    mean, std = x.mean(0, keepdim=True), x.std(0, keepdim=True, correction=0) + 1e-5
    xt, yt = (x - mean) / std, torch.as_tensor(y)
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=0.0)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(probe(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    probe.register_buffer("mean", mean)
    probe.register_buffer("std", std)
    return probe


def majority_baseline(data: Demonstrations, n_episodes: int = 600) -> float:
    """Accuracy of always predicting the most frequent subgoal (the probes' chance level)."""
    n = min(n_episodes, data.n_episodes)
    labels = data.subgoals[: data.act_offsets[n]]
    return float(np.bincount(labels).max() / len(labels))


def probe_accuracy_by_layer(
    model,
    data: Demonstrations,
    n_episodes: int = 600,
    n_classes: int = 4,
    seed: int = 0,
    label: str = "subgoals",
) -> list[float]:
    """Held-out probe accuracy at each layer 0..L of the ground-truth subgoal (``label=
    "subgoals"``) or of the last colour visited (``"last_visited"``, 9 classes on the grid)."""
    n = min(n_episodes, data.n_episodes)
    if n < 2:  # a probe needs a training and a test episode
        warnings.warn(
            f"probe accuracy needs at least 2 held-out episodes, got {n}: reporting NaN "
            "(raise --holdout)",
            stacklevel=2,
        )
        return [float("nan")] * (model.n_layers + 1)
    feats, labels, eps, _ = residual_features(model, data, np.arange(n), label)
    test = eps >= min(n - 1, max(1, int(n * 0.7)))
    accs = []
    for layer in range(feats.shape[0]):
        probe = train_linear_probe(feats[layer][~test], labels[~test], n_classes, seed=seed)
        with torch.no_grad():
            x = (feats[layer][test] - probe.mean) / probe.std
            accs.append(float((probe(x).argmax(-1).numpy() == labels[test]).mean()))
    return accs


@torch.no_grad()
def grid_free_play(
    model,
    n_episodes: int = 256,
    seed: int = 0,
    tasks=GRID_PRETRAINING_TASKS,
    max_steps: int = 100,
    greedy: bool = False,
) -> dict[str, float]:
    """Let the model act in fresh GridPinpad layouts (see the module docstring)."""
    model.eval()
    rng = np.random.default_rng(seed)
    size, n_walls, n_colours = GRID_SIZE, GRID_WALLS, GRID_COLOURS
    own = [tasks[i] for i in rng.integers(len(tasks), size=n_episodes)]
    walls, colours, agent = grid_core.sample_layouts(rng, own, size, n_walls, n_colours)
    c = grid_core.n_channels(n_walls, n_colours)
    static = grid_core.static_observations(walls, colours, size)
    move = grid_core.move_table(size)
    cells = size * size
    rows = np.arange(n_episodes)
    walls_mask = np.zeros((n_episodes, cells), dtype=bool)
    walls_mask[rows[:, None], walls] = True
    colour_at = np.full((n_episodes, cells), -1, dtype=np.int64)
    colour_at[rows[:, None], colours] = np.arange(n_colours)
    prefixes = {t[:k] for t in tasks for k in range(len(t) + 1)}
    complete = set(tasks)
    visited: list[tuple[int, ...]] = [() for _ in range(n_episodes)]
    active = np.ones(n_episodes, dtype=bool)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    state = model.init_state(n_episodes)
    pos = agent.copy()
    steps = np.zeros(n_episodes, dtype=np.int64)
    for _ in range(max_steps):
        if not active.any():
            break
        obs = static.copy()
        obs[rows, pos * c + c - 1] = 1.0
        head, _ = model.step(torch.as_tensor(obs, device=model.device), state)
        logits = head.action_logits.float().cpu()
        if greedy:
            a = logits.argmax(-1).numpy()
        else:
            a = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen)[:, 0].numpy()
        nxt = move[a, pos]
        nxt = np.where(walls_mask[rows, nxt], pos, nxt)
        moved = nxt != pos
        for i in np.nonzero(active & moved & (colour_at[rows, nxt] >= 0))[0]:
            visited[i] = visited[i] + (int(colour_at[i, nxt[i]]),)
            if visited[i] not in prefixes or visited[i] in complete:
                active[i] = False
        pos = np.where(active, nxt, pos)
        steps += active
    consistent = np.array([v in complete for v in visited])
    # Decompose: after the first colour of a pair (2k), is the next colour its partner (2k+1)?
    # After a completed pair, is the next colour the start of an allowed next pair?
    within, between = [], []
    for v in visited:
        for k in range(len(v) - 1):
            if k % 2 == 0:
                if v[k] % 2 == 0:
                    within.append(v[k + 1] == v[k] + 1)
            elif v[: k + 1] in prefixes:
                between.append(v[: k + 2] in prefixes)
    success = np.array([v == t for v, t in zip(visited, own)])
    n_visits = np.array([len(v) for v in visited])
    return {
        "task_consistent": float(consistent.mean()),
        "env_success": float(success.mean()),
        "mean_valid_colours": float(
            np.mean([max(k for k in range(len(v) + 1) if v[:k] in prefixes) for v in visited])
        ),
        "mean_colours_visited": float(n_visits.mean()),
        "within_pair_rate": float(np.mean(within)) if within else float("nan"),
        "between_pair_rate": float(np.mean(between)) if between else float("nan"),
    }


def base_model_report(
    model, heldout: Demonstrations, n_env_episodes: int = 256, seed: int = 0
) -> dict[str, float]:
    """The diagnostics in one flat dict (what pretraining logs). Grid models get all three; for
    other envs (the ant) the held-out action NLL and the probes (the subgoal is the colour)."""
    grid = heldout.metadata.get("env_id", "GridPinpad-v0") == "GridPinpad-v0"
    report = (
        action_quality(model, heldout) if grid else {"action_nll": held_out_nll(model, heldout)}
    )
    probes = probe_accuracy_by_layer(model, heldout, seed=seed)
    report.update({f"probe_layer{i}": a for i, a in enumerate(probes)})
    report["probe_mid"] = probes[len(probes) // 2]
    if grid:
        memory = probe_accuracy_by_layer(
            model, heldout, n_classes=GRID_COLOURS + 1, seed=seed, label="last_visited"
        )
        report["probe_last_visited_best"] = max(memory)
        report.update({f"probe_last_visited_layer{i}": a for i, a in enumerate(memory)})
        report.update(grid_free_play(model, n_episodes=n_env_episodes, seed=seed))
    return report


@torch.no_grad()
def held_out_nll(model, heldout: Demonstrations, max_episodes: int = 256) -> float:
    """Mean action negative log-likelihood on held-out episodes."""
    model.eval()
    idx = np.arange(min(max_episodes, heldout.n_episodes))
    total, steps = 0.0, 0
    for s in range(0, len(idx), 64):
        b = heldout.batch(idx[s : s + 64])
        obs = torch.as_tensor(b["obs"], device=model.device)
        act = torch.as_tensor(b["actions"], device=model.device)
        mask = torch.as_tensor(b["mask"], device=model.device)
        out = model.loss(obs, act, mask=mask, obs_coef=0.0)
        n = int(mask.sum())
        total, steps = total + out.action_nll.item() * n, steps + n
    return total / max(1, steps)


def _n_probe_layers(r: dict[str, float]) -> int:
    return sum(1 for k in r if k.startswith("probe_layer"))


def format_report(r: dict[str, float | None]) -> str:
    """One line of the report; a number that is missing or not finite (``null`` in the JSON the
    report was written to) shows as ``nan``."""
    r = {k: float("nan") if v is None else v for k, v in r.items()}
    probes = " ".join(f"{r[f'probe_layer{i}']:.2f}" for i in range(_n_probe_layers(r)))
    if "accuracy_determined" not in r:
        line = f"held-out action NLL {r['action_nll']:.3f} | probe by layer [{probes}]"
        if "free_play_task_consistent" in r:
            ends = " ".join(
                f"{k.removeprefix('free_play_ended_')} {v:.2f}"
                for k, v in r.items()
                if k.startswith("free_play_ended_")
            )
            line += f" | free play: task completed {r['free_play_task_consistent']:.3f} ({ends})"
        return line
    return (
        f"acc det/undet {r['accuracy_determined']:.3f}/{r['accuracy_undetermined']:.3f} "
        f"optimal det/undet {r['optimal_determined']:.3f}/{r['optimal_undetermined']:.3f} | "
        f"probe by layer [{probes}] last-visited probe (best layer) "
        f"{r.get('probe_last_visited_best', float('nan')):.2f} | "
        f"free play: consistent {r['task_consistent']:.3f} "
        f"env-success {r['env_success']:.3f} valid colours {r['mean_valid_colours']:.2f} "
        f"within-pair {r.get('within_pair_rate', float('nan')):.2f} "
        f"between-pair {r.get('between_pair_rate', float('nan')):.2f}"
    )


class _AnyTaskJudge(gym.Wrapper):
    """Free play in an env built with ``terminate_on_wrong_colour=False``: ends the episode when
    the colours visited (``info["visited"]``) stop being a prefix of one of ``tasks``, or form
    one; ``info["success"]`` is then "completed *some* task". ``ending`` says why it ended:
    ``"task_done"``, ``"no_task"`` (a colour no task continues with), ``"time"``, or the env's
    own ``info["termination"]`` (the ant: ``"unhealthy"``, ``"wall"``, ``"left_grid"``)."""

    def __init__(self, env: gym.Env, tasks) -> None:
        super().__init__(env)
        self.prefixes = {tuple(t[:k]) for t in tasks for k in range(len(t) + 1)}
        self.complete = {tuple(t) for t in tasks}
        self.visited: tuple[int, ...] = ()
        self.ending = ""

    def reset(self, **kwargs):
        self.visited, self.ending = (), ""
        obs, info = self.env.reset(**kwargs)
        return obs, {**info, "success": False}

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        if info["visited"] >= 0:
            self.visited = self.visited + (int(info["visited"]),)
        done = self.visited not in self.prefixes or self.visited in self.complete
        if self.visited in self.complete:
            self.ending = "task_done"
        elif done:
            self.ending = "no_task"
        elif term:
            self.ending = info.get("termination") or "env"
        elif trunc:
            self.ending = "time"
        return obs, r, term or done, trunc, {**info, "success": self.visited in self.complete}


def env_free_play(
    model,
    env_id: str = "AntPinpad-v0",
    tasks=ANT_PRETRAINING_TASKS,
    n_episodes: int = 64,
    seed: int = 0,
    act: str = "sample",
) -> dict[str, float]:
    """Free play in any pinpad env (the ant's counterpart of :func:`grid_free_play`): the model
    acts from its own head (one batched forward per step) in fresh layouts of the pretraining
    tasks; ``task_consistent`` = the colours it visits form one of ``tasks``. ``act``: how it
    picks actions from its head (:func:`~internal_rl_agents.rollout.rollout`)."""
    from .rollout import rollout

    model.eval()
    envs = [
        _AnyTaskJudge(gym.make(env_id, task="pretraining", terminate_on_wrong_colour=False), tasks)
        for _ in range(n_episodes)
    ]
    gen = torch.Generator().manual_seed(seed)
    out = rollout(model, envs, [seed + i for i in range(n_episodes)], gen, act=act)
    visits = [len(env.visited) for env in envs]
    endings = [env.ending for env in envs]
    for env in envs:
        env.close()
    return {
        "task_consistent": float(out.success.mean()),
        "mean_colours_visited": float(np.mean(visits)),
        "mean_length": float(out.lengths.mean()),
        **{f"ended_{e}": endings.count(e) / len(endings) for e in sorted(set(endings))},
    }
