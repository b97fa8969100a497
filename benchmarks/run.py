"""Run the benchmarks: `python benchmarks/run.py [NAME ...]` (default: all). Each prints its figures."""
import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).parent
ALL = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
SLOW = {"matrix"}  # the whole node matrix, cold and warm (~35 min): only when named


def main(names):
    if not names:
        print(f"benchmarks: all but {', '.join(sorted(SLOW))} (name it to run it: nox -s bench -- matrix)")
    for name in names or [n for n in ALL if n not in SLOW]:
        if name not in ALL:
            sys.exit(f"benchmarks: unknown benchmark '{name}'; known: {', '.join(ALL)}")
        spec = importlib.util.spec_from_file_location(name, HERE / f"bench_{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        print(f"== {name}", flush=True)
        mod.main()


if __name__ == "__main__":
    main(sys.argv[1:])
