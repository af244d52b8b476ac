"""Held-out diagnostics of a discovered metacontroller (paper Fig. 6, A3, 7).

Did the switching gate β find the subgoal structure? :func:`evaluate_metacontroller` counts
switches per episode (β_t > 0.5, counting the forced switch at t = 1), precision/recall/F1 of
switches against the true subgoal boundaries within a tolerance, how binary β is, the rate (KL)
and distortion (NLL), and whether the codes z name subgoals (:func:`code_informativeness`).
:func:`collapse_warning` says in plain words when β collapsed or the codes name nothing;
:func:`abstract_action_check` lets prior codes act in the environment; the plots draw the
rate-distortion curve and β traces. ``agents.discover`` re-exports every name here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np
import torch

from internal_rl_gym.hub import load_metacontroller
from internal_rl_gym.models import Metacontroller

if TYPE_CHECKING:
    from .discover import CachedActivations

SWITCH_THRESHOLD = 0.5  # a switch is β_t > 0.5 (paper §C.6, as in internal RL)


def true_boundaries(subgoals: np.ndarray) -> list[int]:
    """Steps t >= 1 at which the ground-truth subgoal changes (a new segment starts)."""
    return [t for t in range(1, len(subgoals)) if subgoals[t] != subgoals[t - 1]]


def switch_onsets(beta: np.ndarray, threshold: float = SWITCH_THRESHOLD) -> list[int]:
    """Steps t >= 1 where β crosses ``threshold`` upwards: the first step of each run of open
    gate (β_0 = 1 is the forced start, not a switch)."""
    return [t for t in range(1, len(beta)) if beta[t] > threshold >= beta[t - 1]]


def match_switches(pred: list[int], true: list[int], tolerance: int) -> tuple[int, int, int]:
    """Greedy one-to-one matching within ``tolerance``: (true positives, n_pred, n_true)."""
    used: set[int] = set()
    tp = 0
    for p in pred:
        best = None
        for j, t in enumerate(true):
            if (
                j not in used
                and abs(p - t) <= tolerance
                and (best is None or abs(p - t) < abs(p - true[best]))
            ):
                best = j
        if best is not None:
            used.add(best)
            tp += 1
    return tp, len(pred), len(true)


@torch.no_grad()
def gate_traces(
    meta: Metacontroller, held: CachedActivations, batch: int = 128
) -> list[np.ndarray]:
    """The noise-free gate β (posterior means, as used downstream) of each held-out episode,
    one array of its length per episode (sequence posterior)."""
    meta.eval()
    traces = []
    for s in range(0, len(held.lengths), batch):
        idx = np.arange(s, min(len(held.lengths), s + batch))
        e, _, mask = held.batch(idx)
        beta = meta(e, mask, sample=False).beta.cpu().numpy()
        traces += [beta[k, : int(held.lengths[i])] for k, i in enumerate(idx)]
    return traces


@torch.no_grad()
def evaluate_metacontroller(
    meta: Metacontroller, base, held: CachedActivations, alpha: float, tolerance: int = 1
) -> dict[str, float]:
    """Switching statistics and rate/distortion on held-out episodes (posterior means). The
    ELBO's sampled codes come from a fixed seed, so a checkpoint always scores the same NLL."""
    meta.eval()
    gen = torch.Generator(device=base.device).manual_seed(0)
    n = len(held.lengths)
    tp = n_pred = n_true = 0
    onset_tp = onset_pred = seg_tp = seg_pred = 0
    switches, true_counts, betas = [], [], []
    codes, code_labels, code_episode, code_context = [], [], [], []
    nll_sum = kl_sum = steps = 0.0
    for s in range(0, n, 128):
        idx = np.arange(s, min(n, s + 128))
        e, act, mask = held.batch(idx)
        e, act, mask = e.to(base.device), act.to(base.device), mask.to(base.device)
        if meta.posterior == "hindsight":
            e_h, starts = (x.to(base.device) for x in held.hindsight(idx))
            out = meta.hindsight_elbo(base, e, e_h, starts, act, mask, alpha, gen)
            # codes from the given segments; β from the switching unit fed those codes
            det = meta.hindsight_forward(e, e_h, starts, mask, sample=False)
            for k, i in enumerate(idx):
                t = int(held.lengths[i])
                given = [j for j in range(1, t) if bool(starts[k, j])]
                a, p, _ = match_switches(given, true_boundaries(held.subgoals[i, :t]), tolerance)
                seg_tp, seg_pred = seg_tp + a, seg_pred + p
        else:
            out = meta.elbo(base, e, act, mask, alpha, generator=gen)
            det = meta(e, mask, sample=False)  # posterior means: the gate as used downstream
        m = mask.float()
        nll_sum += out.action_nll.item() * m.sum().item()
        kl_sum += out.kl.item() * m.sum().item()
        steps += m.sum().item()
        beta = det.beta.cpu().numpy()
        valid = mask.cpu().numpy()
        codes.append(det.z.cpu().numpy()[valid])
        code_labels.append(held.subgoals[idx, : valid.shape[1]][valid])
        code_episode.append(np.broadcast_to(idx[:, None], valid.shape)[valid])
        code_context.append(
            np.stack([previous_subgoals(held.subgoals[i, : valid.shape[1]]) for i in idx])[valid]
        )
        for k, i in enumerate(idx):
            t = int(held.lengths[i])
            b = beta[k, :t]
            pred = [j for j in range(1, t) if b[j] > SWITCH_THRESHOLD]
            true = true_boundaries(held.subgoals[i, :t])
            a, p, q = match_switches(pred, true, tolerance)
            tp, n_pred, n_true = tp + a, n_pred + p, n_true + q
            # Secondary: only the first step of each run of β > 0.5 (a gate that opens at a
            # boundary but closes slowly scores low above and high here).
            onsets = switch_onsets(b)
            a, p, _ = match_switches(onsets, true, tolerance)
            onset_tp, onset_pred = onset_tp + a, onset_pred + p
            switches.append(1 + len(pred))  # the forced switch at t = 1 counts
            true_counts.append(1 + len(true))
            betas.append(b[1:])
    precision = tp / max(1, n_pred)
    recall = tp / max(1, n_true)
    f1 = 2 * precision * recall / max(1e-9, precision + recall)
    onset_p, onset_r = onset_tp / max(1, onset_pred), onset_tp / max(1, n_true)
    onset_f1 = 2 * onset_p * onset_r / max(1e-9, onset_p + onset_r)
    all_beta = np.concatenate(betas) if betas else np.zeros(0)
    switches_arr, true_arr = np.array(switches), np.array(true_counts)
    code_stats = code_informativeness(
        np.concatenate(codes),
        np.concatenate(code_labels),
        np.concatenate(code_episode),
        np.concatenate(code_context),
    )
    given_segments = {}
    if meta.posterior == "hindsight":  # how well the segmenter's starts match the truth
        p, r = seg_tp / max(1, seg_pred), seg_tp / max(1, n_true)
        given_segments = {"segments_from_f1": 2 * p * r / max(1e-9, p + r)}
    return {
        "alpha": alpha,
        **given_segments,
        "switch_precision": precision,
        "switch_recall": recall,
        "switch_f1": f1,
        "switch_onset_f1": onset_f1,
        "switch_onset_precision": onset_p,
        "switch_onset_recall": onset_r,
        "switches_per_episode": float(switches_arr.mean()),
        "true_subgoals_per_episode": float(true_arr.mean()),
        "switch_count_within_1": float(np.mean(np.abs(switches_arr - true_arr) <= 1)),
        "beta_binary_fraction": float(np.mean((all_beta < 0.1) | (all_beta > 0.9))),
        "beta_mean": float(all_beta.mean()) if len(all_beta) else math.nan,
        "nll": nll_sum / max(1, steps),
        "kl": kl_sum / max(1, steps),
        "tolerance": tolerance,
        "beta_histogram": np.histogram(all_beta, bins=10, range=(0, 1))[0].tolist(),
        **code_stats,
    }


