"""The headline figure: the whole node matrix a port maintainer runs every night -- amd64, arm64,
ppc64le, s390x, riscv64 on Debian (riscv64 on Debian 13, its first release), the distro
bootstrapper, every node-level suite -- through the real plugin (`pytest suites -n WORKERS`),
once from a cold image cache (a fresh ARCHMATRIX_CACHE) and once warm. Prints wall time per
phase (image, boot, bootstrap, suites; summed over cells, so with WORKERS nodes at once the
phases add up to more than the wall time) and the total wall time. Goals: cold <= 25 min,
warm <= 10 min on this 2-core machine.

ARCHMATRIX_BENCH_ARCHES=amd64,s390x   a subset; ARCHMATRIX_BENCH_WORKERS=2 (nodes at once);
ARCHMATRIX_BENCH_COLD=0               skip the cold run (it rebuilds every image: ~25 min).
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARCHES = os.environ.get("ARCHMATRIX_BENCH_ARCHES", "amd64,arm64,ppc64le,s390x,riscv64").split(",")
WORKERS = os.environ.get("ARCHMATRIX_BENCH_WORKERS", "2")


def matrix(path: Path) -> None:
    from harness.matrix import platforms

    cells = []
    for a in ARCHES:
        # the oldest Debian release that has the arch (riscv64: trixie)
        d = next(d for d in platforms.DISTROS if d.family == "debian" and a in d.arches)
        cells.append(f"  - {{arch: {a}, distro: {d.name}, kubernetes: latest, bootstrapper: distro, provider: qemu}}")
    # an empty product (no provider on the axes) plus the cells as includes: exactly these cells
    path.write_text("axes: {arch: [amd64], distro: [debian12], kubernetes: [latest], bootstrapper: [distro], "
                    "provider: [qemu]}\nexclude:\n  - {provider: qemu}\ninclude:\n" + "\n".join(cells) + "\n")


def run(label: str, env: dict, work: Path) -> None:
    reports = work / f"reports-{label}"
    m = work / "matrix.yaml"
    t0 = time.monotonic()
    print(f"-- {label}: pytest suites -n {WORKERS} (its progress lines follow)", flush=True)
    p = subprocess.run([sys.executable, "-m", "pytest", "suites", "--matrix", str(m), "-n", WORKERS, "-q",
                        "-p", "no:cacheprovider", "--reports-dir", str(reports), "-rfE"],
                       cwd=ROOT, env={**os.environ, **env}, stdin=subprocess.DEVNULL)
    wall = time.monotonic() - t0
    if p.returncode not in (0, 1):
        raise SystemExit(f"bench matrix ({label}): pytest exited {p.returncode}")
    records = json.loads((reports / "results.json").read_text())["records"]
    cells: dict[str, dict] = {}
    for r in records:
        c = cells.setdefault(r["cell"], {"props": {}, "duration": 0.0, "outcomes": {}})
        c["props"].update(r.get("properties") or {})
        c["duration"] += r.get("duration", 0.0)
        c["outcomes"][r["outcome"]] = c["outcomes"].get(r["outcome"], 0) + 1
    print(f"-- {label}: {len(cells)} cells, {WORKERS} nodes at once, wall {wall / 60:.1f} min "
          f"(pytest exit {p.returncode})")
    print(f"{'cell':40} {'image':>7} {'boot':>6} {'bootstrap':>9} {'suites':>7}  outcomes")
    total = {"image": 0.0, "boot": 0.0, "bootstrap": 0.0, "suites": 0.0}
    for cid, c in sorted(cells.items()):
        pr = c["props"]
        image, boot = float(pr.get("image_seconds", 0)), float(pr.get("boot_seconds", 0))
        bootstrap = float(pr.get("bootstrap_seconds", 0))
        suites = max(0.0, c["duration"] - float(pr.get("provision_seconds", 0)) - bootstrap)
        for k, v in (("image", image), ("boot", boot), ("bootstrap", bootstrap), ("suites", suites)):
            total[k] += v
        print(f"{cid:40} {image:7.0f} {boot:6.0f} {bootstrap:9.0f} {suites:7.0f}  {c['outcomes']}")
    print(f"{'sum over cells (s)':40} {total['image']:7.0f} {total['boot']:6.0f} {total['bootstrap']:9.0f} "
          f"{total['suites']:7.0f}")
    print(f"total wall: {wall:.0f} s = {wall / 60:.1f} min", flush=True)


def main():
    with tempfile.TemporaryDirectory(prefix="am-bench-matrix-") as d:
        work = Path(d)
        matrix(work / "matrix.yaml")
        if os.environ.get("ARCHMATRIX_BENCH_COLD", "1") != "0":
            run("cold", {"ARCHMATRIX_CACHE": str(work / "cache")}, work)
        run("warm", {}, work)
