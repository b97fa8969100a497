"""Per Kubernetes minor: what kubeadm deploys with it and what its binaries are built with.

Sources (read per release tag vX.Y.0 of kubernetes/kubernetes):
  pause   cmd/kubeadm/app/constants/constants.go  PauseVersion
  etcd    cmd/kubeadm/app/constants/constants.go  DefaultEtcdVersion / SupportedEtcdVersion[minor]
  coredns cmd/kubeadm/app/constants/constants.go  CoreDNSVersion
  go      CHANGELOG/CHANGELOG-1.Y.md "Kubernetes is now built with Go 1.N.P" up to vX.Y.0
  beta labels: pkg/kubelet/kubelet_node_status.go still sets beta.kubernetes.io/{os,arch}
          on registration (KEP-2178 deprecated them but kubelet keeps writing them).
Patch releases may bump etcd (e.g. SupportedEtcdVersion 31..33 became 3.5.24-0 in late
patches) and Go, even to a newer Go minor: what a release line's Go may be is in GO below.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..common.errors import UserError


@dataclass(frozen=True)
class Release:
    minor: str  # "1.32"
    pause: str  # tag of registry.k8s.io/pause
    etcd: str  # tag of registry.k8s.io/etcd
    coredns: str  # tag of registry.k8s.io/coredns/coredns
    go: str  # Go toolchain of the vX.Y.0 release binaries
    beta_arch_labels: bool = True  # kubelet sets beta.kubernetes.io/arch|os

    @property
    def tag(self) -> str:
        return f"v{self.minor}"

    @property
    def key(self) -> tuple[int, int]:
        major, minor = self.minor.split(".")
        return int(major), int(minor)

    def images(self, repository: str = "registry.k8s.io", patch: str | None = None) -> dict[str, str]:
        """The images `kubeadm config images list` prints for this release (name -> reference)."""
        version = patch or f"v{self.minor}.0"
        return {
            "kube-apiserver": f"{repository}/kube-apiserver:{version}",
            "kube-controller-manager": f"{repository}/kube-controller-manager:{version}",
            "kube-scheduler": f"{repository}/kube-scheduler:{version}",
            "kube-proxy": f"{repository}/kube-proxy:{version}",
            "coredns": f"{repository}/coredns/coredns:{self.coredns}",
            "pause": f"{repository}/pause:{self.pause}",
            "etcd": f"{repository}/etcd:{self.etcd}",
        }


# Oldest first. 1.36 is read from the release-1.36 branch as stored in the public index.
RELEASES: tuple[Release, ...] = (
    Release("1.27", pause="3.9", etcd="3.5.7-0", coredns="v1.10.1", go="1.20.3"),
    Release("1.28", pause="3.9", etcd="3.5.9-0", coredns="v1.10.1", go="1.20.7"),
    Release("1.29", pause="3.9", etcd="3.5.10-0", coredns="v1.11.1", go="1.21.5"),
    Release("1.30", pause="3.9", etcd="3.5.12-0", coredns="v1.11.1", go="1.22.2"),
    Release("1.31", pause="3.10", etcd="3.5.15-0", coredns="v1.11.3", go="1.22.5"),
    Release("1.32", pause="3.10", etcd="3.5.16-0", coredns="v1.11.3", go="1.23.3"),
    Release("1.33", pause="3.10", etcd="3.5.21-0", coredns="v1.12.0", go="1.24.2"),
    Release("1.34", pause="3.10.1", etcd="3.6.4-0", coredns="v1.12.1", go="1.24.6"),
    Release("1.35", pause="3.10.1", etcd="3.6.6-0", coredns="v1.13.1", go="1.25.5"),
    Release("1.36", pause="3.10.1", etcd="3.6.8-0", coredns="v1.13.1", go="1.26.2"),
)
_BY_MINOR = {r.minor: r for r in RELEASES}


def resolve(selector: str | int | float) -> Release:
    """`latest`, `-1`, `-2` (relative to latest), `1.32`, `v1.32`, `v1.32.4` -> Release. Offline."""
    s = str(selector).strip().lower()
    if s in ("latest", "stable", "0", "-0"):
        return RELEASES[-1]
    if s.startswith("-") and s[1:].isdigit():
        back = int(s[1:])
        if back >= len(RELEASES):
            raise UserError(f"kubernetes '{selector}': only {len(RELEASES) - 1} releases before latest "
                            f"({RELEASES[0].minor}..{RELEASES[-1].minor})")
        return RELEASES[-1 - back]
    s = s.removeprefix("v")
    parts = s.split(".")
    if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
        minor = f"{int(parts[0])}.{int(parts[1])}"
        if minor in _BY_MINOR:
            return _BY_MINOR[minor]
    known = ", ".join(r.minor for r in RELEASES)
    raise UserError(f"unknown kubernetes version '{selector}': use latest, -1, -2, ... or one of {known}")


def go_minor(version: str) -> str:
    """'go1.22.5' / '1.22.5' / '1.22' -> '1.22'."""
    v = version.strip().removeprefix("go")
    return ".".join(v.split(".")[:2])


def kubelet_max_skew(kubelet: tuple[int, int]) -> int:
    """How many minors older than kube-apiserver a kubelet of this version may be
    (kubernetes.io/releases/version-skew-policy, "kubelet": up to three minor versions older,
    "kubelet < 1.25 may only be up to two"; the three came with Kubernetes 1.28, KEP-3935)."""
    return 3 if kubelet >= (1, 25) else 2


# ---- Go toolchains of a release line -------------------------------------------------------
#
# A Kubernetes release line starts with the Go of its vX.Y.0 (Release.go) and its patch
# releases may move to newer Go minors (KEP-3744, kubernetes/enhancements
# keps/sig-release/3744-stay-on-supported-go-versions, "Update release-1.x branches to new go
# minor versions"), because Go supports only its two newest minors (go.dev/doc/devel/release
# "Release Policy": each major Go release is supported until there are two newer ones).
# The KEP's conditions bound what a line can have:
#   - the line stays buildable with "the go minor version used for the .0 release" (3.),
#     so nothing older than Release.go is a Kubernetes build of that line;
#   - a line moves to go 1.N only once "go 1.N has been used in a released Kubernetes version
#     for at least 1 month" (2.), so no line can have a Go minor newer than the newest one any
#     Kubernetes release is built with.
# A line past its end of life (kubernetes/website data/releases/eol.yaml, finalPatchRelease)
# has no newer Go than its final patch release's: that is `final`.

@dataclass(frozen=True)
class GoLine:
    moved: tuple[tuple[str, str], ...] = ()  # (Go minor, the kubernetes/kubernetes PR that moved the line)
    final: tuple[str, str] | None = None  # (final patch release, its Go) once the line is end of life
    source: str = ""


# "Kubernetes is now built with Go 1.N.P" release notes of the [release-1.Y] Go bump PRs
# (kubernetes/kubernetes, as the CHANGELOG-1.Y.md entries quote them).
GO: dict[str, GoLine] = {
    "1.27": GoLine(moved=(("1.22", "#125898"),), final=("v1.27.16", "1.22.5"),
                   source="#125898 go1.22.5 (2024-07-04); eol.yaml: final 1.27.16, EOL 2024-07-16"),
    "1.28": GoLine(moved=(("1.21", "#123228"), ("1.22", "#125897")), final=("v1.28.15", "1.22.8"),
                   source="#123228 go1.21.7, #125897 go1.22.5, #128129 go1.22.8 (2024-10-16); eol.yaml: final 1.28.15"),
    "1.29": GoLine(moved=(("1.22", "#127604"),), final=("v1.29.14", "1.22.12"),
                   source="#127604 go1.22.7, #130075 go1.22.12 (2025-02-10); eol.yaml: final 1.29.14"),
    "1.30": GoLine(moved=(("1.23", "#131683"),), final=("v1.30.14", "1.23.10"),
                   source="#131683 go1.23.8, #132223 go1.23.10 (2025-06-11); eol.yaml: final 1.30.14"),
    "1.31": GoLine(moved=(("1.23", "#131537"), ("1.24", "#134618")), final=("v1.31.14", "1.24.9"),
                   source="#131537 go1.23.8, #134618 go1.24.9 (2025-10-15); eol.yaml: final 1.31.14 "
                          "(k3s-io/k3s#13203: v1.31.14 with Go 1.24.9)"),
    "1.32": GoLine(moved=(("1.24", "#134617"),),
                   source="#133521 go1.23.12, #134617 go1.24.9 (2025-10-15), #136469 go1.24.12; "
                          "k3s-io/k3s#13704: v1.32.13 with Go 1.24.13"),
    "1.33": GoLine(moved=(("1.25", "#138306"),), source="#136468 go1.24.12, #138306 go1.25.9 (2026-04-09)"),
    "1.34": GoLine(moved=(("1.25", "#138305"),), source="#136467 go1.24.12, #138305 go1.25.9 (2026-04-09)"),
    "1.35": GoLine(moved=(("1.26", "#142182"),), source="#139588 go1.25.11, #142182 go1.26.8 (2026-09-17)"),
}


def go_version_key(version: str) -> tuple[int, int, int] | None:
    """'go1.24.4' / '1.24' / 'go1.26rc1' -> (1, 24, 4) / (1, 24, 0) / (1, 26, -1); None if not a Go version."""
    m = re.fullmatch(r"(?:go)?(\d+)\.(\d+)(?:\.(\d+)|(rc|beta)\d+)?", version.strip().split()[0] if version.strip() else "")
    if not m:
        return None
    return int(m[1]), int(m[2]), int(m[3]) if m[3] else (-1 if m[4] else 0)


def go_line(release: Release) -> GoLine:
    return GO.get(release.minor, GoLine())


def newest_go_minor() -> str:
    """The newest Go minor any release in the tables is built with: no line can move past it."""
    minors = [go_minor(r.go) for r in RELEASES] + [m for line in GO.values() for m, _ in line.moved]
    return max(minors, key=go_version_key)
