"""Container nodes per arch on a private dockerd: engine start, image import (once per engine),
node start (container up + `uname -m` checked), and the same 10 checks bench_qemu runs, for a
side-by-side with QEMU nodes of the same cell. ARCHMATRIX_BENCH_ARCHES=arm64,s390x picks
arches (default: every arch with a cached debian12/13 image)."""
import os
import tempfile
import time
from pathlib import Path

from harness import platforms
from harness.images import build as images
from harness.matrix import Cell
from harness.providers import docker as dockerprov

DISTRO = {"riscv64": "debian13"}


def ten_checks(node) -> float:
    h = node.host
    t0 = time.monotonic()
    checks = [lambda: h.run("uname -m").rc == 0, lambda: h.file("/etc/os-release").exists,
              lambda: h.file("/usr/bin/ssh-keygen").is_file, lambda: h.system_info.arch is not None,
              lambda: h.file("/bin/sh").exists, lambda: h.run("id -u").stdout.strip() == "0",
              lambda: h.file("/etc/passwd").exists, lambda: h.run("cat /proc/cpuinfo").rc == 0,
              lambda: h.run("ls /usr/bin").rc == 0, lambda: h.run("true").rc == 0]
    assert all(c() for c in checks)
    return time.monotonic() - t0


def main():
    os.environ.pop("DOCKER_HOST", None)
    wanted = os.environ.get("ARCHMATRIX_BENCH_ARCHES")
    names = wanted.split(",") if wanted else [p.name for p in platforms.PLATFORMS
                                             if images.lookup(p, platforms.distro(DISTRO.get(p.name, "debian12")))]
    t0 = time.monotonic()
    dockerprov.engine_url(None, progress=lambda m: None)
    print(f"private dockerd start: {time.monotonic() - t0:.2f} s")
    print(f"{'arch':8} {'import':>7} {'node start':>10} {'10 checks':>9}  emulation")
    try:
        for name in names:
            p = platforms.arch(name)
            cell = Cell(name, DISTRO.get(name, "debian12"), "latest", "none", "docker")
            lines = []
            with tempfile.TemporaryDirectory() as art:
                t0 = time.monotonic()
                node = dockerprov.DockerProvider(progress=lines.append).provision(cell, Path(art))
                total = time.monotonic() - t0
                try:
                    secs = ten_checks(node)
                finally:
                    node.teardown()
            start = node.facts["node_start_seconds"]
            print(f"{name:8} {total - start:>6.1f}s {start:>9.2f}s {secs:>8.2f}s  {node.facts['emulation']}", flush=True)
    finally:
        dockerprov._ENGINE.stop()
