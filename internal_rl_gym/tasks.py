"""Colours, abstract subgoals and the paper's task splits (paper §A.1-A.2, Tables A1-A2).

A *task* is a sequence of colour indices that must be visited in order. The paper pretrains the
base model on one set of tasks and runs internal RL on a held-out *post-training* task built from
transitions that never occur in pretraining:

* Index the abstract subgoals k in {0, 1, 2, 3}. Every pretraining task is a length-3 sequence of
  subgoals whose consecutive transitions are +2 or -1 (mod 4); there are exactly 16 of them.
* The post-training task uses only +1 transitions (a compositional and, for the grid, a length
  generalisation).

For the grid an abstract subgoal is a *pair* of colours (2k, 2k+1); for the ant it is one colour.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Task = tuple[int, ...]

#: Display names of the grid's 8 colours (also used by the ant's first 4).
COLOUR_NAMES: tuple[str, ...] = (
    "red",
    "orange",
    "yellow",
    "green",
    "cyan",
    "blue",
    "purple",
    "pink",
)
#: RGB of each colour for rendering.
COLOUR_RGB: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (245, 130, 48),
    (255, 225, 25),
    (60, 180, 75),
    (70, 240, 240),
    (0, 130, 200),
    (145, 30, 180),
    (240, 50, 230),
)

N_ABSTRACT_SUBGOALS = 4

# --- gridworld-pinpad ------------------------------------------------------------------------
GRID_N_COLOURS = 8
GRID_SIZE = 7  # the paper's G (§A.1)
GRID_N_WALLS = 4  # the paper's W
#: The grid's abstract subgoals: two consecutive coloured cells (paper Results).
GRID_SUBGOALS: tuple[tuple[int, int], ...] = ((0, 1), (2, 3), (4, 5), (6, 7))
#: Table A1, in the paper's order.
GRID_PRETRAINING_TASKS: tuple[Task, ...] = tuple(
    tuple(int(c) for c in s.split("-"))
    for s in (
        "0-1-4-5-0-1",
        "0-1-4-5-2-3",
        "0-1-6-7-2-3",
        "2-3-0-1-4-5",
        "2-3-6-7-2-3",
        "2-3-6-7-4-5",
        "4-5-0-1-4-5",
        "4-5-0-1-6-7",
        "4-5-2-3-6-7",
        "6-7-2-3-0-1",
        "6-7-2-3-6-7",
        "6-7-4-5-0-1",
        "0-1-6-7-4-5",
        "2-3-0-1-6-7",
        "4-5-2-3-0-1",
        "6-7-4-5-2-3",
    )
)
GRID_POST_TASK: Task = (0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3)

# --- ant-pinpad ------------------------------------------------------------------------------
ANT_N_COLOURS = 4
#: Table A2, in the paper's order. For the ant an abstract subgoal is a single colour.
ANT_PRETRAINING_TASKS: tuple[Task, ...] = tuple(
    tuple(int(c) for c in s.split("-"))
    for s in (
        "0-3-2",
        "1-0-3",
        "2-1-0",
        "3-2-1",
        "0-2-0",
        "0-2-1",
        "0-3-1",
        "1-0-2",
        "1-3-1",
        "1-3-2",
        "2-0-2",
        "2-0-3",
        "2-1-3",
        "3-1-0",
        "3-1-3",
        "3-2-0",
    )
)
ANT_POST_TASK: Task = (0, 1, 2, 3)


def subgoal_sequences(
    length: int = 3, n_subgoals: int = N_ABSTRACT_SUBGOALS, steps: Sequence[int] = (2, -1)
) -> list[tuple[int, ...]]:
    """All subgoal sequences of ``length`` whose consecutive transitions are in ``steps`` (mod n).

    ``subgoal_sequences()`` is the paper's pretraining split; ``steps=(1,)`` gives the +1-only
    sequences from which the post-training task is drawn.
    """
    allowed = {s % n_subgoals for s in steps}
    return [
        seq
        for seq in itertools.product(range(n_subgoals), repeat=length)
        if all((b - a) % n_subgoals in allowed for a, b in zip(seq, seq[1:]))
    ]


def grid_task_from_subgoals(subgoals: Sequence[int]) -> Task:
    """Expand grid subgoals (colour pairs) into a colour sequence: (0, 2) -> (0, 1, 4, 5)."""
    return tuple(c for k in subgoals for c in GRID_SUBGOALS[k])


def grid_subgoal_of_colour(colour: int) -> int:
    """The abstract subgoal (pair index) a grid colour belongs to."""
    return int(colour) // 2


@dataclass(frozen=True)
class TaskSampler:
    """What ``task=`` resolved to: one fixed task, or a set sampled uniformly at each reset."""

    tasks: tuple[Task, ...]
    name: str

    @property
    def fixed(self) -> bool:
        return len(self.tasks) == 1

    def sample(self, rng: np.random.Generator) -> Task:
        if self.fixed:
            return self.tasks[0]
        return self.tasks[int(rng.integers(len(self.tasks)))]


def resolve_task(
    task: str | Sequence[int] | np.ndarray,
    *,
    n_colours: int,
    pretraining: Sequence[Task],
    post: Task,
) -> TaskSampler:
    """Turn a user's ``task=`` argument into a :class:`TaskSampler`.

    Accepts a colour sequence (tuple/list/array of ints, or a string like ``"0-1-2-3"``), or a
    named set: ``"pretraining"`` (one of the paper's pretraining tasks per reset) or ``"post"`` (the
    post-training task). Raises ``ValueError`` naming the problem otherwise.
    """
    if isinstance(task, str):
        name = task.strip().lower()
        if name in ("pretraining", "pretrain"):
            return TaskSampler(tuple(tuple(t) for t in pretraining), "pretraining")
        if name in ("post", "post-training", "posttraining"):
            return TaskSampler((tuple(post),), "post")
        parts = [p for p in task.replace(",", "-").replace(" ", "-").split("-") if p != ""]
        try:
            colours = [int(p) for p in parts]
        except ValueError:
            raise ValueError(
                f"Unknown task {task!r}. Pass a colour sequence such as '0-1-2-3' or (0, 1, 2, 3), "
                "or one of the named sets 'pretraining' and 'post'."
            ) from None
    else:
        try:
            colours = list(np.asarray(task).reshape(-1).tolist())
        except Exception:  # noqa: BLE001 - any unparsable object gets the same message
            raise ValueError(
                f"task must be a colour sequence or a name, got {type(task).__name__}."
            ) from None
        if not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in colours):
            raise ValueError(
                f"task must contain integer colour indices, got {task!r}. "
                "Example: task=(0, 1, 2, 3)."
            )
    if len(colours) == 0:
        raise ValueError("task is empty: give at least one colour, e.g. task=(0, 1).")
    bad = [c for c in colours if not 0 <= c < n_colours]
    if bad:
        raise ValueError(
            f"task {tuple(colours)} has colour(s) {bad} outside 0..{n_colours - 1}: this environment "
            f"has {n_colours} colours."
        )
    seq = tuple(int(c) for c in colours)
    return TaskSampler((seq,), "-".join(map(str, seq)))


def visit(task: Sequence[int], progress: int, colour: int) -> tuple[int, str]:
    """The pinpad rule for entering ``colour`` from another cell with ``progress`` colours of
    ``task`` done: (new progress, outcome), outcome ``"next"`` (the task's next colour),
    ``"success"`` (its last one) or ``"wrong"`` (any other colour; the paper ends the episode).
    The rule of GridPinpad and AntPinpad (the vectorised grid applies it batched)."""
    if colour != task[progress]:
        return progress, "wrong"
    progress += 1
    return progress, "success" if progress == len(task) else "next"


def format_task(task: Sequence[int]) -> str:
    """``(0, 1, 2)`` -> ``"0-1-2"``."""
    return "-".join(str(int(c)) for c in task)
