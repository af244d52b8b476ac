"""The committed Fig. 8 comparison: `internal-rl compare` on the two held-out three-pair tasks,
3 seeds, 6000 episodes per run (see agents/compare.py for the four methods).

    python benchmarks/internal_rl_learning.py [more `internal-rl compare` options]

Writes ``benchmarks/results/internal_rl_learning.json`` and ``.png``; runs are kept under
``runs/internal_rl_learning`` and reused, so a stopped benchmark resumes.
"""

from __future__ import annotations

import sys

from internal_rl_agents.cli import main

COMMITTED = [
    "compare",
    "--tasks", "0-1-2-3-4-5", "2-3-4-5-6-7",
    "--seeds", "0", "1", "2",
    "--episodes", "6000",
    "--runs", "runs/internal_rl_learning",
    "--out", "benchmarks/results/internal_rl_learning",
]  # fmt: skip

if __name__ == "__main__":
    sys.exit(main(COMMITTED + sys.argv[1:]))
