"""Run the benchmarks: `python benchmarks/run.py [--baseline REF] [--rounds N] [NAME ...]` (default: all but
the slow ones). Each prints its figures.

With `--baseline REF` every named benchmark runs side by side on REF (a git commit, checked out into a
temporary worktree with its own benchmarks/ and harness/) and on this tree, alternating A/B for N rounds in
one run, so both meet the same machine load; a speed claim is the two columns of that one run."""
import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
ALL = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
SLOW = {"matrix"}  # the whole node matrix, cold and warm (~35 min): only when named


def _one(name: str) -> None:
    spec = importlib.util.spec_from_file_location(name, HERE / f"bench_{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main()


def _in_tree(tree: Path, name: str) -> str:
    """Run benchmark `name` of `tree` in a fresh interpreter whose `harness` is that tree's (PYTHONPATH
    first: the editable install of this tree is shadowed, console scripts included)."""
    env = dict(os.environ, PYTHONPATH=str(tree) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, str(tree / "benchmarks" / "run.py"), name], cwd=tree, env=env,
                       capture_output=True, text=True)
    out = "\n".join(line for line in p.stdout.splitlines() if not line.startswith(("== ", "benchmarks: ")))
    return out if p.returncode == 0 else f"FAILED (exit {p.returncode}): {(p.stdout + p.stderr)[-800:]}"


def side_by_side(ref: str, names: list[str], rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="am-bench-") as d:
        base = Path(d) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base), ref], check=True)
        try:
            sha = subprocess.run(["git", "-C", str(base), "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True).stdout.strip()
            for name in names:
                if not (base / "benchmarks" / f"bench_{name}.py").exists():
                    print(f"== {name}: not in {ref} ({sha}); this tree only", flush=True)
                    continue
                for r in range(1, rounds + 1):
                    print(f"== {name} round {r}/{rounds}", flush=True)
                    print(f"  baseline {ref} ({sha}): {_in_tree(base, name)}", flush=True)
                    print(f"  this tree:          {_in_tree(ROOT, name)}", flush=True)
        finally:  # whoever adds the worktree removes it
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False)


def main(argv):
    p = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks: {', '.join(ALL)}")
    p.add_argument("--baseline", metavar="REF", help="also run each on this git commit, alternating, in one run")
    p.add_argument("--rounds", type=int, default=2, help="A/B rounds per benchmark with --baseline (default 2)")
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in ALL]
    if unknown:
        sys.exit(f"benchmarks: unknown benchmark '{unknown[0]}'; known: {', '.join(ALL)}")
    names = args.names or [n for n in ALL if n not in SLOW]
    if not args.names:
        print(f"benchmarks: all but {', '.join(sorted(SLOW))} (name it to run it: nox -s bench -- matrix)")
    if args.baseline:
        return side_by_side(args.baseline, names, args.rounds)
    for name in names:
        print(f"== {name}", flush=True)
        _one(name)


if __name__ == "__main__":
    main(sys.argv[1:])
