"""Pretraining's save-and-resume path, where the mutation run (benchmarks/mutation_testing.py)
found it unpinned: checkpoint and evaluation cadence, the optimiser's scheduled learning rate,
what a resumed run prints, and the loop's handling of a stop request or a data error. A stop is
requested by patching ``_StopRequest.around`` (the signal plumbing has its own tests in
test_pretrain.py; signals cannot reach mutmut's forked test processes)."""

from __future__ import annotations

import inspect
import io
import json

import pytest
import torch

from agents import data_sources
from agents import pretrain as pretrain_module
from agents.pretrain import learning_rate, pretrain
from tests.test_pretrain import tiny_config


def _record_checkpoints(monkeypatch) -> list[int]:
    """The steps of the checkpoints the run writes, in order."""
    saved = []
    save = pretrain_module.save_checkpoint

    def recording(model, opt, step, out):
        saved.append(step)
        save(model, opt, step, out)

    monkeypatch.setattr(pretrain_module, "save_checkpoint", recording)
    return saved


def test_checkpoints_and_evaluations_land_on_their_cadence(tmp_path, monkeypatch):
    """Every checkpoint_every steps and at the end; diagnostics every eval_every steps and at
    the end. Mutants: ``/`` for ``%`` or ``== 1`` in the checkpoint test; ``step + 2`` in the
    evaluation test."""
    saved = _record_checkpoints(monkeypatch)
    run = tmp_path / "c"
    pretrain(tiny_config(run, steps=10, checkpoint_every=4, eval_every=3, eval_episodes=2))
    assert saved == [4, 8, 10]
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "diag/probe_mid" in r] == [3, 6, 9, 10]


def test_the_optimiser_runs_at_the_scheduled_learning_rate(tmp_path):
    """The saved optimiser state holds the last step's scheduled rate (here decayed). Mutant:
    the rate written under another key (the optimiser keeps its initial rate)."""
    cfg = tiny_config(tmp_path / "lr", steps=6, decay_steps=3, checkpoint_every=100)
    pretrain(cfg)
    state = torch.load(tmp_path / "lr" / "train_state.pt", weights_only=True)
    (group,) = state["optimizer"]["param_groups"]
    assert group["lr"] == pytest.approx(learning_rate(cfg, 5)) and group["lr"] < cfg.lr / 2


def test_a_resumed_run_names_its_state_file_and_a_new_run_creates_its_folders(tmp_path, capsys):
    """Mutants: the run folder made without its parents; the state's path not passed on (the
    message names None)."""
    run = tmp_path / "new" / "nested" / "run"
    pretrain(tiny_config(run, steps=4, checkpoint_every=2))
    pretrain(tiny_config(run, steps=6, checkpoint_every=2))
    assert f"resumed from {run / 'train_state.pt'} at step 4" in capsys.readouterr().out


def test_training_without_gradient_clipping(tmp_path):
    """grad_clip=0 turns clipping off. Mutant: the logged norm built from None (TypeError)."""
    out = pretrain(tiny_config(tmp_path / "noclip", steps=3, grad_clip=0.0))
    assert (out / "model.safetensors").is_file()


def _stop_at(step: int):
    def around(self, steps):
        for s in steps:
            if s == step:
                self.requested = "SIGTERM"
            yield s

    return around


def test_a_stop_request_checkpoints_the_step_under_way_and_returns_the_model(
    tmp_path, monkeypatch, capsys
):
    """Mutants: the loop left with ``return`` (no model path, the logger left open); the
    message naming another step or losing how to resume; the step just saved saved a second
    time (``saved != step + 2`` in the after-evaluation check)."""
    monkeypatch.setattr(pretrain_module._StopRequest, "around", _stop_at(2))
    saved = _record_checkpoints(monkeypatch)
    run = tmp_path / "stop"
    out = pretrain(tiny_config(run, steps=12, checkpoint_every=100))
    assert out == run / "model" and (out / "model.safetensors").is_file()
    assert saved == [3]  # once: the request's checkpoint is not repeated after it
    assert torch.load(run / "train_state.pt", weights_only=True)["step"] == 3
    message = "stop requested (SIGTERM): saved step 3; rerun the same command to resume"
    assert message in capsys.readouterr().out


