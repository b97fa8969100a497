"""QEMU nodes per arch: image build seconds (cold as recorded by the build, or rebuilt now with
ARCHMATRIX_BENCH_COLD=1; warm = a cache hit now), boot-to-SSH of a raw `qemu-system-*` run of
the same command line (until sshd's banner) vs the harness's boot (console markers, pinned key,
`uname -m` over SSH), and what a 10-check suite costs on one node: SSH connections the guest's
sshd accepted, and seconds. Goals (issue #3): foreign build <= 150 s, native <= 60 s, hit <= 1 s,
boot <= 35 s, harness/raw <= 1.10, one connection per node.

ARCHMATRIX_BENCH_ARCHES=amd64,s390x picks arches (default: every arch with a cached image).
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from harness.matrix import platforms
from harness.nodes.images import build as images
from harness.services.ports import free_port
from harness.matrix.cells import Cell
from harness.nodes import qemu

import tenchecks  # benchmarks/ is on sys.path (run.py's dir)

DISTRO = {"riscv64": "debian13"}  # bookworm has no riscv64 port


def raw_boot(p, img, accel) -> float:
    """Seconds from exec to sshd's banner on the forwarded port, with the harness's own command line."""
    with tempfile.TemporaryDirectory(prefix="am-raw-") as d:
        overlay, port = Path(d) / "o.qcow2", free_port()
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(img.disk), "-F", "qcow2", str(overlay)],
                       check=True)
        cmd = qemu.command(p, img, overlay, port, Path(d) / "serial.log", accel)
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            while time.monotonic() - t0 < 300:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                        s.settimeout(5)
                        if s.recv(16).startswith(b"SSH-2.0"):
                            return time.monotonic() - t0
                except OSError:
                    pass
                time.sleep(0.2)
            raise RuntimeError(f"{p.name}: raw boot reached no SSH banner in 300 s")
        finally:
            os.killpg(proc.pid, 9)
            proc.wait()


def ten_checks(node) -> tuple[int, float]:
    """The ten checks; returns (connections the guest's sshd accepted, seconds)."""
    seconds = tenchecks.run(node.host)
    accepted = node.host.run("journalctl -u ssh --no-pager | grep -c 'Accepted publickey'").stdout.strip()
    return int(accepted or 0), seconds


def main():
    wanted = os.environ.get("ARCHMATRIX_BENCH_ARCHES")
    names = wanted.split(",") if wanted else [p.name for p in platforms.PLATFORMS
                                             if images.lookup(p, platforms.distro(DISTRO.get(p.name, "debian12")))]
    cold = os.environ.get("ARCHMATRIX_BENCH_COLD") == "1"
    print(f"{'arch':8} {'cold build':>10} {'warm':>6} {'raw boot':>9} {'harness':>8} {'ratio':>6} "
          f"{'conns/10 checks':>15} {'10 checks':>9}  accel")
    for name in names:
        p = platforms.arch(name)
        d = platforms.distro(DISTRO.get(name, "debian12"))
        if cold:
            shutil.rmtree(images.images_dir() / images.key(p, d), ignore_errors=True)
        t0 = time.monotonic()
        img = images.build(p, d, progress=lambda m: print(f"  {m}", flush=True))
        first = time.monotonic() - t0
        t0 = time.monotonic()
        images.build(p, d, progress=lambda m: None)
        warm = time.monotonic() - t0
        cold_s = first if cold else img.manifest["build_seconds"]
        prov = qemu.QemuProvider(progress=lambda m: None)
        with tempfile.TemporaryDirectory(prefix="am-bench-") as art:
            cell = Cell(name, d.name, "latest", "none", "qemu")
            accel = prov._accelerator(cell, Path(art), img)
            raw = raw_boot(p, img, accel)
            node = prov.provision(cell, Path(art))
            try:
                harness = node.facts["boot_seconds"]
                conns, secs = ten_checks(node)
            finally:
                node.teardown()
        print(f"{name:8} {cold_s:>9.0f}s {warm:>5.2f}s {raw:>8.1f}s {harness:>7.1f}s {harness / raw:>6.2f} "
              f"{conns:>15} {secs:>8.2f}s  {accel}{'' if cold else '  (cold = recorded at build)'}", flush=True)