def previous_subgoals(subgoals: np.ndarray) -> np.ndarray:
    """For each step, the subgoal of the previous segment (-1 in the first segment)."""
    out = np.full(len(subgoals), -1, dtype=np.int64)
    prev = -1
    for t in range(1, len(subgoals)):
        if subgoals[t] != subgoals[t - 1]:
            prev = subgoals[t - 1]
        out[t] = prev
    return out


def code_informativeness(
    z: np.ndarray, subgoals: np.ndarray, episodes: np.ndarray, previous: np.ndarray | None = None
) -> dict[str, float]:
    """Do the discovered codes name subgoals? For every valid held-out step: the integrated code
    z_t (posterior means) and the true subgoal.

    ``z_active_dims``: dimensions of z that vary across steps (variance > 0.01, the "active
    units" criterion of Burda et al. 2016). ``z_subgoal_probe``: held-out accuracy of a linear
    probe from z_t to the true subgoal (trained on 70% of the episodes, tested on the rest),
    against ``z_subgoal_chance`` (the majority class): do codes name subgoals absolutely?

    A code can also name the next subgoal relative to the context (e.g. "the first of the two
    usual continuations"), which is as useful to internal RL, whose policy sees the residual
    stream. With ``previous`` (the previous segment's subgoal, -1 in the first segment):
    ``z_subgoal_probe_in_context``, a probe with one linear map per previous subgoal, against
    ``context_subgoal_probe``, the same without z. The gap is what the codes add.
    """
    n_classes = int(subgoals.max()) + 1
    ids = np.unique(episodes)
    train = np.isin(episodes, ids[: max(1, int(0.7 * len(ids)))])
    test = ~train if (~train).any() else train
    counts = np.bincount(subgoals[test], minlength=n_classes)
    out: dict[str, float] = {
        "z_active_dims": int((z.var(0) > 0.01).sum()),
        "z_subgoal_probe": _probe_accuracy(z, subgoals, train, test, n_classes),
        "z_subgoal_chance": float(counts.max() / counts.sum()),
    }
    if previous is not None:
        context = np.eye(n_classes + 1)[previous + 1]  # (N, n+1) one-hot, -1 -> column 0
        with_z = context[:, :, None] * np.concatenate([np.ones((len(z), 1)), z], 1)[:, None]
        out["z_subgoal_probe_in_context"] = _probe_accuracy(
            with_z.reshape(len(z), -1), subgoals, train, test, n_classes
        )
        out["context_subgoal_probe"] = _probe_accuracy(context, subgoals, train, test, n_classes)
    return out


