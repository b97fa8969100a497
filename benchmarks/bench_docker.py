"""Container nodes per arch on a private dockerd: engine start, image import (once per engine),
node start (container up + `uname -m` checked), and the same 10 checks bench_qemu runs, for a
side-by-side with QEMU nodes of the same cell. ARCHMATRIX_BENCH_ARCHES=arm64,s390x picks
arches (default: every arch with a cached debian12/13 image)."""
import os
import tempfile
import time
from pathlib import Path

from harness.matrix import platforms
from harness.nodes.images import build as images
from harness.matrix.cells import Cell
from harness.nodes import docker as dockerprov
from harness.services.lab import Lab
from tenchecks import run as ten_checks  # benchmarks/ is on sys.path (run.py's dir)

DISTRO = {"riscv64": "debian13"}


def main():
    wanted = os.environ.get("ARCHMATRIX_BENCH_ARCHES")
    names = wanted.split(",") if wanted else [p.name for p in platforms.PLATFORMS
                                             if images.lookup(p, platforms.distro(DISTRO.get(p.name, "debian12")))]
    os.environ.pop("DOCKER_HOST", None)  # always the private engine: its start is one of the figures
    t0 = time.monotonic()
    lab = Lab()
    lab.docker_url(progress=lambda m: None)
    print(f"private dockerd start: {time.monotonic() - t0:.2f} s")
    print(f"{'arch':8} {'import':>7} {'node start':>10} {'10 checks':>9}  emulation")
    try:
        for name in names:
            cell = Cell(name, DISTRO.get(name, "debian12"), "latest", "none", "docker")
            lines = []
            with tempfile.TemporaryDirectory() as art:
                t0 = time.monotonic()
                node = dockerprov.DockerProvider(progress=lines.append, lab=lab).provision(cell, Path(art))
                total = time.monotonic() - t0
                try:
                    secs = ten_checks(node.host)
                finally:
                    node.teardown()
            start = node.facts["node_start_seconds"]
            print(f"{name:8} {total - start:>6.1f}s {start:>9.2f}s {secs:>8.2f}s  {node.facts['emulation']}", flush=True)
    finally:
        lab.stop()
