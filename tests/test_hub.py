"""Checkpoint sharing: the real download code against a loopback fake Hub, offline use, pinned
revisions, error messages, model cards and ``internal-rl push/pull``.

The fake Hub (``tests/fake_hub.py``, fixture ``fake_hub``) implements the one endpoint
``hf_hub_download`` uses, with the Hub's headers; everything else in these tests is the real
``huggingface_hub`` client and cache. No test talks to a non-loopback address, and every Hub call
gets an explicit ``cache_dir`` under ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file

from agents.cli import main as cli
from internal_rl_gym import cards
from internal_rl_gym.hub import (
    CheckpointError,
    load_base_model,
    load_metacontroller,
    load_policy_from_hub,
    model_fingerprint,
    save_checkpoint,
)
from internal_rl_gym.models import BaseModel, Metacontroller
from internal_rl_gym.models.config import ANT_CPU_PRESET, GRID_CPU_PRESET

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = dict(
    arch="transformer", obs_dim=20, n_actions=4, d_model=16, n_layers=2, n_heads=2, d_head=8
)


def tiny_base(seed: int, **kw) -> BaseModel:
    torch.manual_seed(seed)
    return BaseModel(**{**TINY, "d_mlp": 32, "max_len": 16, "init_scale": 1.0, **kw}).eval()


def tiny_meta(base: BaseModel, source: str, **kw) -> Metacontroller:
    torch.manual_seed(3)
    args = dict(d_model=base.d_model, layer=1, n_z=2, n_h=4, n_s=4, enc_hidden=8)
    args.update(switch_hidden=8, hyp_hidden=8, rank=2, base_model_name=source)
    args.update(base_model_fingerprint=model_fingerprint(base), **kw)
    return Metacontroller(**args).eval()


def outputs(model: BaseModel) -> torch.Tensor:
    obs = torch.linspace(-1, 1, 3 * 20).reshape(1, 3, 20)
    with torch.no_grad():
        return model(obs).action_logits


@pytest.fixture(scope="module")
def hub_repos(fake_hub, tmp_path_factory):
    """``test-hub/tiny`` with two commits (old: model A, main: model B), a metacontroller
    trained on A, and a repo holding no weights."""
    root = tmp_path_factory.mktemp("published")
    a, b = tiny_base(0), tiny_base(1)
    save_checkpoint(a, root / "a")
    save_checkpoint(b, root / "b")
    save_checkpoint(tiny_meta(a, "test-hub/tiny"), root / "meta")
    old = fake_hub.add_repo("test-hub/tiny", root / "a")
    main = fake_hub.add_repo("test-hub/tiny", root / "b")
    fake_hub.add_repo("test-hub/meta", root / "meta")
    fake_hub.add_repo("test-hub/no-weights", {"config.json": (root / "a/config.json").read_bytes()})
    return dict(a=a, b=b, old=old, main=main, root=root)


def hub(fake_hub, tmp_path, **kw):
    return dict(endpoint=fake_hub.url, cache_dir=tmp_path / "cache", **kw)


# ------------------------------------------------------------------------- downloads and cache


def test_download_lands_in_the_standard_cache_and_loads_identical_outputs(
    fake_hub, hub_repos, tmp_path
):
    model = load_base_model("test-hub/tiny", **hub(fake_hub, tmp_path))
    repo = tmp_path / "cache" / "models--test-hub--tiny"
    main = hub_repos["main"]
    assert (repo / "refs" / "main").read_text() == main
    snapshot = repo / "snapshots" / main
    assert {p.name for p in snapshot.iterdir()} == {"config.json", "model.safetensors"}
    assert (snapshot / "model.safetensors").resolve().parent == repo / "blobs"
    torch.testing.assert_close(outputs(model), outputs(hub_repos["b"]), atol=0, rtol=0)
    assert model_fingerprint(model) == model_fingerprint(hub_repos["b"])
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert not any(Path.home().joinpath(".cache", "huggingface", "hub").glob("models--test-hub*"))


def test_pinned_revision_resolves_to_the_other_commit(fake_hub, hub_repos, tmp_path):
    old = load_base_model("test-hub/tiny", revision=hub_repos["old"], **hub(fake_hub, tmp_path))
    assert (tmp_path / "cache/models--test-hub--tiny/snapshots" / hub_repos["old"]).is_dir()
    torch.testing.assert_close(outputs(old), outputs(hub_repos["a"]), atol=0, rtol=0)
    assert model_fingerprint(old) != model_fingerprint(hub_repos["b"])


def test_warm_cache_loads_offline_in_a_fresh_process(fake_hub, hub_repos, tmp_path):
    """HF_HUB_OFFLINE is read when huggingface_hub is imported, hence the subprocess. The
    endpoint is a dead port and the fake Hub must see no request."""
    load_base_model("test-hub/tiny", **hub(fake_hub, tmp_path))
    n_requests = len(fake_hub.requests)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    script = textwrap.dedent(
        """
        import sys
        from internal_rl_gym.hub import CheckpointError, load_base_model, model_fingerprint
        cache = sys.argv[1]
        print(model_fingerprint(load_base_model("test-hub/tiny", cache_dir=cache)))
        try:
            load_base_model("test-hub/never-downloaded", cache_dir=cache)
        except CheckpointError as err:
            print(err)
        """
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_ENDPOINT": dead,
        "HF_HOME": str(tmp_path / "home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    env.pop("HF_TOKEN", None)
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "cache")],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    fingerprint, message = out.stdout.strip().split("\n", 1)
    assert fingerprint == model_fingerprint(hub_repos["b"])
    assert "not in the local Hub cache" in message and "HF_HUB_OFFLINE=1" in message
    assert len(fake_hub.requests) == n_requests


def test_local_files_only(fake_hub, hub_repos, tmp_path):
    with pytest.raises(CheckpointError, match=r"not in the local Hub cache .* downloads are disab"):
        load_base_model("test-hub/tiny", **hub(fake_hub, tmp_path, local_files_only=True))
    load_base_model("test-hub/tiny", **hub(fake_hub, tmp_path))
    n_requests = len(fake_hub.requests)
    again = load_base_model("test-hub/tiny", **hub(fake_hub, tmp_path, local_files_only=True))
    assert model_fingerprint(again) == model_fingerprint(hub_repos["b"])
    assert len(fake_hub.requests) == n_requests


# ------------------------------------------------------------------------------ error messages


@pytest.mark.parametrize(
    "repo, kw, message",
    [
        ("test-hub/unknown", {}, r"Hub repository 'test-hub/unknown' was not found at http://127"),
        ("test-hub/no-weights", {}, r"has no file 'model.safetensors'; an internal-rl-gym"),
        ("test-hub/tiny", {"revision": "nope"}, r"Revision 'nope' does not exist in Hub repo"),
        ("test-hub/tiny", {"revision": "f" * 40}, r"does not exist in Hub repository"),
        ("test-hub/meta", {}, r"is a metacontroller checkpoint, not a base model: .*load_meta"),
    ],
)
def test_hub_errors_say_what_to_do(fake_hub, hub_repos, tmp_path, repo, kw, message):
    with pytest.raises(CheckpointError, match=message):
        load_base_model(repo, **hub(fake_hub, tmp_path, **kw))


@pytest.mark.timeout(60)
def test_unreachable_hub_is_explained(tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setattr("time.sleep", lambda seconds: None)  # skip the client's retry backoff
    with pytest.raises(CheckpointError, match=r"cannot be reached, and the file is not in"):
        load_base_model("test-hub/tiny", endpoint=dead, cache_dir=tmp_path / "c")


def test_local_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not an embedded default"):
        load_base_model(str(tmp_path / "no" / "such" / "dir"))
    base = tiny_base(0)
    save_checkpoint(base, tmp_path / "ok")

    corrupt = tmp_path / "corrupt"
    save_checkpoint(base, corrupt)
    (corrupt / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match=r"corrupted or not a safetensors file"):
        load_base_model(corrupt)

    truncated = tmp_path / "truncated"
    save_checkpoint(base, truncated)
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[:-10])
    with pytest.raises(CheckpointError, match=r"corrupted"):
        load_base_model(truncated)

    missing = tmp_path / "missing"
    save_checkpoint(base, missing)
    (missing / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"has no model.safetensors"):
        load_base_model(missing)

    wrong = tmp_path / "wrong"
    save_checkpoint(base, wrong)
    config = json.loads((wrong / "config.json").read_text())
    (wrong / "config.json").write_text(json.dumps({**config, "d_mlp": 64}))
    with pytest.raises(CheckpointError, match=r"do not match .*config.json \(loading is strict\)"):
        load_base_model(wrong)


def test_corrupted_cache_blob_is_detected(fake_hub, hub_repos, tmp_path):
    load_base_model("test-hub/tiny", **hub(fake_hub, tmp_path))
    weights = tmp_path / "cache/models--test-hub--tiny/snapshots" / hub_repos["main"]
    blob = (weights / "model.safetensors").resolve()
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF  # a flipped bit in the tensor data: the header still parses
    blob.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"corrupted in the Hub cache.*force_download=True"):
        load_base_model("test-hub/tiny", **hub(fake_hub, tmp_path))
    fixed = load_base_model("test-hub/tiny", **hub(fake_hub, tmp_path, force_download=True))
    assert model_fingerprint(fixed) == model_fingerprint(hub_repos["b"])


def test_metacontroller_checks_its_base_model(fake_hub, hub_repos, tmp_path):
    a, b = hub_repos["a"], hub_repos["b"]
    meta = load_metacontroller("test-hub/meta", base_model=a, **hub(fake_hub, tmp_path))
    assert meta.base_model_fingerprint == model_fingerprint(a)
    with pytest.raises(
        CheckpointError,
        match=r"Metacontroller 'test-hub/meta@[0-9a-f]{40}' was trained on base model "
        r"'test-hub/tiny' .* but the base model given is .*load_base_model\('test-hub/tiny'\)",
    ):
        load_metacontroller("test-hub/meta", base_model=b, **hub(fake_hub, tmp_path))
    save_checkpoint(tiny_meta(a, "tiny-a", d_model=24), tmp_path / "wide")
    with pytest.raises(CheckpointError, match=r"d_model=24 residual stream, but base model"):
        load_metacontroller(tmp_path / "wide", base_model=a)
    with pytest.raises(CheckpointError, match=r"is a base model checkpoint, not a metacontroll"):
        load_metacontroller(hub_repos["root"] / "a")


# ------------------------------------------------------------------------------ saving, cards


def test_save_checkpoint_replaces_atomically_with_a_card(tmp_path):
    out = tmp_path / "ckpt"
    save_checkpoint(tiny_base(0), out)
    save_checkpoint(tiny_base(1), out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temp dirs left
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    assert model_fingerprint(load_base_model(out)) == model_fingerprint(tiny_base(1))
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "internal-rl-gym"
    assert "base-model" in card.data.tags and "reinforcement-learning" in card.data.tags
    save_checkpoint(tiny_base(0), out, card="# custom\n")
    assert (out / "README.md").read_text() == "# custom\n"


def test_card_templates_are_package_data_and_render():
    """The templates' only copy is internal_rl_gym/hub_cards/<kind>.md, read as package data."""
    from importlib import resources

    folder = resources.files("internal_rl_gym") / "hub_cards"
    assert set(cards.TEMPLATES) == set(cards.KINDS)
    for kind in cards.KINDS:
        assert cards.TEMPLATES[kind] == (folder / f"{kind}.md").read_text(encoding="utf-8")
        text = cards.render_card(kind, repo_id="me/thing", results={"success": 0.5})
        assert "${" not in text and "# " in text
        assert ModelCard(text).data.library_name == cards.LIBRARY_NAMES[kind]
        assert not (REPO_ROOT / "hub_cards" / f"{kind}.md").exists(), "a second copy"


