"""Run the benchmarks: `python benchmarks/run.py [NAME ...]` (default: all). Each prints its figures."""
import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).parent
ALL = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def main(names):
    for name in names or ALL:
        if name not in ALL:
            sys.exit(f"benchmarks: unknown benchmark '{name}'; known: {', '.join(ALL)}")
        spec = importlib.util.spec_from_file_location(name, HERE / f"bench_{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        print(f"== {name}", flush=True)
        mod.main()


if __name__ == "__main__":
    main(sys.argv[1:])
