"""Pretraining's save-and-resume path, where the mutation run (benchmarks/mutation_testing.py)
found it unpinned: checkpoint and evaluation cadence, the optimiser's scheduled learning rate,
what a resumed run prints, and the loop's handling of a stop request or a data error. A stop is
requested by patching ``_StopRequest.around`` (the signal plumbing has its own tests in
test_pretrain.py; signals cannot reach mutmut's forked test processes)."""

from __future__ import annotations

import json

import pytest
import torch

from agents import data_sources
from agents import pretrain as pretrain_module
from agents.pretrain import learning_rate, pretrain
from tests.test_pretrain import tiny_config


def test_checkpoints_and_evaluations_land_on_their_cadence(tmp_path, monkeypatch):
    """Every checkpoint_every steps and at the end; diagnostics every eval_every steps and at
    the end. Mutants: ``/`` for ``%`` or ``== 1`` in the checkpoint test; ``step + 2`` in the
    evaluation test."""
    saved = []
    save = pretrain_module.save_checkpoint

    def recording(model, opt, step, out):
        saved.append(step)
        save(model, opt, step, out)

    monkeypatch.setattr(pretrain_module, "save_checkpoint", recording)
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
    message naming another step or losing how to resume."""
    monkeypatch.setattr(pretrain_module._StopRequest, "around", _stop_at(2))
    run = tmp_path / "stop"
    out = pretrain(tiny_config(run, steps=12, checkpoint_every=100))
    assert out == run / "model" and (out / "model.safetensors").is_file()
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
    run = tmp_path / "eval-stop"
    pretrain(tiny_config(run, steps=12, eval_every=3, checkpoint_every=100))
    assert torch.load(run / "train_state.pt", weights_only=True)["step"] == 3