def _probe_accuracy(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, n_classes: int
) -> float:
    from .diagnostics import train_linear_probe

    xt = torch.as_tensor(x, dtype=torch.float32)
    with torch.enable_grad():  # callers may run under no_grad
        probe = train_linear_probe(xt[train], y[train], n_classes)
    with torch.no_grad():
        pred = probe((xt[test] - probe.mean) / probe.std).argmax(-1).numpy()
    return float(np.mean(pred == y[test]))


def collapse_warning(r: dict[str, float], action_targets: str | None = None) -> str | None:
    """Plain-words warning when the gate degenerated or the codes name nothing
    (``action_targets``: the run's ``--action-targets``, for the hint; None if unknown)."""
    if r["switches_per_episode"] <= 1.05:
        return (
            "β collapsed to NEVER switching: every episode is one segment (z is chosen once). "
            "Try a larger α (more KL pressure makes holding z costly), more steps, or check the "
            "base model's diagnostics."
        )
    if r["beta_mean"] > 0.8:
        return (
            "β collapsed to ALWAYS switching: z is re-chosen at nearly every step, so there is no "
            "temporal abstraction. Try a smaller α."
        )
    if r["beta_binary_fraction"] < 0.5:
        return "β is not binary: most gate values lie between 0.1 and 0.9."
    if "z_subgoal_probe_in_context" in r:
        with_z, without = r["z_subgoal_probe_in_context"], r["context_subgoal_probe"]
        if with_z < without + 0.03:
            return (
                f"the codes z do not name subgoals: knowing z does not help a probe guess the "
                f"true subgoal ({with_z:.2f} with z and the previous subgoal, {without:.2f} "
                f"from the previous subgoal alone; {r['z_active_dims']} active dimensions), so "
                "internal RL has little to choose between. Try a smaller α (a larger code "
                "budget) or a longer run"
                + (", or --action-targets expert" if action_targets == "sampled" else "")
                + "; benchmarks/code_search.py measures how far the codes can still steer."
            )
    return None


def abstract_action_check(
    base, meta, n_episodes: int = 128, seed: int = 0, n_envs: int = 16
) -> dict[str, float]:
    """Are discovered codes reusable abstract actions? Sample z ~ N(0, I) at every switch (the
    metacontroller's prior), let the frozen base model act in GridPinpad free play (a wrong
    colour does not end the episode), and look at the colours each segment visits.

    ``pair_fraction``: segments whose visits are exactly one abstract subgoal in order (2k then
    2k+1), i.e. the segment ends on a completed subgoal. ``any_visit_fraction``: segments that
    visit at least one colour. Only segments that ended by a switch (not by the episode's end)
    count.
    """
    from internal_rl_gym.internal_control import InternalControlVecEnv

    envs = [
        gym.make("GridPinpad-v0", task="pretraining", terminate_on_wrong_colour=False)
        for _ in range(n_envs)
    ]
    vec = InternalControlVecEnv(envs, base, meta)
    vec.seed(seed)
    vec.reset()
    rng = np.random.default_rng(seed)
    scale = vec.core.options.action_scale
    segments: list[list[int]] = []
    lengths: list[int] = []
    finished = 0
    while finished < n_episodes:
        if vec.core.index_actions:  # codes uniform over the categorical prior
            actions = rng.integers(vec.core.n_actions, size=n_envs)
        else:
            actions = rng.standard_normal((n_envs, vec.core.n_z)) / scale  # z ~ N(0, I)
        _, _, dones, infos = vec.step(actions)
        for info, done in zip(infos, dones):
            if done:
                finished += 1
            else:
                segments.append(info["visited_colours"])
                lengths.append(info["primitive_steps"])
    pairs = [len(v) == 2 and v[0] % 2 == 0 and v[1] == v[0] + 1 for v in segments]
    return {
        "segments": len(segments),
        "pair_fraction": float(np.mean(pairs)) if segments else 0.0,
        "any_visit_fraction": float(np.mean([len(v) > 0 for v in segments])) if segments else 0.0,
        "mean_segment_length": float(np.mean(lengths)) if lengths else 0.0,
    }


