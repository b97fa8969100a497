"""`--artifacts DIR`: what a contributor built for an unreleased port, used instead of the network.

    DIR/<arch>/bin/*         kubeadm, kubelet, kubectl, crictl, k3s ...: copied to /usr/local/bin
    DIR/<arch>/images/*.tar  docker-archive (`docker save`; the kube-*.tar files of
                             kubernetes-server-linux-<arch>.tar.gz) or oci-archive with a ref name:
                             pushed to the harness registry, named by their repo tag without the
                             registry host and without an `-<arch>` suffix (kube-apiserver-arm64 ->
                             kube-apiserver), so kubeadm's imageRepository can point at the registry
    DIR/<arch>/snap/         microk8s_*.snap and microk8s_*.assert (snap ack + snap install)
    DIR/manifests/*.yaml     applied instead of the default CNI manifest (kubeadm)

<arch> is the platform table's name (amd64, arm64, arm, ppc64le, s390x, riscv64).
"""
from __future__ import annotations

import json
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ..common.errors import InfraError, UserError
from ..matrix import platforms
from ..oci.layout import require_skopeo


@dataclass(frozen=True)
class Artifacts:
    root: Path
    platform: platforms.Platform

    @classmethod
    def load(cls, root: Path | str, platform: platforms.Platform) -> "Artifacts":
        root = Path(root)
        if not root.is_dir():
            raise UserError(f"--artifacts {root}: no such directory")
        if not (root / platform.name).is_dir():
            raise UserError(f"--artifacts {root}: no {platform.name}/ in it (expected "
                            f"{root / platform.name}/bin, images/ or snap/ for {platform.name} cells)")
        return cls(root, platform)

    @property
    def dir(self) -> Path:
        return self.root / self.platform.name

    def binaries(self) -> dict[str, Path]:
        d = self.dir / "bin"
        return {p.name: p for p in sorted(d.iterdir()) if p.is_file()} if d.is_dir() else {}

    def images(self) -> list[Path]:
        d = self.dir / "images"
        return sorted(p for p in d.iterdir() if p.name.endswith(".tar")) if d.is_dir() else []

    def snap(self, name: str) -> tuple[Path, Path] | None:
        """(snap, assertion) for `name`, e.g. microk8s_7394.snap + microk8s_7394.assert."""
        d = self.dir / "snap"
        for s in sorted(d.glob(f"{name}_*.snap")) if d.is_dir() else []:
            a = s.with_suffix(".assert")
            if not a.is_file():
                raise UserError(f"--artifacts: {s} has no {a.name} beside it (snap ack needs the assertion)")
            return s, a
        return None

    def manifests(self) -> list[Path]:
        d = self.root / "manifests"
        return sorted(d.glob("*.yaml")) if d.is_dir() else []

    def missing(self, names: tuple[str, ...]) -> list[str]:
        have = self.binaries()
        return [n for n in names if n not in have]

    def image_refs(self) -> list[tuple[Path, str, str]]:
        """(tarball, skopeo source inside it, name:tag in the harness registry) for every image."""
        return [(tar, src, registry_name(ref, self.platform))
                for tar in self.images() for src, ref in archive_sources(tar)]

    def push(self, registry_host: str, progress=print) -> list[str]:
        """Push every image tarball to the registry (skopeo, no daemon); return the names pushed."""
        require_skopeo()
        pushed = []
        for tar, src, name in self.image_refs():
            progress(f"artifacts: {tar.name} -> {registry_host}/{name}")
            p = subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", src,
                                f"docker://{registry_host}/{name}"], capture_output=True, text=True,
                               stdin=subprocess.DEVNULL, timeout=600)
            if p.returncode != 0:
                raise InfraError(f"--artifacts: pushing {tar} to the harness registry failed: "
                                 f"{p.stderr.strip()[-300:]}", retryable=False)
            pushed.append(name)
        return pushed


def find(paths) -> Path | None:
    """The first --artifacts PATH laid out per arch (a directory with an amd64/, arm64/... inside):
    the one bootstrappers install from. Other PATHs (a bin/ dir, a tarball, a .deb) are only checked."""
    names = {p.name for p in platforms.PLATFORMS}
    for raw in paths:
        p = Path(raw)
        if p.is_dir() and any((p / n).is_dir() for n in names):
            return p
    return None


def archive_sources(tar: Path) -> list[tuple[str, str]]:
    """(skopeo source, reference) for each image a tarball names, reading it once: RepoTags of a
    docker-archive (`docker-archive:TAR:REF`), ref names of an oci-archive (`oci-archive:TAR:REF`)."""
    with tarfile.open(tar) as t:
        names = set(t.getnames())
        kind = "docker" if "manifest.json" in names else "oci" if "index.json" in names else None
        if kind is None:
            raise UserError(f"--artifacts: {tar} is neither a docker-archive (manifest.json) nor an "
                            f"oci-archive (index.json)")
        doc = json.load(t.extractfile("manifest.json" if kind == "docker" else "index.json"))
    if kind == "docker":
        refs = [tag for entry in doc for tag in entry.get("RepoTags") or []]
    else:
        refs = [m.get("annotations", {}).get("org.opencontainers.image.ref.name", "") for m in doc.get("manifests", [])]
    refs = [r for r in refs if ":" in r.rsplit("/", 1)[-1]]
    if not refs:
        raise UserError(f"--artifacts: {tar} names no image (docker save it with a tag, e.g. "
                        f"registry.k8s.io/kube-apiserver-arm64:v1.32.0)")
    return [(f"{kind}-archive:{tar}:{r}", r) for r in refs]


def registry_name(ref: str, platform: platforms.Platform) -> str:
    """registry.k8s.io/kube-apiserver-arm64:v1.32.0 -> kube-apiserver:v1.32.0;
    registry.k8s.io/coredns/coredns:v1.11.3 -> coredns/coredns:v1.11.3."""
    path, tag = ref.rsplit(":", 1)
    parts = path.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    parts[-1] = parts[-1].removesuffix(f"-{platform.name}")
    return f"{'/'.join(parts)}:{tag}"