@pytest.mark.parametrize(
    "results, expected",
    [
        ({"metrics": {"success_rate": {"mean": 0.9, "std": 0.3}}}, {"success_rate": (0.9, 0.3)}),
        (
            {"mean_reward": 2.0, "std_reward": 0.5, "n_evaluation_episodes": 10},
            {"mean_reward": (2.0, 0.5)},
        ),
        ({"env_success": 0.8, "seed": 0, "warning": ""}, {"env_success": (0.8, None)}),
    ],
)
def test_metrics_from_results(results, expected):
    assert cards.metrics_from_results(results) == expected


def test_policy_card_metadata():
    text = cards.render_card(
        "policy",
        repo_id="me/ppo-InternalControl-Pinpad-v0",
        results={"env_id": "InternalControl-Pinpad-v0", "mean_reward": 0.5, "std_reward": 0.5},
    )
    data = ModelCard(text).data
    assert data.library_name == "stable-baselines3"
    assert data.tags[0] == "InternalControl-Pinpad-v0"
    assert {"reinforcement-learning", "deep-reinforcement-learning", "stable-baselines3"} <= set(
        data.tags
    )
    (result,) = data.eval_results
    assert (result.metric_type, result.metric_value) == ("mean_reward", "0.50 +/- 0.50")
    assert 'load_policy_from_hub("me/ppo-InternalControl-Pinpad-v0", "ppo-Intern' in text
    with pytest.raises(TypeError, match="unknown field"):
        cards.render_card("policy", env="typo")


