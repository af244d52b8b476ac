"""Atomic writes (internal_rl_gym._io): a file or folder appears whole or not at all."""

from __future__ import annotations

import os

import pytest

from internal_rl_gym._io import atomic_directory, atomic_write_file


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("old")

    def fail(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write_file(path, fail)
    assert path.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["a.json"]
    atomic_write_file(path, lambda tmp: open(tmp, "w").write("new"))  # noqa: SIM115
    assert path.read_text() == "new" and sorted(os.listdir(tmp_path)) == ["a.json"]
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_folder_is_replaced_whole_and_a_failed_one_vanishes(tmp_path):
    out = tmp_path / "ckpt"
    with atomic_directory(out) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError), atomic_directory(out) as tmp:
        (tmp / "b").write_text("2")
        raise RuntimeError("crash")
    assert sorted(p.name for p in out.iterdir()) == ["a"]
    with atomic_directory(out) as tmp:
        (tmp / "c").write_text("3")
    assert sorted(p.name for p in out.iterdir()) == ["c"]
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]  # no temp or old folders left
    with pytest.raises(OSError), atomic_directory(out, replace=False) as tmp:
        (tmp / "d").write_text("4")  # a non-empty folder is not replaced without replace
    assert sorted(p.name for p in out.iterdir()) == ["c"]


def test_json_reports_are_strict_json_with_null_for_non_finite_numbers(tmp_path):
    import json

    import numpy as np

    from agents.common import atomic_write_json

    report = {
        "probe": [0.5, float("nan")],
        "inf": np.float32("inf"),
        "arr": np.array([1.0, -np.inf]),
    }
    path = atomic_write_json(tmp_path / "r.json", report)

    def refuse(name: str):
        raise ValueError(f"non-standard JSON constant {name}")

    loaded = json.loads(path.read_text(), parse_constant=refuse)
    assert loaded == {"probe": [0.5, None], "inf": None, "arr": [1.0, None]}
