"""Stand-in for the GitHub release downloads kubeadm cells use (Options.release_base), in GitHub's
layout `<base>/<owner>/<repo>/releases/download/<tag>/<asset>` (matrix/upstream.py TARBALL, RUNC):

  containerd/containerd  v<X>/containerd-<X>-linux-<arch>.tar.gz + .sha256sum: containerd's release
      tarball layout (bin/containerd, bin/containerd-shim-runc-v2, bin/ctr: containerd Makefile
      `release`, `sha256sum $(RELEASE).tar.gz >$(RELEASE).tar.gz.sha256sum`), made from Debian's REAL
      containerd of the arch (sid: 2.1.9, not the version upstream.containerd_for chooses: the rehearsal
      says so through Options.containerd_version, and the plan checks the installed version against it)
  opencontainers/runc    <tag>/runc.<arch> + runc.sha256sum (runc script/release_build.sh): Debian's
      REAL runc (sid: 1.3.6, the runc containerd 2.1 is tested with: upstream.LINES["2.1"])
  flannel-io/flannel     latest/download/kube-flannel.yml: a STAND-IN manifest (never applied here:
      it comes after `kubeadm init`, the rehearsal's stopping point)
"""
from __future__ import annotations

import hashlib
import io
import re
import tarfile
from pathlib import Path

from ..common.errors import InfraError
from ..host import debian
from ..matrix import upstream
from ..matrix.cells import Cell
from .pkgs import STANDIN

PREFIX = "github"  # served under <node_url>/github: Options.release_base
SUITE = "sid"
# Debian sid's containerd and runc (`apt-cache show` against deb.debian.org, 2026-11-22: containerd
# 2.1.9+ds1-5, runc 1.3.6+ds1-1 on amd64, arm64, ppc64el, s390x, riscv64); build() fails, naming both,
# when the mirror has moved on
CONTAINERD = "2.1.9"
RUNC = "1.3.6"
# containerd's tarball: these three from Debian's package (/usr/bin), under bin/ (containerd Makefile
# BINARIES installed by `make install DESTDIR=...` into $(RELEASE)/bin)
CONTAINERD_BINARIES = ("containerd", "containerd-shim-runc-v2", "ctr")
FLANNEL = "flannel-io/flannel/releases/latest/download/kube-flannel.yml"
FLANNEL_STANDIN = (f"# {STANDIN} for flannel's kube-flannel.yml: not applied by a rehearsal (it comes after\n"
                   "# kubeadm init); a real run downloads github.com/flannel-io/flannel's\n"
                   "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kube-flannel\n")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _debian(package: str, arch: str, want: str) -> Path:
    deb = debian.download(package, arch, SUITE)
    got = re.match(rf"{package}_(\d+\.\d+\.\d+)", deb.name)
    if not got or got.group(1) != want:
        raise InfraError(f"rehearsal stand-in: Debian {SUITE}'s {package} for {arch} is {deb.name}, not {want} "
                         f"(harness/rehearsal/github.py CONTAINERD/RUNC say which it carries)", retryable=False)
    return debian.extract(deb, debian.cache_dir() / "unpacked" / deb.stem)


def build(root: Path, cells: list[Cell], progress=print) -> dict[str, str]:
    arches = {c.arch: c.platform for c in cells if c.bootstrapper == "kubeadm"}
    if not arches:
        return {}
    gh = root / PREFIX
    runc_tag = f"v{RUNC}"
    runc_dir = gh / "opencontainers/runc/releases/download" / runc_tag
    runc_dir.mkdir(parents=True, exist_ok=True)
    sums = []
    for name, p in sorted(arches.items()):
        progress(f"rehearsal: containerd {CONTAINERD} and runc {RUNC} release assets for {name} (Debian {SUITE}'s)")
        cd = _debian("containerd", p.debian, CONTAINERD)
        tarball = f"containerd-{CONTAINERD}-linux-{name}.tar.gz"
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:  # a stand-in: fast over small
            for b in CONTAINERD_BINARIES:
                info = tar.gettarinfo(str(cd / "usr/bin" / b), arcname=f"bin/{b}")
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                with open(cd / "usr/bin" / b, "rb") as f:
                    tar.addfile(info, f)
        data = buf.getvalue()
        d = gh / "containerd/containerd/releases/download" / f"v{CONTAINERD}"
        d.mkdir(parents=True, exist_ok=True)
        (d / tarball).write_bytes(data)
        (d / f"{tarball}.sha256sum").write_text(f"{_sha256(data)}  {tarball}\n")
        runc = (_debian("runc", p.debian, RUNC) / "usr/sbin/runc")
        if not runc.exists():
            runc = runc.parent.parent / "bin/runc"
        body = runc.read_bytes()
        (runc_dir / f"runc.{name}").write_bytes(body)
        sums.append(f"{_sha256(body)}  runc.{name}")
    (runc_dir / "runc.sha256sum").write_text("\n".join(sums) + "\n")
    flannel = gh / FLANNEL
    flannel.parent.mkdir(parents=True, exist_ok=True)
    flannel.write_text(FLANNEL_STANDIN)
    return {}


def options(node_url: str) -> dict:
    return {"release_base": f"{node_url}/{PREFIX}", "containerd_version": CONTAINERD}


def describe() -> str:
    """What the rehearsal's results show as this stand-in's input."""
    return (f"containerd {CONTAINERD} and runc {RUNC}: Debian {SUITE}'s real binaries in the release layout "
            f"(upstream.containerd_for may choose another version; Options.containerd_version says this one)")


assert upstream.LINES[".".join(CONTAINERD.split(".")[:2])].runc == f"v{RUNC}", "runc must be the one containerd's line uses"