def test_base_model_card_names_the_grid_env_for_any_grid_encoder():
    grid = {"arch": "transformer", "obs_dim": 637, "n_actions": 4, "grid_size": 7}
    for encoder in ("linear", "grid_cells", "grid_egocentric"):
        text = cards.render_card("base_model", config={**grid, "obs_encoder": encoder})
        assert "# base model: base model for GridPinpad-v0" in text
    # a continuous model of the same input size is not a grid model
    text = cards.render_card("base_model", config={**grid, "action_type": "continuous"})
    assert "GridPinpad-v0" not in text
    # an unknown environment leaves the title short instead of "for not recorded"
    text = cards.render_card("base_model", config={"obs_dim": 5, "obs_encoder": "linear"})
    assert "# base model: base model\n" in text and "for not recorded" not in text


def test_base_model_card_names_the_action_head():
    ant = {"arch": "hawk", "obs_dim": 41, "action_type": "continuous", "action_dim": 8}
    assert "8-dim (Gaussian head)" in cards.render_card("base_model", config=ant)
    text = cards.render_card("base_model", config={**ant, "action_components": 4})
    assert "8-dim (mixture of 4 Gaussians)" in text


def test_card_limitations_come_from_the_results():
    results = {"metrics": {"success": 0.1}, "notes": "Fails the paper's 0.5 target."}
    text = cards.render_card("base_model", repo_id="me/base", results=results)
    assert "### Limitations\n\nFails the paper's 0.5 target." in text
    assert "Limitations" not in cards.render_card("base_model", results={"success": 0.1})