def format_report(r: dict[str, float]) -> str:
    return (
        f"α={r['alpha']}: switch F1 {r['switch_f1']:.3f} (P {r['switch_precision']:.2f} "
        f"R {r['switch_recall']:.2f}, ±{r['tolerance']}; onsets only {r['switch_onset_f1']:.3f}) "
        f"| switches/episode "
        f"{r['switches_per_episode']:.2f} vs true {r['true_subgoals_per_episode']:.2f} | "
        f"β binary {r['beta_binary_fraction']:.2f} | NLL {r['nll']:.3f} KL {r['kl']:.3f} | "
        f"z: {r['z_active_dims']} active dims, subgoal probe {r['z_subgoal_probe']:.2f} "
        f"(chance {r['z_subgoal_chance']:.2f}), in context "
        f"{r.get('z_subgoal_probe_in_context', math.nan):.2f} "
        f"(context alone {r.get('context_subgoal_probe', math.nan):.2f})"
    )


def plot_summary(out: Path, reports: list[dict]) -> None:
    """Rate-distortion curve over α (paper Fig. 7) and β histograms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ax = axes[0]
    for r in reports:
        ax.scatter(r["nll"], r["kl"], s=40)
        ax.annotate(f"α={r['alpha']:g}\nF1={r['switch_f1']:.2f}", (r["nll"], r["kl"]), fontsize=8)
    ax.set_xlabel("distortion: action NLL (held-out)")
    ax.set_ylabel("rate: KL per step")
    ax.set_title("rate-distortion over α")
    ax = axes[1]
    centres = np.linspace(0.05, 0.95, 10)
    for r in reports:
        h = np.array(r["beta_histogram"], dtype=float)
        ax.plot(centres, h / max(1, h.sum()), marker="o", label=f"α={r['alpha']:g}")
    ax.set_yscale("log")
    ax.set_xlabel("β_t (t > 1)")
    ax.set_ylabel("fraction of steps")
    ax.set_title("switching gate histogram")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "rate_distortion.png", dpi=120)
    plt.close(fig)


@torch.no_grad()
def plot_beta_traces(
    model_dir: Path, base, held: CachedActivations, path: Path, n: int = 4
) -> None:
    """β_t over held-out episodes against the true subgoal boundaries (paper Fig. 6/A3)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = load_metacontroller(model_dir, base_model=base)
    n = min(n, len(held.lengths))
    fig, axes = plt.subplots(n, 1, figsize=(8, 1.8 * n), sharex=True)
    for k, ax in enumerate(np.atleast_1d(axes)):
        t = int(held.lengths[k])
        e = held.e[k : k + 1, :t].to(base.device)
        mask = held.mask[k : k + 1, :t].to(base.device)
        if meta.posterior == "hindsight":  # the switching unit fed the given segments' codes
            e_h, starts = (x.to(base.device) for x in held.hindsight(np.array([k])))
            beta = meta.hindsight_forward(e, e_h, starts, mask, sample=False).beta[0].cpu()
        else:
            beta = meta(e, mask, sample=False).beta[0].cpu()
        ax.plot(np.arange(t), beta.numpy(), drawstyle="steps-mid", label="β_t")
        for b in true_boundaries(held.subgoals[k, :t]):
            ax.axvline(b, color="red", linestyle="--", linewidth=1)
        ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel(f"ep {k}")
    np.atleast_1d(axes)[0].set_title(
        "switching gate β_t (line) and true subgoal boundaries (dashed)"
    )
    np.atleast_1d(axes)[-1].set_xlabel("timestep")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
