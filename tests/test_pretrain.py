"""The pretraining program: a tiny run is reproducible, resumes, and writes what it promises."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from agents import diagnostics
from agents.data_sources import observations_to_device
from agents.pretrain import PretrainConfig, learning_rate, model_from, pretrain
from internal_rl_gym.envs.grid_expert import collect_grid_demonstrations
from tests.conftest import as_if_saved_on_a_gpu


def tiny_config(out, steps=12, **kw) -> PretrainConfig:
    base = dict(
        out=str(out),
        d_model=16,
        n_layers=2,
        steps=steps,
        batch_size=8,
        pool_size=64,
        holdout=32,
        eval_every=1000,
        eval_episodes=4,
        checkpoint_every=6,
        warmup=2,
        threads=1,
        device="cpu",
    )
    base.update(kw)
    return PretrainConfig(**base)


def test_same_seed_same_weights_and_outputs(tmp_path):
    a = pretrain(tiny_config(tmp_path / "a"))
    b = pretrain(tiny_config(tmp_path / "b"))
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    c = pretrain(tiny_config(tmp_path / "c", seed=1))
    wc = load_file(c / "model.safetensors")
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    out = tmp_path / "a"
    assert {"config.json", "metrics.jsonl", "diagnostics.json", "train_state.pt"} <= {
        p.name for p in out.iterdir()
    }
    report = json.loads((out / "diagnostics.json").read_text())
    assert report["step"] == 12 and 0.0 <= report["probe_mid"] <= 1.0
    assert not [p for p in out.rglob("*.tmp")]  # atomic writes leave no temp files


def test_resume_continues_from_the_checkpoint(tmp_path, capsys):
    pretrain(tiny_config(tmp_path / "r", steps=6))
    # a row logged after the last checkpoint by a run that then stopped
    with open(tmp_path / "r" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 9, "train/loss": 123.0}) + "\n")
    pretrain(tiny_config(tmp_path / "r", steps=12))
    assert "resumed from" in capsys.readouterr().out
    rows = [
        json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    ]
    train_steps = [r["step"] for r in rows if "train/loss" in r]
    assert train_steps == [6, 12]  # each logged once; the stale step-9 row is gone
    state = json.loads((tmp_path / "r" / "model" / "trainer_state.json").read_text())
    assert state == {"global_step": 12}


def test_a_state_saved_on_a_gpu_resumes_on_the_cpu(tmp_path, capsys):
    pretrain(tiny_config(tmp_path / "g", steps=6))
    as_if_saved_on_a_gpu(tmp_path / "g" / "train_state.pt")
    if not torch.cuda.is_available():  # the relabelled file really needs the fix
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(tmp_path / "g" / "train_state.pt", weights_only=True)
    pretrain(tiny_config(tmp_path / "g", steps=8))
    assert "resumed from" in capsys.readouterr().out


def test_a_diverged_run_stops_and_keeps_its_last_good_checkpoint(tmp_path, monkeypatch):
    import dataclasses

    from internal_rl_gym.models import BaseModel

    run = tmp_path / "n"
    pretrain(tiny_config(run, steps=6))
    good = load_file(run / "model" / "model.safetensors")
    finite_loss = BaseModel.loss

    def nan_loss(self, *args, **kwargs):
        out = finite_loss(self, *args, **kwargs)
        return dataclasses.replace(out, loss=out.loss * float("nan"))

    monkeypatch.setattr(BaseModel, "loss", nan_loss)
    with pytest.raises(FloatingPointError, match="diverged"):
        pretrain(tiny_config(run, steps=12))
    assert torch.load(run / "train_state.pt", weights_only=True)["step"] == 6
    kept = load_file(run / "model" / "model.safetensors")
    assert all(torch.equal(good[k], kept[k]) for k in good)


def test_pretrain_a_hawk_on_ant_demonstrations(tmp_path):
    from internal_rl_gym.envs.ant_expert import collect_ant_demonstrations

    data = collect_ant_demonstrations(3, "0-1", seed=0, stochastic=True)
    path = data.save(tmp_path / "ant.npz")
    cfg = tiny_config(
        tmp_path / "ant", steps=3, data=str(path), preset="ant-cpu", holdout=1, batch_size=2
    )
    with pytest.warns(UserWarning, match="at least 2 held-out episodes"):  # holdout=1
        out = pretrain(cfg)
    config = json.loads((out / "config.json").read_text())
    assert config["arch"] == "hawk" and config["action_dim"] == 8
    report = json.loads((tmp_path / "ant" / "diagnostics.json").read_text())
    assert "action_nll" in report and "probe_mid" in report


def test_decay_anneals_the_last_steps_linearly_to_zero():
    cfg = PretrainConfig(steps=100, warmup=10, lr=1e-3, decay_steps=20)
    lrs = [learning_rate(cfg, step) for step in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert lrs[10:80] == [pytest.approx(1e-3)] * 70  # stable phase
    assert lrs[80] == pytest.approx(1e-3) and lrs[90] == pytest.approx(5e-4)
    assert lrs[99] == pytest.approx(5e-5)  # the last update still moves
    assert all(a > b for a, b in zip(lrs[80:], lrs[81:]))
    constant = PretrainConfig(steps=100, warmup=10, lr=1e-3)
    assert learning_rate(constant, 99) == pytest.approx(1e-3)


def test_decay_longer_than_the_run_is_refused(tmp_path):
    with pytest.raises(ValueError, match="decay_steps=13 must be between 0 and steps=12"):
        pretrain(tiny_config(tmp_path / "d", decay_steps=13))


def test_init_from_keeps_the_first_blocks_and_trains_on(tmp_path):
    source = pretrain(tiny_config(tmp_path / "src", n_layers=3, steps=6))
    src = load_file(source / "model.safetensors")
    heldout = collect_grid_demonstrations(2, "pretraining", seed=0)
    model = model_from(tiny_config(tmp_path / "t", init_from=str(source), n_layers=2), heldout)
    assert model.n_layers == 2
    state = model.state_dict()
    assert not any(k.startswith("blocks.2.") for k in state)
    assert all(torch.equal(state[k], src[k]) for k in state)  # embed, blocks 0-1, heads
    out = pretrain(tiny_config(tmp_path / "t", init_from=str(source), n_layers=2, steps=4))
    assert json.loads((out / "config.json").read_text())["n_layers"] == 2
    # the fine-tune keeps its source's name unless --name gives another
    assert json.loads((source / "config.json").read_text())["name"] == "pinpad-transformer"
    named = pretrain(tiny_config(tmp_path / "s", name="grid-small", n_layers=3, steps=2))
    kept = pretrain(tiny_config(tmp_path / "k", init_from=str(named), n_layers=3, steps=2))
    assert json.loads((kept / "config.json").read_text())["name"] == "grid-small"
    renamed = tiny_config(tmp_path / "r", init_from=str(named), n_layers=3, steps=2, name="mine")
    assert json.loads((pretrain(renamed) / "config.json").read_text())["name"] == "mine"
    with pytest.raises(ValueError, match="deeper than"):
        model_from(tiny_config(tmp_path / "x", init_from=str(source), n_layers=4), heldout)
    with pytest.raises(ValueError, match="differ from"):
        model_from(tiny_config(tmp_path / "x", init_from=str(source), d_model=32), heldout)


def test_a_run_resumes_with_the_architecture_it_was_written_with(tmp_path, capsys):
    """The state carries the model's config: a run started from --init-from resumes without it,
    and flags asking for another architecture are refused by name."""
    source = pretrain(tiny_config(tmp_path / "src", n_layers=3, steps=6))
    pretrain(tiny_config(tmp_path / "t", init_from=str(source), n_layers=None, steps=6))
    out = pretrain(tiny_config(tmp_path / "t", n_layers=None, d_model=None, steps=8))
    assert "resumed from" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["n_layers"] == 3
    # the run's own config.json keeps the flags that built the model, not the defaults of the
    # flags left out on resume
    run_config = json.loads((tmp_path / "t" / "config.json").read_text())
    assert (run_config["init_from"], run_config["n_layers"], run_config["steps"]) == (
        str(source),
        None,
        8,
    )
    pretrain(tiny_config(tmp_path / "p", preset="grid-paper", d_model=16, steps=6))
    pretrain(tiny_config(tmp_path / "p", d_model=None, n_layers=None, steps=8))
    run_config = json.loads((tmp_path / "p" / "config.json").read_text())
    assert (run_config["preset"], run_config["d_model"], run_config["n_layers"]) == (
        "grid-paper",
        16,
        2,
    )
    with pytest.raises(ValueError, match=r"n_layers=3.*drop those flags"):
        pretrain(tiny_config(tmp_path / "t", n_layers=2, steps=10))
    state = torch.load(tmp_path / "t" / "train_state.pt", weights_only=True)
    state["model_config"]["obs_dim"] += 1  # as if written on another env's data
    torch.save(state, tmp_path / "t" / "train_state.pt")
    with pytest.raises(ValueError, match="observations of size .*resume it on the data"):
        pretrain(tiny_config(tmp_path / "t", n_layers=None, d_model=None, steps=10))


def test_a_windowed_transformer_is_built_recorded_and_kept_on_resume(tmp_path):
    out = pretrain(tiny_config(tmp_path / "w", attention_window=5, max_len=96, steps=6))
    config = json.loads((out / "config.json").read_text())
    assert (config["arch"], config["attention_window"], config["max_len"]) == ("transformer", 5, 96)
    with pytest.raises(ValueError, match=r"attention_window=5.*drop those flags"):
        pretrain(tiny_config(tmp_path / "w", attention_window=7, steps=8))
    pretrain(tiny_config(tmp_path / "w", steps=8))  # resumes with the window it was written with
    assert json.loads((out / "config.json").read_text())["attention_window"] == 5
    heldout = collect_grid_demonstrations(2, "pretraining", seed=0)
    with pytest.raises(ValueError, match=r"--attention-window differ from .*attention_window=5"):
        model_from(tiny_config(tmp_path / "x", init_from=str(out), attention_window=3), heldout)
    with pytest.raises(ValueError, match="attention_window=4 limits a transformer"):
        pretrain(tiny_config(tmp_path / "h", arch="hawk", attention_window=4, steps=2))


def test_an_old_state_that_does_not_fit_the_flags_names_the_flags(tmp_path):
    """A state written before it carried its architecture is rebuilt from the flags; flags that do
    not fit it get an error that says which flags to repeat, not a shape mismatch."""
    pretrain(tiny_config(tmp_path / "o", steps=6))
    path = tmp_path / "o" / "train_state.pt"
    state = torch.load(path, weights_only=True)
    del state["model_config"]
    torch.save(state, path)
    with pytest.raises(
        ValueError, match="(?s)does not fit the model these flags build.*--n-layers"
    ):
        pretrain(tiny_config(tmp_path / "o", n_layers=3, steps=8))
    pretrain(tiny_config(tmp_path / "o", steps=8))  # the starting flags still resume it


def _pool_batches(workers: int, n: int = 5) -> tuple[list[dict], int]:
    from agents.data_sources import ONLINE_CHUNK, online_grid_pool

    # two chunks per pool, four batches per pool: five batches cross a pool refresh
    pool = online_grid_pool(
        "pretraining", ONLINE_CHUNK + 8, (ONLINE_CHUNK + 8) // 4, 3, workers=workers
    )
    try:
        return [pool.next_batch() for _ in range(n)], pool.generation
    finally:
        pool.close()


def test_worker_processes_give_a_stream_set_by_the_seed_not_the_worker_count():
    (one, gen_one), (two, gen_two) = _pool_batches(1), _pool_batches(2)
    assert gen_one == gen_two == 1  # the pool was regenerated (from the prefetched generation)
    for a, b in zip(one, two):
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    serial, _ = _pool_batches(0)
    assert not all(
        (a["obs"].shape == b["obs"].shape) and (a["obs"] == b["obs"]).all()
        for a, b in zip(one, serial)
    )
    # the generated pools hold valid expert episodes
    assert all(b["mask"].any(-1).all() for b in one)


def test_pretraining_with_data_workers_is_reproducible(tmp_path):
    a = pretrain(tiny_config(tmp_path / "a", data_workers=2, steps=10))
    b = pretrain(tiny_config(tmp_path / "b", data_workers=1, steps=10))
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_data_workers_need_online_data(tmp_path):
    data = collect_grid_demonstrations(40, seed=0)
    path = data.save(tmp_path / "d.npz")
    # the whole message (mutant: the message changed)
    message = "^--data-workers generates online data; drop it with a dataset file$"
    with pytest.raises(ValueError, match=message):
        pretrain(tiny_config(tmp_path / "x", data=str(path), data_workers=2))
    from agents.data_sources import online_grid_pool

    with pytest.raises(ValueError, match="workers must be >= 0"):
        online_grid_pool("pretraining", 8, 4, 0, workers=-1)


def test_bf16_autocast_trains_reproducibly_and_close_to_fp32(tmp_path):
    a = pretrain(tiny_config(tmp_path / "a", precision="bf16"))
    b = pretrain(tiny_config(tmp_path / "b", precision="bf16"))
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert all(wa[k].dtype == torch.float32 and torch.equal(wa[k], wb[k]) for k in wa)

    def losses(run):
        rows = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [json.loads(r)["train/loss"] for r in rows if "train/loss" in r]

    pretrain(tiny_config(tmp_path / "f"))
    assert losses("a")[-1] == pytest.approx(losses("f")[-1], rel=0.05)
    with pytest.raises(ValueError, match="precision must be one of"):
        pretrain(tiny_config(tmp_path / "x", precision="fp16"))


def test_rms_norm_of_bf16_activations_is_computed_in_fp32():
    from internal_rl_gym.models.layers import RMSNorm

    norm = RMSNorm(8)
    x = torch.randn(3, 8)
    out = norm(x.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), norm(x.bfloat16().float()).bfloat16().float())


def test_packed_batches_unpack_where_the_model_runs_to_the_same_observations():
    data = collect_grid_demonstrations(12, "pretraining", seed=3)
    episodes = np.arange(8)
    plain, packed = data.batch(episodes), data.batch(episodes, decode=False)
    assert packed["obs"].dtype == np.uint8
    assert packed["obs"].shape == (*plain["obs"].shape[:2], (data.obs_dim + 7) // 8)
    for key in ("actions", "mask", "targets", "subgoals", "lengths"):
        np.testing.assert_array_equal(plain[key], packed[key])
    expected = torch.from_numpy(plain["obs"])
    assert torch.equal(observations_to_device(packed["obs"], data.obs_dim, "cpu"), expected)
    assert torch.equal(observations_to_device(plain["obs"], data.obs_dim, "cpu"), expected)
    with pytest.raises(ValueError, match="bytes per step"):
        observations_to_device(packed["obs"], data.obs_dim + 8, "cpu")


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_a_stop_signal_saves_the_current_step_and_returns(tmp_path, monkeypatch, signum):
    """SIGTERM (`kill`, `timeout`) or SIGINT (Ctrl-C) ends the run cleanly: the step under way
    finishes and is checkpointed, and rerunning resumes from it."""
    import signal

    from agents import data_sources

    sig = getattr(signal, signum)
    calls = {"n": 0}
    next_batch = data_sources.EpisodePool.next_batch

    def signal_at_step_4(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            signal.raise_signal(sig)
        return next_batch(self, *args, **kwargs)

    monkeypatch.setattr(data_sources.EpisodePool, "next_batch", signal_at_step_4)
    # A job started in the background by a non-interactive shell inherits SIGINT ignored, and
    # pretrain rightly leaves an ignored signal alone: give the test the interactive handling.
    inherited = signal.getsignal(sig)
    before = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
    signal.signal(sig, before)
    try:
        run = tmp_path / "s"
        pretrain(tiny_config(run, steps=12, checkpoint_every=100))
        assert torch.load(run / "train_state.pt", weights_only=True)["step"] == 4
        assert signal.getsignal(sig) is before  # the handler is put back
        monkeypatch.undo()
        pretrain(tiny_config(run, steps=12, checkpoint_every=100))
        assert torch.load(run / "train_state.pt", weights_only=True)["step"] == 12
    finally:
        signal.signal(sig, inherited)


def test_a_stop_signal_during_an_evaluation_still_saves_that_step(tmp_path, monkeypatch):
    import signal

    report = diagnostics.base_model_report

    def signal_during_eval(*args, **kwargs):
        signal.raise_signal(signal.SIGTERM)
        return report(*args, **kwargs)

    monkeypatch.setattr(diagnostics, "base_model_report", signal_during_eval)
    run = tmp_path / "e"
    pretrain(tiny_config(run, steps=12, eval_every=3, checkpoint_every=100))
    assert torch.load(run / "train_state.pt", weights_only=True)["step"] == 3


def test_an_ignored_sigint_stays_ignored(tmp_path, monkeypatch):
    """Background jobs of a script ignore SIGINT; training does not take that over."""
    import signal

    from agents import data_sources

    next_batch = data_sources.EpisodePool.next_batch

    def sigint(self, *args, **kwargs):
        signal.raise_signal(signal.SIGINT)
        return next_batch(self, *args, **kwargs)

    monkeypatch.setattr(data_sources.EpisodePool, "next_batch", sigint)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        pretrain(tiny_config(tmp_path / "i", steps=6))
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert torch.load(tmp_path / "i" / "train_state.pt", weights_only=True)["step"] == 6


def test_resume_restores_the_saved_weights_and_optimiser(tmp_path):
    """Mutants: the model's or the optimiser's load_state_dict dropped on resume. (A resumed
    run draws fresh episodes, so it is not bit-identical to an uninterrupted one.)"""
    first = pretrain(tiny_config(tmp_path / "r", steps=6))
    trained = load_file(first / "model.safetensors")
    again = pretrain(tiny_config(tmp_path / "r", steps=6))  # resumed at its end: no new step
    kept = load_file(again / "model.safetensors")
    assert all(torch.equal(trained[k], kept[k]) for k in trained)
    resumed = load_file(pretrain(tiny_config(tmp_path / "r", steps=8)) / "model.safetensors")
    near_init = load_file(pretrain(tiny_config(tmp_path / "s", steps=1)) / "model.safetensors")

    def dist(a, b):
        return sum(float((a[k] - b[k]).square().sum()) for k in a) ** 0.5

    # two steps on from the saved weights, not two steps on from a fresh model
    assert dist(resumed, trained) < dist(resumed, near_init)
    state = torch.load(tmp_path / "r" / "train_state.pt", weights_only=False)
    assert state["step"] == 8
    assert all(int(s["step"]) == 8 for s in state["optimizer"]["state"].values())