# --------------------------------------------------------------------------- push and pull CLI


def test_push_dry_run_writes_the_upload_folder(fake_hub, hub_repos, tmp_path, capsys):
    run = tmp_path / "run"
    save_checkpoint(hub_repos["b"], run / "model")
    (run / "config.json").write_text(json.dumps({"data": "online:pretraining", "steps": 7}))
    results = {"env_id": "GridPinpad-v0", "metrics": {"success_rate": {"mean": 0.75, "std": 0.1}}}
    (tmp_path / "eval.json").write_text(json.dumps(results))
    out = tmp_path / "upload"
    argv = ["push", str(run / "model"), "--repo-id", "me/tiny", "--dry-run", str(out)]
    assert cli([*argv, "--eval-json", str(tmp_path / "eval.json")]) == 0
    assert "nothing was uploaded" in capsys.readouterr().out
    names = {"config.json", "model.safetensors", "README.md", "results.json"}
    assert {p.name for p in out.iterdir()} == names
    for f in ("config.json", "model.safetensors"):
        assert (out / f).read_bytes() == (run / "model" / f).read_bytes()
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "internal-rl-gym"
    assert {"GridPinpad-v0", "reinforcement-learning", "deep-reinforcement-learning"} <= set(
        card.data.tags
    )
    (result,) = card.data.eval_results
    assert (result.metric_type, result.metric_value) == ("success_rate", "0.75 +/- 0.10")
    assert result.dataset_type == "GridPinpad-v0"
    assert 'load_base_model("me/tiny")' in card.text and "Data: online:pretraining" in card.text
    assert "--steps 7" in card.text  # the training command, rebuilt from the run's config
    with pytest.raises(SystemExit, match="not empty"):
        cli(argv)

    # what would be uploaded is loadable from the Hub, and `pull` fetches all of it
    commit = fake_hub.add_repo("me/tiny", out)
    cache = tmp_path / "pulled"
    assert cli(["pull", "me/tiny", "--cache-dir", str(cache), "--endpoint", fake_hub.url]) == 0
    printed = Path(capsys.readouterr().out.strip())
    assert printed == cache / "models--me--tiny" / "snapshots" / commit
    assert {p.name for p in printed.iterdir()} == names
    again = load_base_model("me/tiny", cache_dir=cache, local_files_only=True)
    assert model_fingerprint(again) == model_fingerprint(hub_repos["b"])


