"""Artifacts mode: check release binaries for every arch they are built for, with no node.

Accepts a directory (`_output/release-stage/.../bin`, `_output/dockerized/bin/linux/s390x`),
a release tarball (`kubernetes-server-linux-ppc64le.tar.gz`, `kubernetes-node-windows-amd64.tar.gz`)
or a Debian package (`kubectl_1.32.3+ds-2_s390x.deb`). The expected arch/OS comes from the
path or file name (through the platform table), or from `arch=` when given.
"""
from __future__ import annotations

import io
import re
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..checks import Verdict, elf
from ..common.errors import UserError
from ..matrix import kube_versions, platforms

# hack/lib/golang.sh KUBE_STATIC_LIBRARIES: built with CGO_ENABLED=0. kubelet is not in it.
STATIC = {"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "kube-log-runner",
          "kubeadm", "kubectl", "kubectl-convert", "kubemark", "mounter"}
KUBERNETES = STATIC | {"kubelet"}


@dataclass
class Artifact:
    name: str  # path shown in messages (file, or tarball!member)
    platform: platforms.Platform | None
    os: str
    data: bytes
    # upstream release layouts follow Kubernetes' build rules (static set, release Go);
    # a distro package is built by the distro's rules and toolchain: only its arch is judged
    upstream: bool = True

    @property
    def binary(self) -> str:
        return Path(self.name.split("!")[-1]).name.removesuffix(".exe")


def _platform_from(text: str) -> tuple[platforms.Platform | None, str]:
    """'kubernetes-server-linux-ppc64le', 'bin/linux/s390x', 'kubectl_1.32.3+ds-2_ppc64el' -> (row, os)."""
    os = "windows" if re.search(r"(^|[-_/])windows([-_/]|$)", text) else "linux"
    tokens = re.split(r"[-_/.]", text)
    for tok in reversed(tokens):
        try:
            return platforms.arch(tok), os
        except UserError:
            continue
    return None, os


def _is_executable(data: bytes) -> bool:
    return data[:4] == b"\x7fELF" or data[:2] == b"MZ"


def scan(path: str | Path, arch: str | None = None) -> list[Artifact]:
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such file or directory")
    forced = platforms.arch(arch) if arch else None
    out: list[Artifact] = []
    if p.is_dir():
        for f in sorted(x for x in p.rglob("*") if x.is_file()):
            head = f.open("rb").read(4)
            if _is_executable(head) or ("." not in f.name and f.stat().st_mode & 0o111):
                row, os = _platform_from(str(f.relative_to(p.parent)))
                out.append(Artifact(str(f), forced or row, os, f.read_bytes()))
    elif p.name.endswith((".tar.gz", ".tgz", ".tar")):
        row, os = _platform_from(p.name)
        with tarfile.open(p) as tar:
            for m in tar.getmembers():
                if m.isfile() and re.search(r"/bin/[^/]+$", m.name):
                    data = tar.extractfile(m).read()
                    # a non-executable that looks like a binary (no extension, x bit) is judged too:
                    # a truncated or text file where kubelet should be is a finding
                    if _is_executable(data) or ("." not in Path(m.name).name and m.mode & 0o111):
                        out.append(Artifact(f"{p}!{m.name}", forced or row, os, data))
    elif p.suffix == ".deb":
        row, os = _platform_from(p.stem)
        with tempfile.TemporaryDirectory() as d:
            subprocess.run(["dpkg-deb", "-x", str(p), d], check=True, capture_output=True)
            for f in sorted(Path(d).rglob("*")):
                if f.is_file() and not f.is_symlink() and re.search(r"/s?bin/[^/]+$", str(f)):
                    out.append(Artifact(f"{p}!/{f.relative_to(d)}", forced or row, os, f.read_bytes(),
                                        upstream=False))
    else:
        raise UserError(f"{p}: expected a directory, a .tar.gz release tarball or a .deb")
    if not out:
        raise UserError(f"{p}: no binaries found")
    return out


def check(a: Artifact, release: kube_versions.Release | None = None) -> list[Verdict]:
    """Every verdict for one artifact: arch, linkage (Kubernetes' static set), Go toolchain."""
    if a.platform is None:
        return [Verdict(False, f"{a.name}: expected an arch in the path or name (or give --arch), found none")]
    try:
        exe = elf.inspect(io.BytesIO(a.data))
    except elf.NotExecutable as e:
        return [Verdict(False, f"{a.name}: expected an executable for {a.os}/{a.platform.name}, found {e}")]
    verdicts = [elf.check_arch(a.name, exe, a.platform, os=a.os)]
    if not a.upstream:
        return verdicts
    if a.os == "linux" and a.binary in STATIC:
        verdicts.append(elf.check_linkage(a.name, exe, True))
    if release is not None and a.binary in KUBERNETES:
        verdicts.append(elf.check_go(a.name, exe, release))
    return verdicts
