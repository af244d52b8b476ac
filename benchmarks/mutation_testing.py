"""Mutation testing of the core rule modules with mutmut: do the tests fail when the code is wrong?

    pip install -e ".[mutation]"    # mutmut 3.8.1: an optional extra, not in [test]
    python benchmarks/mutation_testing.py                          # every target, default samples
    python benchmarks/mutation_testing.py --target grid_core --sample 0   # all of its mutants
    python benchmarks/mutation_testing.py --list                   # the targets, nothing run

mutmut (https://github.com/boxed/mutmut) rewrites each function of a target module into many
mutants (an operator, a constant, a keyword argument or a returned value changed, a call's
argument dropped, ...) and runs, for each, the tests that cover that function, in forked
processes with a CPU-time limit. A mutant is *killed* when a test fails, *survives* when all
pass; ``no tests`` means no selected test calls the function.

mutmut runs the tests in this interpreter, so it must be importable here: installed into the
project's environment (the extra ``[mutation]``), or in a folder given by ``--mutmut-path``
(``pip install --target DIR "mutmut==3.8.1"``). A ``mutmut`` command of another environment
(pipx, a tool venv) cannot import the project's dependencies and is not used.

Each target runs in its own export of a commit (``git archive HEAD``; ``--worktree``: the
working tree's tracked and untracked, not ignored files instead) in a temporary folder, never
in the working tree, with its mutmut settings appended to the export's pyproject.toml. The
targets (``TARGETS``): the grid's rules (``internal_rl_gym/envs/grid_core.py``), InternalControl's
front ends (``internal_rl_gym/internal_control.py``) and its engine
(``internal_rl_gym/internal_control_core.py``), and pretraining's resume path in
``agents/pretrain.py``, each with a fast test subset. ``--sample N`` (seeded by ``--seed``)
tests N mutants drawn from a target's mutants instead of all of them.

The result (counts, score = killed / (killed + survived + no tests + suspicious), where
timeouts count as killed, the survivors' diffs, the command and the commit) goes to
``--out`` (``benchmarks/results/mutation_score.json``). ``docs/mutation_testing.md`` says why
the remaining survivors live. Not part of the pytest run.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MUTMUT_VERSION = "3.8.1"  # mutant names and result files are this version's


@dataclass(frozen=True)
class Target:
    """A module to mutate, the tests to run against it, and which of its functions."""

    source: str
    tests: list[str]
    pytest_args: list[str] = field(default_factory=list)
    #: fnmatch patterns over mutmut's function names (``x_fn``, ``xǁClassǁmethod``)
    functions: list[str] = field(default_factory=lambda: ["*"])
    sample: int = 0  # default --sample (0 = every mutant)

    @property
    def module(self) -> str:
        return self.source.removesuffix(".py").replace("/", ".")


TARGETS: dict[str, Target] = {
    "grid_core": Target(
        "internal_rl_gym/envs/grid_core.py",
        ["tests/test_grid_core.py", "tests/test_grid_pinpad.py", "tests/test_grid_expert.py"],
    ),
    "internal_control": Target(
        "internal_rl_gym/internal_control.py",
        ["tests/test_internal_control.py", "tests/test_internal_control_options.py"],
        # subprocess VecEnvs and PPO runs: slow, and they check plumbing, not the rules. The
        # torch-threads test sets several threads, which hangs a forked child (OpenMP after fork)
        ["-k", "not test_pickle_and_sb3_vec_envs and not test_stock_ppo_runs and not torch_thread"],
        sample=200,
    ),
    "internal_control_core": Target(
        "internal_rl_gym/internal_control_core.py",
        [
            "tests/test_internal_control.py",
            "tests/test_internal_control_options.py",
            "tests/test_step_context.py",
            "tests/test_oracle.py",
        ],
        # the engine (reward sum, visited_colours, switching gate, step-count feature, batched
        # rows, oracle switching); the same exclusions as internal_control (-k matches test
        # ids too: a parametrized case whose id says "torch_thread" is left out as well)
        ["-k", "not test_pickle_and_sb3_vec_envs and not test_stock_ppo_runs and not torch_thread"],
        sample=200,
    ),
    "pretrain_resume": Target(
        "agents/pretrain.py",
        ["tests/test_pretrain_resume.py", "tests/test_pretrain.py"],
        # not the stop-signal tests: signals do not reach mutmut's forked test processes
        # (test_pretrain_resume.py requests its stops without a signal); the --data-workers check
        [
            "-k",
            "test_pretrain_resume or resume or diverged or same_seed_same_weights"
            " or data_workers_need_online_data",
        ],
        # where a run's state is saved, found and restored (and the loop that resumes)
        ["x_pretrain", "x__train", "x__checkpoint_if_finite", "x_save_checkpoint"],
        sample=120,
    ),
}

KILLED, SURVIVED, NO_TESTS, TIMEOUT = "killed", "survived", "no tests", "timeout"
_STATUS = {1: KILLED, 3: KILLED, 0: SURVIVED, 5: NO_TESTS, 33: NO_TESTS, 34: "skipped"}
_STATUS.update({c: TIMEOUT for c in (36, -24, 24, 152, 255)})
_STATUS.update({37: "caught by type check", -11: "segfault", -9: "segfault"})


def missing_mutmut(mutmut_path: str) -> str:
    """What to do when this interpreter cannot import mutmut."""
    where = f"in --mutmut-path {mutmut_path} or " if mutmut_path else ""
    fix = (
        f"mutmut is not importable {where}in {sys.executable}'s environment: install it there "
        'with pip install -e ".[mutation]", or into a folder with pip install --target DIR '
        f'"mutmut=={MUTMUT_VERSION}" and pass --mutmut-path DIR.'
    )
    elsewhere = shutil.which("mutmut")
    if elsewhere:  # mutmut runs the tests in its own interpreter: it needs this environment's
        fix += f" (The mutmut command on PATH, {elsewhere}, belongs to another environment.)"
    return fix


def status(exit_code: int | None) -> str:
    """mutmut's verdict for a mutant's exit code (mutmut.stats.status_by_exit_code)."""
    return "not checked" if exit_code is None else _STATUS.get(exit_code, "suspicious")


def score(counts: dict[str, int]) -> float | None:
    """Killed (timeouts included) over the mutants that had a verdict."""
    caught = counts.get(KILLED, 0) + counts.get(TIMEOUT, 0)
    judged = caught + sum(counts.get(k, 0) for k in (SURVIVED, NO_TESTS, "suspicious"))
    return caught / judged if judged else None


# --------------------------------------------------------------------------------------------


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout


def export(dest: Path, worktree: bool) -> str:
    """Copy the package, the tests and pyproject.toml into ``dest``; returns what was copied
    (a commit sha, or ``"<sha>+worktree"``)."""
    paths = ["internal_rl_gym", "agents", "tests", "pyproject.toml"]
    sha = _git("rev-parse", "HEAD").strip()
    dest.mkdir(parents=True)
    if not worktree:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", "HEAD", *paths], cwd=REPO, check=True,
            capture_output=True,
        ).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        return sha
    files = _git("ls-files", "--cached", "--others", "--exclude-standard", *paths).split("\n")
    for f in filter(None, files):
        if (REPO / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            (dest / f).write_bytes((REPO / f).read_bytes())
    return f"{sha}+worktree"


def configure(dest: Path, target: Target) -> None:
    """mutmut's settings, in the export's pyproject.toml (never the repository's)."""
    toml = [
        "\n[tool.mutmut]",
        f"source_paths = [{json.dumps(target.source)}]",
        f"pytest_add_cli_args_test_selection = {json.dumps(target.tests)}",
        f"pytest_add_cli_args = {json.dumps(['-p', 'no:cacheprovider', *target.pytest_args])}",
        'also_copy = ["internal_rl_gym", "agents"]',
        "use_git_change_detection = false",
    ]
    with open(dest / "pyproject.toml", "a") as f:
        f.write("\n".join(toml) + "\n")


def _mutmut(args: list[str], cwd: Path, mutmut_path: str, log=None, **kw):
    """Run the mutmut CLI (importable, or from ``--mutmut-path``) in ``cwd``."""
    boot = (
        "import sys; sys.path.append(sys.argv.pop(1)); sys.argv[0] = 'mutmut'; "
        "from mutmut.__main__ import cli; cli()"
    )
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    env.pop("PYTHONPATH", None)  # the export's code, not another checkout's
    return subprocess.run(
        [sys.executable, "-c", boot, mutmut_path, *args],
        cwd=cwd,
        env=env,
        stdout=log or subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


def mutant_names(dest: Path, target: Target, mutmut_path: str) -> list[str]:
    """Every mutant mutmut makes of ``target`` whose function matches ``target.functions``."""
    code = (
        "import io, json, sys; from pathlib import Path; sys.path.append(sys.argv[1])\n"
        "from mutmut.__main__ import write_all_mutants_to_file\n"
        "from mutmut.utils.format_utils import get_mutant_name\n"
        "p = Path(sys.argv[2])\n"
        "m = write_all_mutants_to_file(out=io.StringIO(), source=p.read_text(), filename=p)\n"
        "print(json.dumps([get_mutant_name(p, n) for n in m.mutant_names]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, mutmut_path, target.source],
        cwd=dest, check=True, capture_output=True, text=True,
    )  # fmt: skip
    names = json.loads(out.stdout.strip().splitlines()[-1])
    patterns = [f"{target.module}.{f}__mutmut_*" for f in target.functions]
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def run_target(name: str, target: Target, args: argparse.Namespace, root: Path) -> dict:
    dest = root / name
    exported = export(dest, args.worktree)
    configure(dest, target)
    in_scope = mutant_names(dest, target, args.mutmut_path)
    n = target.sample if args.sample is None else args.sample
    chosen = (
        sorted(random.Random(args.seed).sample(in_scope, n)) if 0 < n < len(in_scope) else in_scope
    )
    print(f"{name}: {len(chosen)} of {len(in_scope)} mutants of {target.source}", flush=True)
    t0 = time.time()
    run = ["run", "--max-children", str(args.max_children), *chosen]
    with open(dest / "mutmut.log", "w") as log:
        done = _mutmut(run, dest, args.mutmut_path, log)
    seconds = time.time() - t0
    meta = dest / "mutants" / f"{target.source}.meta"
    if done.returncode != 0 or not meta.exists():
        tail = (dest / "mutmut.log").read_text()[-3000:]
        raise SystemExit(f"mutmut failed on {name} (exit {done.returncode}); its log ends:\n{tail}")
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    verdicts = {m: status(codes.get(m)) for m in chosen}
    counts: dict[str, int] = {}
    for v in verdicts.values():
        counts[v] = counts.get(v, 0) + 1
    survivors = []
    for m in sorted(k for k, v in verdicts.items() if v in (SURVIVED, NO_TESTS, "suspicious")):
        shown = _mutmut(["show", m], dest, args.mutmut_path).stdout
        diff = [ln for ln in shown.splitlines() if ln[:1] in "+-" and ln[:3] not in ("+++", "---")]
        survivors.append({"mutant": m, "status": verdicts[m], "diff": diff})
    result = {
        **asdict(target),
        "exported": exported,
        "mutants_in_scope": len(in_scope),
        "mutants_tested": len(chosen),
        "counts": dict(sorted(counts.items())),
        "score": score(counts),
        "seconds": round(seconds, 1),
        "survivors": survivors,
    }
    print(f"{name}: {result['counts']}, score {result['score']} ({seconds:.0f}s)", flush=True)
    if args.keep:
        print(f"{name}: kept {dest} (mutmut browse / show / apply there)")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--target", action="append", choices=sorted(TARGETS), help="default: all")
    p.add_argument("--sample", type=int, default=None, help="mutants per target (0 = all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample")
    p.add_argument("--max-children", type=int, default=2, help="mutants tested in parallel")
    p.add_argument("--worktree", action="store_true", help="test the working tree, not HEAD")
    p.add_argument("--keep", action="store_true", help="keep the exports (to inspect mutants)")
    p.add_argument(
        "--mutmut-path",
        default="",
        help='a folder holding mutmut (pip install --target DIR "mutmut==3.8.1"); default: the '
        'mutmut of this environment (pip install -e ".[mutation]")',
    )
    p.add_argument("--out", default="benchmarks/results/mutation_score.json")
    p.add_argument("--list", action="store_true", help="print the targets and exit")
    args = p.parse_args(argv)
    names = args.target or list(TARGETS)
    if args.list:
        for n in names:
            print(f"{n}: {json.dumps(asdict(TARGETS[n]))}")
        return 0
    probe = "import sys; sys.path.append(sys.argv[1]); import importlib.metadata as m; "
    probe += "print(m.version('mutmut'))"
    check = subprocess.run(
        [sys.executable, "-c", probe, args.mutmut_path], capture_output=True, text=True
    )
    if check.returncode != 0:
        raise SystemExit(missing_mutmut(args.mutmut_path))
    version = check.stdout.strip()
    deps = subprocess.run([sys.executable, "-c", "import torch, gymnasium, pytest"])
    if deps.returncode != 0:  # mutmut runs the tests with this interpreter
        raise SystemExit(
            f"{sys.executable} cannot import the project's dependencies: run this script with "
            'the Python of the environment that has `pip install -e ".[test]"`.'
        )
    if version != MUTMUT_VERSION:
        print(f"warning: mutmut {version}, this script was written for {MUTMUT_VERSION}")
    t0 = time.time()
    root = Path(tempfile.mkdtemp(prefix="mutation-"))
    try:
        results = {n: run_target(n, TARGETS[n], args, root) for n in names}
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    counts: dict[str, int] = {}
    for r in results.values():
        for k, v in r["counts"].items():
            counts[k] = counts.get(k, 0) + v
    argv_shown = sys.argv[1:] if argv is None else argv
    report = {
        "command": shlex.join(["python", "benchmarks/mutation_testing.py", *argv_shown]),
        "mutmut": version,
        "python": sys.version.split()[0],
        "seconds": round(time.time() - t0, 1),
        "counts": dict(sorted(counts.items())),
        "score": score(counts),
        "targets": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"overall {report['counts']}, score {report['score']}; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