def test_a_fine_tunes_card_takes_its_size_from_the_model_not_the_runs_preset(tmp_path):
    """``pretrain --init-from`` ignores the size flags, so the card must not show the preset
    they default to. Mutant: the run's ``preset`` shown."""
    from agents.hub_commands import package_checkpoint

    run = tmp_path / "run"
    model = BaseModel.from_config(ANT_CPU_PRESET.replace(obs_dim=5, action_dim=2, n_layers=1))
    save_checkpoint(model, run / "model")
    flags = {"preset": "grid-cpu", "action_components": 1, "steps": 7}
    (run / "config.json").write_text(json.dumps({**flags, "init_from": "ant-transformer"}))
    package_checkpoint(run / "model", tmp_path / "out", repo_id="me/ft")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| size preset | grid-cpu" not in card and '"grid-cpu"' not in card
    assert '| init_from | `"ant-transformer"` |' in card and "| steps | `7` |" in card
    (run / "config.json").write_text(json.dumps(flags))  # trained from scratch: its preset
    package_checkpoint(run / "model", tmp_path / "out2", repo_id="me/ft")
    assert "| size preset | grid-cpu" in (tmp_path / "out2" / "README.md").read_text()


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (ANT_CPU_PRESET.replace(arch="transformer"), "`ant-cpu` sizes with `--arch transformer`"),
        (ANT_CPU_PRESET, "`ant-cpu` (CPU size)"),
        (GRID_CPU_PRESET, "`grid-cpu` (CPU size)"),
        (GRID_CPU_PRESET.replace(d_model=96), "custom (d_model=96"),
    ],
)
def test_a_cards_size_preset_is_the_envs_own(config, expected):
    """grid-cpu and ant-cpu share their sizes, so an ant transformer (`--preset ant-cpu --arch
    transformer`) must not read as grid-cpu. Mutant: grid presets tried first."""
    assert cards._guess_preset(config.to_dict()).startswith(expected)


def test_push_uploads_one_folder_with_hfapi(hub_repos, tmp_path):
    from agents.hub_commands import PushConfig, push

    class RecordingApi:
        def __init__(self):
            self.calls = []

        def create_repo(self, repo_id, **kw):
            self.calls.append(("create_repo", repo_id, kw))

        def create_branch(self, repo_id, **kw):
            self.calls.append(("create_branch", repo_id, kw))

        def upload_folder(self, **kw):
            files = sorted(p.name for p in Path(kw["folder_path"]).iterdir())
            self.calls.append(("upload_folder", kw["repo_id"], kw["revision"], files))
            return type("Info", (), {"commit_url": "http://127.0.0.1/me/tiny/commit/1"})()

    save_checkpoint(hub_repos["a"], tmp_path / "ckpt")
    api = RecordingApi()
    cfg = PushConfig(str(tmp_path / "ckpt"), repo_id="me/tiny", revision="v1", private=True)
    assert push(cfg, api=api) == "http://127.0.0.1/me/tiny/commit/1"
    assert api.calls == [
        ("create_repo", "me/tiny", {"repo_type": "model", "private": True, "exist_ok": True}),
        ("create_branch", "me/tiny", {"branch": "v1", "repo_type": "model", "exist_ok": True}),
        ("upload_folder", "me/tiny", "v1", ["README.md", "config.json", "model.safetensors"]),
    ]


