"""System (Debian/Ubuntu) packages the selected cells and the harness's tests need: one list,
checked with dpkg-query, installed with apt-get when allowed, otherwise the exact command."""
from __future__ import annotations

import os
import shutil
import subprocess

from ..common.errors import UserError

# What each provider needs on the host, beyond Python packages.
PROVIDER_PACKAGES = {
    "qemu": {"qemu-utils", "qemu-user-static", "mmdebstrap", "e2fsprogs", "openssh-client", "cpio"},
    # container nodes import the QEMU base image's root filesystem: the same build tools
    "docker": {"docker.io", "qemu-user-static", "qemu-utils", "mmdebstrap", "e2fsprogs", "libcap2-bin"},
    "ssh": {"openssh-client"},
    "local": set(),
}
# The suites reach registries with their own client; these build and serve test images.
REGISTRY_PACKAGES = {"docker-registry", "skopeo"}
# The harness's own tests use real parts: foreign-arch binaries under qemu-user, every
# qemu-system, a loopback registry, dpkg-architecture, and sshd in network namespaces.
TEST_PACKAGES = ({"qemu-user-static", "qemu-system-x86", "qemu-system-arm", "qemu-system-ppc",
                  "qemu-system-misc", "dpkg-dev", "binutils", "iproute2", "openssh-server", "chromium",
                  "genisoimage", "docker.io"}
                 | PROVIDER_PACKAGES["qemu"] | REGISTRY_PACKAGES)


def for_cells(cells) -> set[str]:
    from ..matrix import platforms

    pkgs: set[str] = set()
    for c in cells:
        if c.unsupported:
            continue
        pkgs |= PROVIDER_PACKAGES.get(c.provider, set())
        if c.provider == "qemu":
            pkgs.add(platforms.arch(c.arch).qemu.package)
            if platforms.distro(c.distro).family == "ubuntu":
                pkgs.add("genisoimage")  # the cloud-init seed of an imported cloud image
    return pkgs


def missing(packages: set[str]) -> list[str]:
    if not shutil.which("dpkg-query"):
        return []  # not a Debian-family host: nothing we can check
    gone = []
    for p in sorted(packages):
        out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True)
        if "install ok installed" not in out.stdout:
            gone.append(p)
    return gone


def install_command(packages: list[str]) -> str:
    return "sudo apt-get update && sudo apt-get install -y " + " ".join(packages)


def ensure(packages: set[str], install: bool, log=print) -> list[str]:
    """Install what is missing (as root, when `install`), else raise with the exact command."""
    gone = missing(packages)
    if not gone:
        return []
    if not install or os.geteuid() != 0:
        raise UserError(f"missing system packages: {' '.join(gone)}; run: {install_command(gone)}")
    log(f"archmatrix: installing system packages: {' '.join(gone)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "--no-install-recommends", *gone]):
        p = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if p.returncode != 0:
            raise UserError(f"{' '.join(cmd[:2])} failed: {p.stderr.strip().splitlines()[-1:]}")
    return gone
