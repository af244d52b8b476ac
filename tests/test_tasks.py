"""The paper's task splits (Tables A1, A2) and the task= argument."""

import numpy as np
import pytest

from internal_rl_gym import tasks


def test_grid_pretraining_tasks_follow_the_rule():
    rule = {tasks.grid_task_from_subgoals(s) for s in tasks.subgoal_sequences()}
    assert len(tasks.GRID_PRETRAINING_TASKS) == 16
    assert set(tasks.GRID_PRETRAINING_TASKS) == rule


def test_ant_pretraining_tasks_follow_the_rule():
    assert len(tasks.ANT_PRETRAINING_TASKS) == 16
    assert set(tasks.ANT_PRETRAINING_TASKS) == set(tasks.subgoal_sequences())


def test_post_tasks_use_only_unseen_plus_one_transitions():
    grid_subgoals = [tasks.grid_subgoal_of_colour(c) for c in tasks.GRID_POST_TASK[::2]]
    assert grid_subgoals == [0, 1, 2, 3, 0, 1]
    for seq in (grid_subgoals, list(tasks.ANT_POST_TASK)):
        assert all((b - a) % 4 == 1 for a, b in zip(seq, seq[1:]))
    pretraining_transitions = {
        (b - a) % 4 for s in tasks.subgoal_sequences() for a, b in zip(s, s[1:])
    }
    assert 1 not in pretraining_transitions


@pytest.mark.parametrize(
    "task, expected",
    [
        ((0, 1, 2), (0, 1, 2)),
        ([3, 2], (3, 2)),
        ("0-1-2-3", (0, 1, 2, 3)),
        ("4, 5", (4, 5)),
        (np.array([7, 6]), (7, 6)),
    ],
)
def test_resolve_task_accepts_sequences(task, expected):
    s = tasks.resolve_task(task, n_colours=8, pretraining=(), post=(0,))
    assert s.fixed and s.tasks[0] == expected


def test_resolve_task_named_sets():
    s = tasks.resolve_task(
        "pretraining", n_colours=8, pretraining=tasks.GRID_PRETRAINING_TASKS, post=(0,)
    )
    assert not s.fixed and len(s.tasks) == 16
    rng = np.random.default_rng(0)
    assert {s.sample(rng) for _ in range(500)} == set(tasks.GRID_PRETRAINING_TASKS)
    assert tasks.resolve_task("post", n_colours=8, pretraining=(), post=(1, 2)).tasks == ((1, 2),)


@pytest.mark.parametrize(
    "task, match",
    [
        ((), "empty"),
        ("", "empty"),
        ((0, 9), "outside 0..7"),
        ((-1,), "outside"),
        ("banana", "Unknown task"),
        ((0.5, 1), "integer"),
        ((True, False), "integer"),
    ],
)
def test_resolve_task_rejects_bad_input(task, match):
    with pytest.raises(ValueError, match=match):
        tasks.resolve_task(task, n_colours=8, pretraining=(), post=(0,))