@pytest.mark.slow
def test_sb3_policy_push_and_load_from_hub(fake_hub, tmp_path, capsys):
    from stable_baselines3 import PPO

    policy = PPO("MlpPolicy", "CartPole-v1", n_steps=16, batch_size=16, device="cpu", seed=0)
    policy.save(tmp_path / "model.zip")
    curve = {"config": {"env_id": "CartPole-v1", "episodes": 10}, "seconds": 3.0}  # train's
    results = {"mean_reward": 9.5, "std_reward": 1.5, **curve}
    (tmp_path / "eval.json").write_text(json.dumps(results))
    out = tmp_path / "upload"
    argv = ["push", "--policy", str(tmp_path / "model.zip"), "--env-id", "CartPole-v1"]
    argv += ["--repo-id", "sb3/ppo-CartPole-v1", "--eval-json", str(tmp_path / "eval.json")]
    assert cli([*argv, "--dry-run", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"ppo-CartPole-v1.zip", "README.md", "results.json"}
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "stable-baselines3"
    assert {"CartPole-v1", "stable-baselines3", "reinforcement-learning"} <= set(card.data.tags)
    ((metric, value),) = [(e.metric_type, e.metric_value) for e in card.data.eval_results]
    assert (metric, value) == ("mean_reward", "9.50 +/- 1.50")
    assert "internal-rl train \\\n    --env-id CartPole-v1 \\\n    --episodes 10" in card.text
    assert json.loads((out / "results.json").read_text())["env_id"] == "CartPole-v1"

    fake_hub.add_repo("sb3/ppo-CartPole-v1", out)
    n_requests = len(fake_hub.requests)
    with pytest.raises(CheckpointError, match="pickled Python objects.*trust_remote_code=True"):
        load_policy_from_hub("sb3/ppo-CartPole-v1", **hub(fake_hub, tmp_path))
    assert len(fake_hub.requests) == n_requests  # refused before downloading anything
    loaded = load_policy_from_hub(
        "sb3/ppo-CartPole-v1", trust_remote_code=True, device="cpu", **hub(fake_hub, tmp_path)
    )
    assert isinstance(loaded, PPO)
    for k, v in policy.policy.state_dict().items():
        torch.testing.assert_close(loaded.policy.state_dict()[k], v, atol=0, rtol=0)
    cache = tmp_path / "pulled"
    argv = ["pull", "sb3/ppo-CartPole-v1", "--cache-dir", str(cache), "--endpoint", fake_hub.url]
    assert cli(argv) == 0
    files = {p.name for p in Path(capsys.readouterr().out.splitlines()[-1]).iterdir()}
    assert files == {"ppo-CartPole-v1.zip", "README.md", "results.json"}


def test_push_refuses_a_broken_checkpoint(tmp_path):
    save_checkpoint(tiny_base(0), tmp_path / "ckpt")
    (tmp_path / "ckpt" / "model.safetensors").write_bytes(b"not safetensors")
    argv = ["push", str(tmp_path / "ckpt"), "--repo-id", "me/x", "--dry-run", str(tmp_path / "o")]
    with pytest.raises(SystemExit, match="corrupted"):
        cli(argv)
    assert not (tmp_path / "o").exists()


def test_weights_file_is_plain_safetensors(tmp_path):
    save_checkpoint(tiny_base(0), tmp_path / "ckpt")
    tensors = load_file(tmp_path / "ckpt" / "model.safetensors")
    assert set(tensors) == set(tiny_base(0).state_dict())


def test_control_layer_and_oracle_controllers_round_trip_through_the_hub(fake_hub, tmp_path):
    """A base model's control_layer and the subgoal controllers for it survive publish +
    download, and the oracle env built from Hub ids steers at that layer."""
    import gymnasium as gym

    import internal_rl_gym  # noqa: F401
    from internal_rl_gym.hub import load_subgoal_controllers
    from tests.conftest import (
        build_tiny_grid_models,
        tiny_subgoal_controllers,
        with_control_layer,
    )

    base = with_control_layer(build_tiny_grid_models()[0], 2)
    save_checkpoint(base, tmp_path / "base")
    save_checkpoint(tiny_subgoal_controllers(base, layer=2), tmp_path / "ctrl")
    fake_hub.add_repo("test-hub/control-base", tmp_path / "base")
    fake_hub.add_repo("test-hub/control-oracle", tmp_path / "ctrl")
    kw = hub(fake_hub, tmp_path)
    loaded = load_base_model("test-hub/control-base", **kw)
    assert loaded.control_layer == 2
    assert load_subgoal_controllers("test-hub/control-oracle", base_model=loaded, **kw).layer == 2
    env = gym.make(
        "InternalControl-Pinpad-Oracle-v0",
        base_model="test-hub/control-base",
        metacontroller="test-hub/control-oracle",
        hub_kwargs=kw,
    )
    assert env.unwrapped._core.layer == 2
