"""``gymnasium.wrappers.RecordVideo`` writes an .mp4 for every id of the package that renders.

RecordVideo encodes with moviepy (``pip install moviepy``, part of ``gymnasium[other]``), which
is not a dependency of this package: without it these tests are skipped, and a test checks that
the wrapper's error then says what to install.
"""

import importlib.util

import gymnasium as gym
import numpy as np
import pytest

import internal_rl_gym  # noqa: F401

# Every id of the package: all render rgb_array (each test asserts it in the env's metadata).
RENDERING_IDS = sorted(
    env_id
    for env_id, spec in gym.registry.items()
    if isinstance(spec.entry_point, str) and spec.entry_point.startswith("internal_rl_gym")
)
HAS_MOVIEPY = importlib.util.find_spec("moviepy") is not None
SMALL_ANT = {"width": 64, "height": 64}  # MuJoCo frames (default 480x480) would be slow to encode


@pytest.fixture
def make(tiny_for_spec):
    """``gym.make`` with rgb_array rendering; InternalControl ids get tiny local checkpoints."""

    def _make(env_id):
        spec = gym.spec(env_id)
        kw: dict = {"render_mode": "rgb_array"}
        task_env = spec.kwargs.get("env_id", "GridPinpad-v0")
        if spec.entry_point.endswith(":InternalControlEnv"):
            kw.update(tiny_for_spec(spec), max_primitive_steps=5)
            if task_env.startswith("AntPinpad"):
                kw["env_kwargs"] = SMALL_ANT
        elif env_id.startswith("AntPinpad"):
            kw.update(SMALL_ANT)
        return gym.make(env_id, **kw)

    return _make


@pytest.mark.skipif(not HAS_MOVIEPY, reason="RecordVideo needs moviepy (pip install moviepy)")
@pytest.mark.parametrize("env_id", RENDERING_IDS)
def test_record_video_writes_an_mp4(env_id, make, tmp_path):
    env = make(env_id)
    assert "rgb_array" in env.metadata["render_modes"]
    env = gym.wrappers.RecordVideo(
        env, str(tmp_path / "videos"), episode_trigger=lambda episode: True, disable_logger=True
    )
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(8):  # a short episode: until it ends or 8 steps, then close() saves it
        *_, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            break
    env.close()
    videos = list((tmp_path / "videos").glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 1000, videos


@pytest.mark.skipif(not HAS_MOVIEPY, reason="RecordVideo needs moviepy (pip install moviepy)")
def test_recorded_grid_video_has_one_frame_per_step(tmp_path):
    import imageio_ffmpeg  # moviepy's encoder; it can count the frames back

    env = gym.wrappers.RecordVideo(
        gym.make("GridPinpad-v0", task=(0,), render_mode="rgb_array", max_steps=5),
        str(tmp_path / "videos"),
        disable_logger=True,
    )
    env.reset(seed=0)
    steps, done = 0, False
    while not done:  # ends by the horizon at the latest
        *_, terminated, truncated, _ = env.step(steps % 4)
        steps, done = steps + 1, terminated or truncated
    env.close()
    (video,) = (tmp_path / "videos").glob("*.mp4")
    n_frames, _ = imageio_ffmpeg.count_frames_and_secs(str(video))
    assert n_frames == steps + 1  # the reset frame and one per step


@pytest.mark.skipif(HAS_MOVIEPY, reason="moviepy is installed")
def test_without_moviepy_record_video_says_what_to_install(tmp_path):
    env = gym.make("GridPinpad-v0", render_mode="rgb_array")
    with pytest.raises(gym.error.DependencyNotInstalled, match="moviepy"):
        gym.wrappers.RecordVideo(env, str(tmp_path))


def test_every_id_renders_frames_of_one_size(make):
    """RecordVideo stacks the frames of an episode: each must be an RGB uint8 image of a fixed
    size (checked without moviepy)."""
    for env_id in ("GridPinpad-v0", "InternalControl-Pinpad-v0"):
        env = make(env_id)
        env.reset(seed=0)
        shapes = {env.render().shape}
        for _ in range(3):
            *_, terminated, truncated, _ = env.step(env.action_space.sample())
            frame = env.render()
            assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[-1] == 3
            shapes.add(frame.shape)
            if terminated or truncated:
                env.reset()
        assert len(shapes) == 1