def test_a_data_error_is_raised_unless_a_stop_was_requested(tmp_path, monkeypatch):
    """A batch that fails after a stop request (data workers killed by the same signal) keeps
    the steps done; without a request the error is raised. Mutants: the condition inverted; the
    steps-done checkpoint written with another step or none."""
    next_batch = data_sources.EpisodePool.next_batch
    calls = {"n": 0}

    def failing_at_3(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("worker died")
        return next_batch(self, *args, **kwargs)

    monkeypatch.setattr(data_sources.EpisodePool, "next_batch", failing_at_3)
    with pytest.raises(OSError, match="worker died"):
        pretrain(tiny_config(tmp_path / "err", steps=6, checkpoint_every=100))

    calls["n"] = 0
    monkeypatch.setattr(pretrain_module._StopRequest, "around", _stop_at(2))
    run = tmp_path / "stopped"
    out = pretrain(tiny_config(run, steps=6, checkpoint_every=100))
    assert out == run / "model"
    assert torch.load(run / "train_state.pt", weights_only=True)["step"] == 2


def test_a_stop_requested_during_an_evaluation_checkpoints_that_step(tmp_path, monkeypatch):
    """The request arrives after the step's checkpoint test ran: the step is saved after the
    evaluation. Mutant: that checkpoint written as the next step."""
    from agents import diagnostics

    holder = {}

    def around(self, steps):
        holder["stop"] = self
        yield from steps

    report = diagnostics.base_model_report

    def stop_during(*args, **kwargs):
        holder["stop"].requested = "SIGTERM"
        return report(*args, **kwargs)

    monkeypatch.setattr(pretrain_module._StopRequest, "around", around)
    monkeypatch.setattr(diagnostics, "base_model_report", stop_during)
    saved = _record_checkpoints(monkeypatch)
    run = tmp_path / "eval-stop"
    pretrain(tiny_config(run, steps=12, eval_every=3, checkpoint_every=100))
    assert saved == [3]
    assert torch.load(run / "train_state.pt", weights_only=True)["step"] == 3


class _Clock:
    """``agents.pretrain``'s ``time`` in a test: ``perf_counter`` advances 0.125 s per read and
    ``time`` 0.25 s per read. A training step reads ``perf_counter`` before its batch, after it
    and after the update (0.125 s getting data, 0.25 s in all: a window's total stays under the
    1e-9 floor's mutant 1.000000001); ``time`` is read at the start and at each log."""

    def __init__(self) -> None:
        self.reads, self.wall = 0, 0

    def perf_counter(self) -> float:
        self.reads += 1
        return 0.125 * self.reads

    def time(self) -> float:
        self.wall += 1
        return 1000.0 + 0.25 * self.wall


def _record_batches(monkeypatch) -> list[dict]:
    """The batches training reads, in order."""
    batches = []
    next_batch = data_sources.EpisodePool.next_batch

    def recording(self, *args, **kwargs):
        batches.append(next_batch(self, *args, **kwargs))
        return batches[-1]

    monkeypatch.setattr(data_sources.EpisodePool, "next_batch", recording)
    return batches


def _record_bars(monkeypatch) -> list:
    """The progress bars training draws (into a string), each with its ``set_postfix`` calls."""
    bars = []
    progress_bar = pretrain_module.progress_bar

    def recording(*args, **kwargs):
        bar = progress_bar(*args, file=io.StringIO(), **kwargs)
        bar.postfixes, set_postfix = [], bar.set_postfix

        def record(**postfix):
            bar.postfixes.append(postfix)
            set_postfix(**postfix)

        bar.set_postfix = record
        bars.append(bar)
        return bar

    monkeypatch.setattr(pretrain_module, "progress_bar", recording)
    return bars


def test_a_resumed_run_logs_its_loss_and_throughput_every_log_every_steps(tmp_path, monkeypatch):
    """Resumed at step 4 and run to 11 with log_every=3, under a fake clock: rows at steps 6, 9
    and 11 (windows of 2, 3 and 2 steps) holding the loss and its parts, the step's learning
    rate, the tokens per second since the start (the batches' mask sums over the clock's 0.25 s
    per log), the data fraction (0.125 s of 0.25 s per step) and the steps per second of the
    window's own steps; the progress bar counts from 4 to 11 of 11 and shows each row's loss and
    rate without forcing a redraw; the resumed run draws episodes other than the first run's.

    Mutants killed: the interval as a constant ``% 51`` (now ``log_every``) and its condition;
    ``data_s =`` for ``+=``, ``train_s -=``, ``window_steps += 2``; the window counters started
    (``1.0, 0.0, 0``, ``0.0, 1.0, 0``, ``0.0, 0.0, 1``) or reset (``0.0, 1.0, 0``,
    ``0.0, 0.0, 1``) at other values; ``tokens`` started at 1; ``max(1.000000001, ...)`` and
    ``time.time() + t0`` in the rate, ``max(1.000000001, train_s)`` in the data fraction; ``*``
    for ``/`` in the data fraction and the steps per second; a ``train/*`` or ``perf/*`` key
    renamed; the action accuracy logged only when it is None; the bar without ``initial`` or
    ``total``; the postfix's ``tok_s=None`` or without ``refresh=False``."""
    run = tmp_path / "log"
    first = _record_batches(monkeypatch)
    pretrain(tiny_config(run, steps=4, checkpoint_every=4))
    monkeypatch.undo()
    batches = _record_batches(monkeypatch)
    bars = _record_bars(monkeypatch)
    monkeypatch.setattr(pretrain_module, "time", _Clock())
    cfg = tiny_config(run, steps=11, checkpoint_every=100, log_every=3)
    pretrain(cfg)

    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "train/loss" in r]
    assert [r["step"] for r in rows] == [4, 6, 9, 11]  # the first run's last step, then these
    assert len(batches) == 7
    tokens = [int(b["mask"].sum()) for b in batches]
    keys = {"step", "train/loss", "train/action_nll", "train/obs_loss", "train/grad_norm"}
    keys |= {"train/lr", "train/action_accuracy"}  # a grid model's discrete actions
    keys |= {"perf/tokens_per_s", "perf/data_fraction", "perf/steps_per_s"}
    for i, (row, seen) in enumerate(zip(rows[1:], (2, 5, 7)), start=1):
        assert set(row) == keys
        parts = row["train/action_nll"] + cfg.obs_coef * row["train/obs_loss"]
        assert row["train/loss"] == pytest.approx(parts, rel=1e-5)
        assert row["train/lr"] == pytest.approx(learning_rate(cfg, row["step"] - 1))
        assert row["perf/tokens_per_s"] == pytest.approx(sum(tokens[:seen]) / (0.25 * i))
        assert row["perf/data_fraction"] == pytest.approx(0.5)
        assert row["perf/steps_per_s"] == pytest.approx(4.0)  # 1 step per 0.25 s

    (bar,) = bars
    assert (bar.n, bar.total) == (11, 11)
    assert bar.postfixes == [
        {
            "loss": f"{r['train/loss']:.3f}",
            "tok_s": f"{r['perf/tokens_per_s']:.0f}",
            "refresh": False,
        }
        for r in rows[1:]
    ]
    assert not any(
        a["obs"].shape == b["obs"].shape and (a["obs"] == b["obs"]).all()
        for a, b in zip(first, batches)
    )


def test_the_evaluation_uses_the_configured_seed(tmp_path, monkeypatch):
    """The diagnostics' probes and env episodes are seeded by the run's seed (here 3, not the
    report's default 0) and run eval_episodes episodes. Mutant: ``seed=cfg.seed`` dropped from
    the ``base_model_report`` call."""
    from agents import diagnostics

    calls = []
    report = diagnostics.base_model_report

    def recording(*args, **kwargs):
        bound = inspect.signature(report).bind(*args, **kwargs)
        bound.apply_defaults()
        calls.append((bound.arguments["seed"], bound.arguments["n_env_episodes"]))
        return report(*args, **kwargs)

    monkeypatch.setattr(diagnostics, "base_model_report", recording)
    pretrain(tiny_config(tmp_path / "seed", steps=1, seed=3, eval_episodes=2))
    assert calls == [(3, 2)]
