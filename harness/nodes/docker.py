"""Container nodes on a Docker engine, kinder-style: a privileged container from an image the
harness imports itself (`docker import` of its own Debian root filesystem: no registry pulls),
foreign arches through binfmt qemu-user, reached with `docker exec` (the DockerExec transport).
The engine is the run's Lab's: --docker-host / DOCKER_HOST, else a private dockerd the Lab starts
and stops.
Containers have no network (`--network none`): nothing a check does can leave the machine.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ..common.errors import InfraError
from ..host import binfmt
from ..matrix import platforms
from ..matrix.cells import Cell
from ..services.dockerd import version
from .base import DockerExec, Node, Provider
from .images import build as images

EXCLUDE = ("./boot", "./usr/lib/modules", "./lib/modules", "./vmlinuz", "./vmlinuz.old", "./initrd.img",
           "./initrd.img.old")  # a container runs the host's kernel


def import_image(client, url: str, img: images.BaseImage, p: platforms.Platform, progress) -> str:
    """archmatrix/<image key>: the base image's root filesystem, imported once per engine."""
    tag = f"archmatrix/{img.path.name}:latest"
    if client.images.list(name=f"archmatrix/{img.path.name}"):
        return tag
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="am-rootfs-") as d:
        raw, root = Path(d) / "disk.raw", Path(d) / "root"
        root.mkdir()
        subprocess.run(["qemu-img", "convert", "-O", "raw", str(img.disk), str(raw)], check=True, capture_output=True)
        out = subprocess.run(["debugfs", "-R", f"rdump / {root}", str(raw)], capture_output=True, text=True)
        if not (root / "usr/bin").is_dir():
            raise InfraError(f"extracting {img.disk} failed: {out.stderr[-500:]}")
        raw.unlink()
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", *[f"--exclude={e}" for e in EXCLUDE], "."],
                               stdout=subprocess.PIPE)
        platform = "/".join(p.oci_platform().values())  # linux/arm/v7
        imp = subprocess.run(["docker", "-H", url, "import", "--platform", platform, "-", tag], stdin=tar.stdout,
                             capture_output=True, text=True)
        tar.wait()
        if imp.returncode != 0:
            raise InfraError(f"docker import of {img.path.name} failed: {imp.stderr.strip()[-300:]}")
    progress(f"imported {tag} in {time.monotonic() - t0:.1f} s")
    return tag


def privileges() -> dict:
    """Privileged, as kinder's nodes are, unless this machine's own capability bounding set lacks
    some (then `privileged` fails with "unable to apply caps"): all capabilities but those."""
    bounding = int(next(x for x in Path("/proc/self/status").read_text().splitlines()
                        if x.startswith("CapBnd:")).split()[1], 16)
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    missing = ((1 << (last + 1)) - 1) & ~bounding
    if not missing or shutil.which("capsh") is None:
        return {"privileged": True}
    names = subprocess.run(["capsh", f"--decode={missing:x}"], capture_output=True, text=True).stdout
    drop = [n.removeprefix("cap_").upper() for n in names.split("=", 1)[-1].strip().split(",")]
    return {"cap_add": ["ALL"], "cap_drop": drop, "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
            "devices": [], "privileged": False}


class DockerProvider(Provider):
    name = "docker"

    def start(self, cell: Cell, artifacts: Path) -> Node:
        import docker

        if shutil.which("docker") is None:
            raise InfraError("the docker CLI is not installed (nodes are reached with `docker exec`): "
                             "apt-get install docker.io", retryable=False)
        if self.lab is None:
            raise InfraError("provider docker needs the run's Lab (the Docker engine it owns)", retryable=False)
        url = self.lab.docker_url(self.progress)
        client = docker.DockerClient(base_url=url, timeout=120)
        p = cell.platform
        if p is not platforms.host():
            binfmt.ensure(p)
        img = images.build(p, cell.os, progress=self.progress)
        tag = import_image(client, url, img, p, self.progress)
        t0 = time.monotonic()
        power = privileges()
        c = client.containers.run(tag, ["sleep", "infinity"], detach=True, network_mode="none",
                                  hostname=f"archmatrix-{p.name}", labels={"archmatrix.cell": cell.id,
                                                                          "archmatrix.owner": str(os.getpid())},
                                  **power)

        def stop():
            try:
                c.remove(force=True)
            except docker.errors.NotFound:
                pass

        try:
            uname = c.exec_run(["uname", "-m"]).output.decode().strip()
            if uname != p.uname:
                raise InfraError(f"{cell.id}: container says uname -m {uname}, expected {p.uname} "
                                 f"(binfmt entry for {p.qemu_user} missing?)", retryable=False)
        except BaseException:
            stop()
            raise
        facts = {"node_start_seconds": round(time.monotonic() - t0, 2), "engine": version(url),
                 "emulation": "native" if p is platforms.host() else f"binfmt {p.qemu_user}", "image": tag,
                 "privileged": "yes" if power.get("privileged") else "all capabilities but " + ",".join(
                     power["cap_drop"])}
        (artifacts / "container.txt").write_text(f"{c.id}\n{tag}\n{url}\n")
        return Node(cell, DockerExec(url, c.id), artifacts, facts, stop=stop)
