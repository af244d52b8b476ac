"""The scripts in examples/ run (tiny settings, tiny checkpoints, a loopback fake Hub)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, *args: str, env: dict | None = None) -> str:
    full_env = {**os.environ, **(env or {})}
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=full_env,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_quickstart(tiny_checkpoints):
    text = run(
        "quickstart.py",
        "--base-model",
        tiny_checkpoints["base_model"],
        "--metacontroller",
        tiny_checkpoints["metacontroller"],
    )
    assert "success=True" in text and "abstract step 0" in text


def test_custom_task(tiny_checkpoints):
    text = run(
        "custom_task.py",
        "--base-model",
        tiny_checkpoints["base_model"],
        "--metacontroller",
        tiny_checkpoints["metacontroller"],
        "--timesteps",
        "16",
        "--n-envs",
        "2",
        "--n-steps",
        "8",
    )
    assert "task 2-3-4-5-6-7" in text


def test_own_base_model(tmp_path):
    text = run("own_base_model.py", "--steps", "3", "--d-model", "16", "--out", str(tmp_path / "b"))
    assert (tmp_path / "b" / "model.safetensors").is_file() and "one abstract action" in text


def test_load_from_hub(fake_hub, tiny_checkpoints, tmp_path):
    fake_hub.add_repo("example/base", tiny_checkpoints["base_model"])
    fake_hub.add_repo("example/meta", tiny_checkpoints["metacontroller"])
    env = {"HF_ENDPOINT": fake_hub.url, "HF_HUB_CACHE": str(tmp_path / "cache")}
    text = run(
        "load_from_hub.py",
        "--base-model",
        "example/base",
        "--metacontroller",
        "example/meta",
        env=env,
    )
    assert "controls layer 1" in text
    text = run(
        "load_from_hub.py",
        "--base-model",
        "example/base",
        "--metacontroller",
        "example/meta",
        "--offline",
        env={**env, "HF_HUB_OFFLINE": "1"},
    )
    assert "first observation" in text


def test_record_video(tmp_path):
    """examples/record_video.py films an expert episode; without moviepy it says what to install."""
    import importlib.util

    out = tmp_path / "videos"
    if importlib.util.find_spec("moviepy") is None:
        proc = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "record_video.py"), "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
        )
        assert proc.returncode != 0 and "pip install moviepy" in proc.stderr
        return
    text = run("record_video.py", "--out", str(out), "--episodes", "2")
    assert "episode 1:" in text and "success=True" in text
    assert len(list(out.glob("GridPinpad-v0-episode-*.mp4"))) == 2
