"""Render the dashboard for a 30-run history of a 600-cell matrix (10 tests a cell), as
`archmatrix report --history` does. Goal: under 3 s and under 5 MB."""
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.report import results
from harness.report.results import Record, Run

ARCHES = ("amd64", "arm64", "arm", "ppc64le", "s390x", "riscv64")
DISTROS = ("debian12", "debian13")
K8S = tuple(f"1.{n}" for n in range(27, 37))
BOOTS = ("none", "distro", "kubeadm", "microk8s", "k3s")


def make_run(n: int, rng: random.Random) -> Run:
    run = Run(f"night-{n:02d}", 1_700_000_000 + n * 86400, 1_700_000_000 + n * 86400 + 3000)
    for a in ARCHES:
        for d in DISTROS:
            for k in K8S:
                for b in BOOTS:
                    cell = f"{a}-{d}-v{k}-{b}-qemu"
                    axes = {"arch": a, "distro": d, "kubernetes": k, "bootstrapper": b, "provider": "qemu"}
                    run.inputs[cell] = f"in-{n // 7}"
                    for t in range(10):
                        o = rng.choices(["passed", "failed", "error", "skipped"], [90, 5, 2, 3])[0]
                        run.records.append(Record(cell, f"suites/test_s.py::test_{t}[{cell}]", o, rng.uniform(0.1, 3),
                                                  "expected x, found y" if o == "failed" else "", axes,
                                                  {"provision_seconds": rng.uniform(18, 40), "accelerator": "tcg"}))
    return run


def main():
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        runs = [make_run(n, rng) for n in range(30)]
        for r in runs[:-1]:
            results.save(r, d / "hist" / f"{r.id}.json")
        results.save(runs[-1], d / "now" / "results.json")
        exe = str(Path(sys.executable).parent / "archmatrix")
        t0 = time.perf_counter()
        subprocess.run([exe, "report", str(d / "now" / "results.json"), "--history", str(d / "hist"),
                        "--out", str(d / "site")], check=True, capture_output=True)
        took = time.perf_counter() - t0
        size = (d / "site" / "index.html").stat().st_size
    print(f"dashboard for 30 runs x 600 cells x 10 tests (180,000 records): {took:.2f} s wall "
          f"(archmatrix report, incl. JUnit + TestGrid), page {size / 1e6:.2f} MB (goals < 3 s, < 5 MB)")
