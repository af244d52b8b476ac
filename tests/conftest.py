"""Shared fixtures. Every test runs with a private Hugging Face cache and one torch thread."""

from __future__ import annotations

import os

# Headless rendering for the MuJoCo tests, set before anything imports mujoco, so that
# `python -m pytest` works as the README says on a machine without a display.
os.environ.setdefault("MUJOCO_GL", "egl")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_hf_cache(tmp_path, monkeypatch):
    """Never touch the user's ~/.cache/huggingface; never phone home."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf_home" / "hub"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    torch.set_num_threads(1)


def tiny_metacontroller(base, rank: int):
    """A tiny metacontroller at layer 1 of a d_model-16 ``base``, recording its fingerprint."""
    from internal_rl_gym.hub import model_fingerprint
    from internal_rl_gym.models import Metacontroller

    return Metacontroller(
        d_model=16,
        layer=1,
        n_z=4,
        n_h=8,
        n_s=8,
        rank=rank,
        base_model_name=base.config.name,
        base_model_fingerprint=model_fingerprint(base),
    )


def build_tiny_grid_models(switch_bias: float = 0.0, seed: int = 0):
    """A tiny GridPinpad base model and metacontroller (random weights, large enough to matter)."""
    from internal_rl_gym.models import BaseModel

    torch.manual_seed(seed)
    base = BaseModel(
        arch="transformer",
        obs_dim=637,
        n_actions=4,
        d_model=16,
        n_layers=2,
        n_heads=2,
        d_head=8,
        d_mlp=32,
        obs_encoder="grid_cells",
        cell_features=4,
        obs_loss="bce",
        max_len=128,
        init_scale=1.0,
        name="tiny-grid",
    )
    meta = tiny_metacontroller(base, rank=4)
    with torch.no_grad():
        meta.hyper[-1].weight.mul_(30.0)  # strong controllers: z visibly changes behaviour
        meta.switch_net[-1].bias.fill_(switch_bias)
    return base.eval(), meta.eval()


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    """Tiny grid checkpoints on disk, as InternalControl kwargs (local directories)."""
    root = tmp_path_factory.mktemp("tiny_ckpt")
    base, meta = build_tiny_grid_models()
    base.save_pretrained(root / "base")
    meta.save_pretrained(root / "meta")
    return {"base_model": str(root / "base"), "metacontroller": str(root / "meta")}


@pytest.fixture(scope="session")
def tiny_oracle(tiny_checkpoints, tmp_path_factory):
    """Ground-truth subgoal controllers for the tiny grid base model (the oracle's
    InternalControl kwargs: ``base_model`` and ``metacontroller`` = the controllers)."""
    from internal_rl_gym.hub import load_base_model

    path = tmp_path_factory.mktemp("tiny_oracle") / "controllers"
    base = load_base_model(tiny_checkpoints["base_model"])
    tiny_subgoal_controllers(base).save_pretrained(path)
    return {"base_model": tiny_checkpoints["base_model"], "metacontroller": str(path)}


def with_control_layer(base, layer: int):
    """The same weights, recording ``control_layer=layer``."""
    from internal_rl_gym.models import BaseModel

    copy = BaseModel(**{**base.config.to_dict(), "control_layer": layer})
    copy.load_state_dict(base.state_dict())
    return copy.eval()


@pytest.fixture(scope="session")
def tiny_ant_routes(tmp_path_factory):
    """A tiny transformer base model for AntPinpadRoutes-v1 (53 observations, a 2-component
    mixture head, attention window 8: the shipped ant model's form), a metacontroller and
    ground-truth subgoal controllers for it (InternalControl kwargs; ``"controllers"``)."""
    from internal_rl_gym.models import BaseModel

    root = tmp_path_factory.mktemp("tiny_ant_routes")
    torch.manual_seed(0)
    base = BaseModel(
        arch="transformer", obs_dim=53, action_dim=8, action_type="continuous", d_model=16,
        n_layers=2, n_heads=2, d_mlp=32, max_len=512, attention_window=8, action_components=2,
        name="tiny-ant-routes",
    )  # fmt: skip
    base.save_pretrained(root / "base")
    tiny_metacontroller(base, rank=0).save_pretrained(root / "meta")
    tiny_subgoal_controllers(base).save_pretrained(root / "controllers")
    return {
        "base_model": str(root / "base"),
        "metacontroller": str(root / "meta"),
        "controllers": str(root / "controllers"),
    }


@pytest.fixture(scope="session")
def tiny_for_spec(tiny_checkpoints, tiny_ant_routes, tiny_oracle):
    """``spec -> {"base_model", "metacontroller"}``: tiny local checkpoints that fit a registered
    InternalControl id's task env, the oracle's ground-truth controllers for an oracle id."""
    grid = {**tiny_checkpoints, "controllers": tiny_oracle["metacontroller"]}
    by_env = {"GridPinpad-v0": grid, "AntPinpadRoutes-v1": tiny_ant_routes}

    def kwargs(spec) -> dict[str, str]:
        env_id = spec.kwargs.get("env_id") or "GridPinpad-v0"  # InternalControl-v0: the grid
        if env_id not in by_env:
            raise KeyError(f"{spec.id} runs {env_id}: add tiny checkpoints for it to tiny_for_spec")
        tiny = by_env[env_id]
        oracle = "subgoal-controllers" in str(spec.kwargs.get("metacontroller"))
        return {
            "base_model": tiny["base_model"],
            "metacontroller": tiny["controllers"] if oracle else tiny["metacontroller"],
        }

    return kwargs


def tiny_subgoal_controllers(base, layer: int = 1):
    """Ground-truth subgoal controllers for a tiny ``base`` (random, strong weights)."""
    from internal_rl_gym.hub import model_fingerprint
    from internal_rl_gym.models import SubgoalControllers

    torch.manual_seed(1)
    ctrl = SubgoalControllers(
        base.d_model,
        4,
        rank=4,
        layer=layer,
        base_model_name=base.config.name,
        base_model_fingerprint=model_fingerprint(base),
    )
    with torch.no_grad():
        ctrl.a.mul_(300.0)  # strong enough that the subgoal picked visibly changes behaviour
    return ctrl.eval()


@pytest.fixture(autouse=True)
def _isolated_hf_constants(tmp_path, monkeypatch):
    """huggingface_hub reads HF_HOME & co. when it is imported (before the fixture above can
    set them), so point its already-read constants at the private cache too, and never send a
    real token (not even to the loopback fake Hub)."""
    from huggingface_hub import constants

    home = tmp_path / "hf_home"
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_ASSETS_CACHE", str(home / "assets"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.delenv("HF_TOKEN", raising=False)


@pytest.fixture(scope="session")
def fake_hub():
    """A loopback fake of the Hub's download endpoint (``tests/fake_hub.py``), shared by the
    session: ``fake_hub.url`` is the ``endpoint=``; ``fake_hub.add_repo(repo_id, folder,
    commit=None)`` publishes a commit (use repo ids unique to your test)."""
    import os

    try:
        from tests.fake_hub import FakeHub
    except ImportError:  # tests/ is not a package
        from fake_hub import FakeHub

    saved = {k: os.environ.get(k) for k in ("NO_PROXY", "no_proxy")}
    for k in saved:  # proxies must never see loopback traffic
        os.environ[k] = "127.0.0.1,localhost"
    hub = FakeHub().start()
    try:
        yield hub
    finally:
        hub.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def as_if_saved_on_a_gpu(path) -> None:
    """Relabel every tensor of a ``torch.save`` file as ``cuda:0``, as a GPU run writes it, so
    that a CPU-only test can check such files still load (the location string is pickled once
    and memoised)."""
    import zipfile

    cpu, cuda = b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0"
    with zipfile.ZipFile(path) as z:
        entries = [(info, z.read(info.filename)) for info in z.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for info, data in entries:
            if info.filename.endswith("/data.pkl"):
                assert data.count(cpu) == 1, "unexpected torch.save layout"
                data = data.replace(cpu, cuda)
            z.writestr(info, data)


@pytest.fixture(scope="session")
def tiny_ant(tmp_path_factory):
    """A tiny Hawk AntPinpad base model and metacontroller on disk (InternalControl kwargs) and
    a small clean (mean-expert) dataset under ``"data"``."""
    from internal_rl_gym.envs.ant_expert import collect_ant_demonstrations
    from internal_rl_gym.models import BaseModel

    root = tmp_path_factory.mktemp("tiny_ant")
    torch.manual_seed(0)
    base = BaseModel(
        arch="hawk",
        obs_dim=41,
        action_dim=8,
        action_type="continuous",
        d_model=16,
        n_layers=2,
        n_heads=2,
        d_mlp=32,
        name="tiny-ant",
    )
    base.save_pretrained(root / "base")
    tiny_metacontroller(base, rank=0).save_pretrained(
        root / "meta"
    )  # full rank, as the paper's ant
    data = collect_ant_demonstrations(10, "pretraining", seed=0, stochastic=False)
    data.save(root / "clean.npz")
    return {
        "base_model": str(root / "base"),
        "metacontroller": str(root / "meta"),
        "data": str(root / "clean.npz"),
    }


def tiny_mixture_ant(components: int = 3):
    """A tiny Hawk AntPinpad base model with a Gaussian mixture action head, large initial
    weights so that its components lie far apart (a wrong pick shows)."""
    from internal_rl_gym.models import BaseModel

    torch.manual_seed(0)
    return BaseModel(
        arch="hawk",
        obs_dim=41,
        action_dim=8,
        action_type="continuous",
        action_components=components,
        d_model=16,
        n_layers=2,
        n_heads=2,
        d_mlp=32,
        init_scale=1.0,
    ).eval()
